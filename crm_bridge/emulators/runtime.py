"""What every emulator shares: a real server on 127.0.0.1, a clock, a fault plane and call counts.

The vendor emulators (``salesforce``, ``hubspot``) are Starlette apps.  This module turns such an
app into a running server on a free loopback port (optionally TLS with a throwaway CA, because
simple-salesforce only speaks ``https://``), and supplies the parts of the control plane that do
not depend on the vendor:

* :class:`EmulatorClock` -- the time the emulator stamps records and tokens with.  Tests move it
  forward instead of sleeping.
* :class:`FaultPlane` -- "the next N calls matching this route answer status S with body B",
  added latency, a connection dropped mid-response, ``Retry-After`` present or absent.
* :class:`CallCounter` -- calls per endpoint family, so tests and ``bench/`` can compare what the
  product spent against the theoretical minimum.

The control plane lives on fenced paths under ``/__emulator__/``.  Nothing in crm-bridge's
production code calls it; tests, ``bench/`` and ``crm-bridge demo`` do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTROL_PREFIX = "/__emulator__"

__all__ = [
    "CONTROL_PREFIX",
    "CallCounter",
    "EmulatorClock",
    "Fault",
    "FaultMiddleware",
    "FaultPlane",
    "RunningServer",
    "TlsMaterial",
    "serve",
]


class EmulatorClock:
    """Wall-clock time plus an offset that tests can move; thread-safe.

    Why: token expiry, rate-limit windows and ``SystemModstamp`` all depend on time, and tests must
    never sleep to reach a state.  ``advance()`` jumps forward; ``freeze()`` pins the time so that
    stamps are reproducible.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen: float | None = None

    def time(self) -> float:
        """Seconds since the epoch, as the emulator sees them."""
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return time.time() + self._offset

    def now(self) -> datetime:
        """The emulator's current time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.time(), tz=UTC)

    def advance(self, seconds: float) -> None:
        """Move the clock forward (or back, with a negative value)."""
        with self._lock:
            if self._frozen is not None:
                self._frozen += seconds
            else:
                self._offset += seconds

    def freeze(self, at: datetime | None = None) -> None:
        """Stop the clock at ``at`` (default: now)."""
        value = at.timestamp() if at is not None else self.time()
        with self._lock:
            self._frozen = value

    def unfreeze(self) -> None:
        """Let the clock run again from where it stands."""
        with self._lock:
            if self._frozen is not None:
                self._offset = self._frozen - time.time()
                self._frozen = None

    def reset(self) -> None:
        """Back to the real wall clock."""
        with self._lock:
            self._offset = 0.0
            self._frozen = None


@dataclass
class Fault:
    """One injected fault: which calls it matches, how many, and what they get instead.

    ``status`` with ``body`` answers in place of the real handler; ``latency`` (seconds) delays
    the real answer; ``drop`` starts the answer and then closes the socket, which the clients see
    as a broken connection.  ``times`` counts down per matching call; ``None`` means forever.
    """

    path: str = ".*"
    method: str | None = None
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    latency: float = 0.0
    drop: bool = False
    times: int | None = 1
    skip: int = 0

    def matches(self, method: str, path: str) -> bool:
        """Whether a call with this method and path is affected."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return re.search(self.path, path) is not None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fault:
        """Build a fault from the control plane's JSON body."""
        known = {
            "path",
            "method",
            "status",
            "body",
            "headers",
            "latency",
            "drop",
            "times",
            "skip",
        }
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{k: v for k, v in data.items() if k in known})


class FaultPlane:
    """The list of armed faults; the first matching one with calls left wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Arm a fault."""
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """The fault that applies to this call, consuming one of its uses."""
        with self._lock:
            for fault in self._faults:
                if not fault.matches(method, path):
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    def armed(self) -> list[Fault]:
        """A copy of the armed faults (for the control plane's GET)."""
        with self._lock:
            return list(self._faults)


