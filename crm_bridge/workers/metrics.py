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
    """``crm_bridge_worker_info`` and ``crm_bridge_worker_jobs_total{worker,pair,outcome}``."""

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

    def job(self, pair: str, ok: bool) -> None:
        """Count one job of ``pair``."""
        self.jobs.labels(self.worker, pair, "ok" if ok else "failed").inc()
