"""Per-worker Prometheus metrics, beside the per-pair ones every worker serves like the daemon.

Why labelled with the worker's name although each worker serves its own ``/metrics``: a
dashboard that sums over the fleet (or a federation that drops the scrape target) must still
tell which worker ran which pair, and ``crm_bridge_worker_info`` says a worker is up even
before its first job.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["WorkerMetrics"]


class WorkerMetrics:
    """``crm_bridge_worker_info``, and the worker's pair jobs, feature jobs and push cycles."""

    def __init__(self, registry: CollectorRegistry, worker: str) -> None:
        self.worker = worker
        self.info = Gauge(
            "crm_bridge_worker_info", "1 while this worker runs.", ["worker"], registry=registry
        )
        self.info.labels(worker).set(1)
        self.jobs = Counter(
            "crm_bridge_worker_jobs",
            "Pair jobs this worker ran, by outcome (ok, failed).",
            ["worker", "pair", "outcome"],
            registry=registry,
        )

        self.features = Counter(
            "crm_bridge_worker_feature_jobs",
            "Feature jobs (sla, reasons) this worker ran, by outcome (ok, failed).",
            ["worker", "job", "outcome"],
            registry=registry,
        )
        self.pushes = Counter(
            "crm_bridge_worker_push_cycles",
            "Cycles this worker's push listener asked for: hinted, or fallback (a lost channel).",
            ["worker", "pair", "kind", "outcome"],
            registry=registry,
        )

    def feature(self, job: str, ok: bool) -> None:
        """Count one run of feature job ``job``."""
        self.features.labels(self.worker, job, "ok" if ok else "failed").inc()

    def push(self, pair: str, kind: str, ok: bool) -> None:
        """Count one push job of ``pair`` (``kind``: hinted or fallback) and how it ended."""
        self.pushes.labels(self.worker, pair, kind, "ok" if ok else "failed").inc()

    def job(self, pair: str, ok: bool) -> None:
        """Count one job of ``pair``."""
        self.jobs.labels(self.worker, pair, "ok" if ok else "failed").inc()
