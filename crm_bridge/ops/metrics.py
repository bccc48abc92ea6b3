"""Prometheus metrics and ``/healthz`` for the daemon, on a port of its own.

Why a registry per daemon instead of prometheus-client's global default: two daemons in one
test process (or a test after another) would otherwise share counters and refuse to register
the same names twice.  :class:`Metrics` owns its :class:`~prometheus_client.CollectorRegistry`
and :class:`OpsServer` serves exactly that registry.

Why ``/healthz`` is about successes, not about the process being alive: a daemon whose every
cycle fails (a revoked token, a tripped guard) is alive and useless.  A pair is unhealthy when
it has not finished a cycle ``ok`` within ``max_intervals`` daemon intervals -- counted from
its last success, or from the daemon's start before the first one -- so a single slow or failed
cycle does not flap the check, and a pair that never succeeds is reported after a grace period.

Metric names (all prefixed ``crm_bridge_``)::

    cycles_total{pair,status}                       counter
    cycle_duration_seconds{pair}                     histogram
    records_total{pair,outcome}                      counter   (created, updated, dead_lettered...)
    api_calls_total{pair,connector,family}           counter
    rate_limit_wait_seconds_total{connector,limiter} counter   (client-side pacing)
    retries_total{action}                            counter   (rate_limited, retry, refresh_auth)
    dead_letters_open{pair}                          gauge
    cursor_lag_seconds{pair,object,side}             gauge
    last_success_timestamp_seconds{pair}             gauge     (unix time)
    pair_healthy{pair}                               gauge     (1/0, as /healthz sees it)
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from crm_bridge.connector import Connector
from crm_bridge.errors import ConfigError, ConfigProblem
from crm_bridge.http.ratelimit import RollingWindowLimiter
from crm_bridge.log import get_logger
from crm_bridge.ops.events import CycleResult, Sink

__all__ = ["Health", "HealthReport", "Metrics", "OpsServer", "RetryTap", "limiters_of"]

_log = get_logger("crm_bridge.ops")

_DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


@dataclass
class _PairHealth:
    last_success: float | None = None
    last_error: str | None = None
    last_status: str | None = None


@dataclass(frozen=True)
class HealthReport:
    """What ``/healthz`` answers: 200 when every pair is healthy, else 503 naming the pairs."""

    healthy: bool
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def status_code(self) -> int:
        """The HTTP status."""
        return 200 if self.healthy else 503


class Health(Sink):
    """Per pair: when it last succeeded, on the daemon's monotonic clock."""

    def __init__(
        self,
        pairs: Iterable[str],
        *,
        interval: float,
        max_intervals: float = 3.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.max_intervals = max_intervals
        self.monotonic = monotonic
        self.started = monotonic()
        self._lock = threading.Lock()
        self._pairs = {name: _PairHealth() for name in pairs}

    @property
    def allowed_seconds(self) -> float:
        """How long a pair may go without a success before it is unhealthy."""
        return self.interval * self.max_intervals

    def cycle_done(self, result: CycleResult) -> None:
        """Note a success (or the latest error) of ``result.pair``."""
        if result.plan_only:
            return
        with self._lock:
            state = self._pairs.setdefault(result.pair, _PairHealth())
            state.last_status = result.status
            if result.status == "ok":
                state.last_success = self.monotonic()
                state.last_error = None
            else:
                state.last_error = result.error_text

    def report(self) -> HealthReport:
        """Every pair's verdict, and the unhealthy ones by name."""
        now = self.monotonic()
        pairs: dict[str, Any] = {}
        unhealthy: list[str] = []
        with self._lock:
            for name, state in sorted(self._pairs.items()):
                since = state.last_success if state.last_success is not None else self.started
                age = now - since
                ok = age <= self.allowed_seconds
                if not ok:
                    unhealthy.append(name)
                pairs[name] = {
                    "healthy": ok,
                    "last_status": state.last_status,
                    "seconds_since_success": (
                        None if state.last_success is None else round(now - state.last_success, 1)
                    ),
                    "last_error": state.last_error,
                }
        healthy = not unhealthy
        body: dict[str, Any] = {
            "status": "ok" if healthy else "unhealthy",
            "allowed_seconds_without_success": self.allowed_seconds,
            "pairs": pairs,
        }
        if unhealthy:
            body["unhealthy"] = unhealthy
            body["reason"] = (
                f"pair {', '.join(unhealthy)} has not completed a cycle successfully in "
                f"{self.allowed_seconds:g}s ({self.max_intervals:g} intervals)"
            )
        return HealthReport(healthy, body)


def limiters_of(connector: Connector[Any]) -> dict[str, RollingWindowLimiter]:
    """The client-side rate limiters a connector paces its calls with, by name.

    Connectors keep them on themselves or on their HTTP client (HubSpot: ``client.burst`` and
    ``client.search_limiter``); the contract does not expose them, so they are found by looking
    two attributes deep -- a connector without any simply reports no pacing.
    """
    found: dict[str, RollingWindowLimiter] = {}
    seen: set[int] = set()

    def walk(obj: object, depth: int) -> None:
        if id(obj) in seen or depth > 2:
            return
        seen.add(id(obj))
        for attr, value in list(getattr(obj, "__dict__", {}).items()):
            if isinstance(value, RollingWindowLimiter):
                found.setdefault(value.name or attr, value)
            elif depth < 2 and hasattr(value, "__dict__") and not isinstance(value, type):
                walk(value, depth + 1)

    walk(connector, 0)
    return found


class Metrics(Sink):
    """The daemon's Prometheus metrics, updated from cycle results; its own registry."""

    def __init__(
        self,
        *,
        connectors: Iterable[Connector[Any]] = (),
        health: Health | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.health = health
        self.connectors = list(connectors)
        r = self.registry
        self.cycles = Counter(
            "crm_bridge_cycles", "Sync cycles by pair and outcome.", ["pair", "status"], registry=r
        )
        self.duration = Histogram(
            "crm_bridge_cycle_duration_seconds",
            "How long a cycle took.",
            ["pair"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.records = Counter(
            "crm_bridge_records",
            "Records by what the cycle did with them.",
            ["pair", "outcome"],
            registry=r,
        )
        self.calls = Counter(
            "crm_bridge_api_calls",
            "Vendor API calls by connector and endpoint family.",
            ["pair", "connector", "family"],
            registry=r,
        )
        self.waits = Counter(
            "crm_bridge_rate_limit_wait_seconds",
            "Seconds spent waiting for a client-side rate limiter.",
            ["connector", "limiter"],
            registry=r,
        )
        self.retries = Counter(
            "crm_bridge_retries",
            "HTTP retries by what caused them (rate_limited includes Retry-After waits).",
            ["action"],
            registry=r,
        )
        self.retry_wait = Counter(
            "crm_bridge_retry_wait_seconds",
            "Seconds slept before HTTP retries (server-requested or backoff).",
            ["action"],
            registry=r,
        )
        self.dead_letters = Gauge(
            "crm_bridge_dead_letters_open", "Open dead letters.", ["pair"], registry=r
        )
        self.lag = Gauge(
            "crm_bridge_cursor_lag_seconds",
            "How far behind now a capped read stopped (0: caught up).",
            ["pair", "object", "side"],
            registry=r,
        )
        self.last_success = Gauge(
            "crm_bridge_last_success_timestamp_seconds",
            "Unix time of the pair's last successful cycle.",
            ["pair"],
            registry=r,
        )
        self.healthy = Gauge(
            "crm_bridge_pair_healthy",
            "1 when /healthz counts the pair healthy.",
            ["pair"],
            registry=r,
        )
        self._waited: dict[tuple[str, str], float] = {}

    def cycle_done(self, result: CycleResult) -> None:
        """Count the cycle in every metric it touches."""
        if result.plan_only:
            return
        pair = result.pair
        self.cycles.labels(pair, result.status).inc()
        self.duration.labels(pair).observe(result.seconds)
        for outcome, n in result.counts.items():
            if n > 0:
                self.records.labels(pair, outcome).inc(n)
        for connector, families in result.calls.items():
            for family, n in families.items():
                self.calls.labels(pair, connector, family).inc(n)
        self.dead_letters.labels(pair).set(result.open_dead_letters)
        for (obj, side), seconds in result.lag_seconds.items():
            self.lag.labels(pair, obj, side).set(seconds)
        if result.status == "ok":
            self.last_success.labels(pair).set(result.finished_at.timestamp())
        self._pacing()

    def _pacing(self) -> None:
        for conn in self.connectors:
            for name, limiter in limiters_of(conn).items():
                waited = limiter.stats().waited_seconds
                key = (conn.name, name)
                delta = waited - self._waited.get(key, 0.0)
                if delta > 0:
                    self.waits.labels(conn.name, name).inc(delta)
                self._waited[key] = waited

    def retry(self, action: str, wait: float) -> None:
        """Count one HTTP retry (fed by :class:`RetryTap`)."""
        self.retries.labels(action).inc()
        if wait > 0:
            self.retry_wait.labels(action).inc(wait)

    def render(self) -> bytes:
        """The text exposition of the registry, health gauges refreshed first."""
        if self.health is not None:
            for name, verdict in self.health.report().body["pairs"].items():
                self.healthy.labels(name).set(1 if verdict["healthy"] else 0)
        return generate_latest(self.registry)


class RetryTap(logging.Handler):
    """Counts the ``http.retry`` events :mod:`crm_bridge.http.retry` logs, into :class:`Metrics`.

    Why a log handler: the retry loop already announces every retry as a structured event, so
    counting them needs no new hook in the HTTP seam.  It sits on the ``crm_bridge.http.retry``
    logger (a warning, so it is seen at every level but ``error``).
    """

    LOGGER = "crm_bridge.http.retry"

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(logging.DEBUG)
        self.metrics = metrics

    def emit(self, record: logging.LogRecord) -> None:
        """Count the retry the record announces."""
        event = record.msg
        if isinstance(event, dict) and event.get("event") == "http.retry":
            wait = event.get("wait")
            self.metrics.retry(
                str(event.get("action", "unknown")),
                float(wait) if isinstance(wait, int | float) else 0.0,
            )

    def __enter__(self) -> RetryTap:
        logging.getLogger(self.LOGGER).addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger(self.LOGGER).removeHandler(self)


class _QuietHandler(WSGIRequestHandler):
    """No access log lines on stderr: a scraper every 15 s would drown the daemon's events."""

    def log_message(self, format: str, *args: Any) -> None:
        """Drop it."""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class OpsServer:
    """``/metrics`` and ``/healthz`` over HTTP on ``host:port`` (port 0: any free port)."""

    def __init__(
        self, metrics: Metrics, health: Health, *, host: str = "0.0.0.0", port: int = 9464
    ) -> None:
        self.metrics = metrics
        self.health = health
        try:
            self._server = make_server(
                host, port, self._app, server_class=_ThreadingServer, handler_class=_QuietHandler
            )
        except OSError as exc:
            raise ConfigError(
                [
                    ConfigProblem(
                        "--metrics-port",
                        f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                        fix="choose a free port (or 0 for any)",
                    )
                ]
            ) from None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return int(self._server.server_port)

    @property
    def host(self) -> str:
        """The address bound."""
        return str(self._server.server_address[0])

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            body = self.metrics.render()
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return iter([body])
        if path in ("/healthz", "/health"):
            report = self.health.report()
            payload = json.dumps(report.body, indent=2).encode()
            status = "200 OK" if report.healthy else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json")])
            return iter([payload])
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return iter([b"crm-bridge: /metrics or /healthz\n"])

    def start(self) -> OpsServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="crm-bridge-ops", daemon=True
        )
        self._thread.start()
        _log.info("ops.listening", host=self.host, port=self.port, paths=["/metrics", "/healthz"])
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> OpsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