class CallCounter:
    """Calls per endpoint family (e.g. ``query``, ``collections``, ``batch``, ``search``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, family: str) -> None:
        """Count one call."""
        with self._lock:
            self._counts[family] += 1

    def snapshot(self) -> dict[str, int]:
        """The counts so far, with a ``total``."""
        with self._lock:
            counts = dict(self._counts)
        counts["total"] = sum(counts.values())
        return counts

    def reset(self) -> None:
        """Start counting from zero."""
        with self._lock:
            self._counts.clear()


Classifier = Callable[[str, str], str | None]
"""Maps (method, path) to an endpoint family, or ``None`` for calls that are not counted."""


class FaultMiddleware:
    """Pure ASGI middleware: counts calls by family and applies armed faults.

    Control-plane paths are neither counted nor faulted, so a test can always disarm what it armed.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        faults: FaultPlane,
        calls: CallCounter,
        classify: Classifier,
        render_fault_body: Callable[[Fault], bytes] | None = None,
    ) -> None:
        self.app = app
        self.faults = faults
        self.calls = calls
        self.classify = classify
        self.render_fault_body = render_fault_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count, then fault or pass through."""
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        family = self.classify(method, path)
        if family is not None:
            self.calls.add(family)
        fault = self.faults.take(method, path)
        if fault is None:
            await self.app(scope, receive, send)
            return
        if fault.latency:
            await asyncio.sleep(fault.latency)
        if fault.drop:
            await _drop_mid_response(send)
            return
        if fault.status is None:
            await self.app(scope, receive, send)
            return
        await _send_fault(send, fault, self.render_fault_body)


async def _send_fault(send: Send, fault: Fault, render: Callable[[Fault], bytes] | None) -> None:
    import json

    if render is not None:
        body = render(fault)
    elif isinstance(fault.body, str | bytes):
        body = fault.body.encode() if isinstance(fault.body, str) else fault.body
    else:
        body = json.dumps(fault.body).encode()
    headers = {"content-type": "application/json;charset=UTF-8", **fault.headers}
    raw_headers = [(k.lower().encode(), str(v).encode()) for k, v in headers.items()]
    raw_headers.append((b"content-length", str(len(body)).encode()))
    assert fault.status is not None
    await send({"type": "http.response.start", "status": fault.status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class DroppedConnection(Exception):
    """Raised after a response has started so that the server closes the socket mid-answer."""


async def _drop_mid_response(send: Send) -> None:
    # Promise a body, send part of it, then fail: uvicorn closes the transport and the client
    # sees an incomplete read -- the closest an ASGI app can get to a reset connection.
    start: Message = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
    }
    await send(start)
    await send({"type": "http.response.body", "body": b"{", "more_body": True})
    raise DroppedConnection("fault plane dropped the connection")


@dataclass(frozen=True)
class TlsMaterial:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost."""

    ca_pem: Path
    cert_pem: Path
    key_pem: Path

    @classmethod
    def create(cls, directory: Path | None = None) -> TlsMaterial:
        """Mint a CA with trustme and write the PEM files to ``directory`` (a temp dir if None)."""
        import trustme

        where = directory or Path(tempfile.mkdtemp(prefix="crm-bridge-tls-"))
        where.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        ca_pem = where / "emulator-ca.pem"
        cert_pem = where / "emulator-cert.pem"
        key_pem = where / "emulator-key.pem"
        ca.cert_pem.write_to_path(str(ca_pem))
        cert.private_key_pem.write_to_path(str(key_pem))
        cert_pem.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        return cls(ca_pem=ca_pem, cert_pem=cert_pem, key_pem=key_pem)


class _HideDroppedConnections(logging.Filter):
    """Keep uvicorn from logging a traceback for every connection the fault plane drops on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DroppedConnection)


logging.getLogger("uvicorn.error").addFilter(_HideDroppedConnections())


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the host process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class RunningServer:
    """A server running in a background thread; stop it with :meth:`stop` or ``with``."""

    base_url: str
    host: str
    port: int
    tls: TlsMaterial | None
    _server: uvicorn.Server
    _thread: threading.Thread

    @property
    def hostport(self) -> str:
        """``127.0.0.1:PORT`` -- what simple-salesforce wants as ``instance_url``."""
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        """Ask the server to finish and wait for its thread."""
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: TlsMaterial | None = None,
    on_ready: Callable[[], Awaitable[None]] | None = None,
) -> RunningServer:
    """Start ``app`` on ``host:port`` (0 = a free port) in a daemon thread and wait until it listens.

    The socket is bound here, before the thread starts, so the caller knows the port at once and
    two servers can never race for it.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ssl_certfile=str(tls.cert_pem) if tls else None,
        ssl_keyfile=str(tls.key_pem) if tls else None,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=1,
    )
    server = _QuietServer(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"emulator:{bound_port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"emulator on {host}:{bound_port} did not start")
        time.sleep(0.005)  # waiting on a condition (server.started), not sleeping to pass
    scheme = "https" if tls else "http"
    return RunningServer(
        base_url=f"{scheme}://{host}:{bound_port}",
        host=host,
        port=bound_port,
        tls=tls,
        _server=server,
        _thread=thread,
    )
