"""The daemon's operator endpoints: metrics and health wired to a session's cycles.

Why a function and not code in the CLI command: the test drives exactly what ``crm-bridge
daemon --metrics-port`` runs -- a :class:`~crm_bridge.sync.daemon.Daemon` over a session's
runners with this server beside it -- with an injected clock and emulators, and scrapes it over
a real socket.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from crm_bridge.ops.metrics import Health, Metrics, OpsServer, RetryTap
from crm_bridge.session import Session

__all__ = ["Ops", "serve_ops"]


@dataclass
class Ops:
    """What :func:`serve_ops` set up: scrape ``url + "/metrics"``, probe ``url + "/healthz"``."""

    metrics: Metrics
    health: Health
    server: OpsServer | None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (the loopback address even when bound to all)."""
        if self.server is None:
            raise RuntimeError("no server: metrics are collected but not served")
        host = "127.0.0.1" if self.server.host in ("0.0.0.0", "") else self.server.host
        return f"http://{host}:{self.server.port}"


@contextmanager
def serve_ops(
    session: Session,
    pairs: Sequence[str],
    *,
    interval: float,
    port: int | None,
    host: str = "127.0.0.1",
    unhealthy_after: float = 3.0,
    monotonic: Callable[[], float] = time.monotonic,
) -> Iterator[Ops]:
    """Metrics and health on the session's tracker for as long as the block runs.

    ``port=None`` collects (and health-checks) without serving; ``port=0`` takes any free port.
    """
    health = Health(pairs, interval=interval, max_intervals=unhealthy_after, monotonic=monotonic)
    connectors = {id(c): c for name in pairs for c in session.runner(name).connectors.values()}
    metrics = Metrics(connectors=connectors.values(), health=health)
    session.tracker.add(health)
    session.tracker.add(metrics)
    server = OpsServer(metrics, health, host=host, port=port) if port is not None else None
    try:
        with RetryTap(metrics):
            if server is not None:
                server.start()
            yield Ops(metrics, health, server)
    finally:
        if server is not None:
            server.stop()
        session.tracker.remove(metrics)
        session.tracker.remove(health)
