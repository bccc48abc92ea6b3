"""What every emulator shares: a real server on 127.0.0.1, a clock, a fault plane and call counts.

The vendor emulators (``salesforce``, ``hubspot``) are Starlette apps.  This module turns such an
app into a running server on a free loopback port (optionally TLS with a throwaway CA, because
simple-salesforce only speaks ``https://``), and supplies the parts of the control plane that do
not depend on the vendor:

* :class:`EmulatorClock` -- the time the emulator stamps records and tokens with.  Tests move it
  forward instead of sleeping.
* :class:`FaultPlane` -- "the next N calls matching this route answer status S with body B",
  added latency, a connection dropped mid-response, ``Retry-After`` present or absent -- before
  the real handler runs or, with ``after_apply``, after it has applied the call (a write the
  vendor committed whose answer is late or lost).  Every call a fault strikes is logged as a
  :class:`FaultHit`, so a test can act at a precise moment (e.g. ``kill -9`` a client while the
  answer to its applied write is held).
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
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
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
    "FaultHit",
    "FaultMiddleware",
    "FaultPlane",
    "RunningServer",
    "TlsMaterial",
    "read_body",
    "replay_body",
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

    ``after_apply`` moves the fault behind the real handler: the call is applied first (a write
    is committed in the emulator's state), then its answer is held for ``latency`` seconds, and
    then it is dropped (``drop``), replaced (``status``/``body``) or sent as it was.  A held
    answer is abandoned as soon as the client disconnects.  ``body_regex`` narrows the match to
    calls whose request body matches (searched in the body decoded as UTF-8), e.g. a Composite
    call carrying Collections writes rather than queries.
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
    after_apply: bool = False
    body_regex: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.after_apply, bool):
            raise TypeError(f"after_apply must be true or false, not {self.after_apply!r}")
        if not isinstance(self.drop, bool):
            raise TypeError(f"drop must be true or false, not {self.drop!r}")
        if isinstance(self.latency, bool) or not isinstance(self.latency, int | float):
            raise TypeError(f"latency must be a number of seconds, not {self.latency!r}")
        if self.latency < 0:
            raise ValueError(f"latency must not be negative, not {self.latency!r}")
        for name in ("path", "body_regex"):
            pattern = getattr(self, name)
            if pattern is None and name == "body_regex":
                continue
            if not isinstance(pattern, str):
                raise TypeError(f"{name} must be a regular expression string, not {pattern!r}")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{name} {pattern!r} is not a regular expression: {exc}") from None

    def matches(self, method: str, path: str, body: bytes | None = None) -> bool:
        """Whether a call with this method, path (and request body) is affected.

        A fault with ``body_regex`` never matches a call whose body was not read (``None``).
        """
        if not self._matches_route(method, path):
            return False
        if self.body_regex is None:
            return True
        return (
            body is not None
            and re.search(self.body_regex, body.decode(errors="replace")) is not None
        )

    def needs_body(self, method: str, path: str) -> bool:
        """Whether deciding on this call requires its request body."""
        return self.body_regex is not None and self._matches_route(method, path)

    def _matches_route(self, method: str, path: str) -> bool:
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
            "after_apply",
            "body_regex",
        }
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class FaultHit:
    """One call a fault struck, as the control plane's ``GET /__emulator__/faults/hits`` lists it.

    Why: a test that must act at a precise moment -- "the write is applied and its answer is held:
    kill the client now" -- polls for the hit instead of guessing with sleeps.
    """

    seq: int
    """Position in the log (1 = the first call struck since the log was last cleared)."""
    method: str
    path: str
    fault: dict[str, Any]
    """The fault that struck (its ``times`` and ``skip`` as left after counting this call)."""
    applied: bool = False
    """The real handler ran to the end: whatever the call changes is in the emulator's state."""
    done: bool = False
    """The fault is finished with this call: answered, dropped, or the client went away."""
    client_gone: bool = False
    """The client disconnected while its answer was held (``after_apply`` with ``latency``)."""


class FaultPlane:
    """The list of armed faults; the first matching one with calls left wins.

    It also keeps the log of :class:`FaultHit` (the last ``max_hits`` calls struck).
    """

    def __init__(self, *, max_hits: int = 1000) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._hits: deque[FaultHit] = deque(maxlen=max_hits)
        self._seq = 0

    def add(self, fault: Fault) -> None:
        """Arm a fault."""
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._faults.clear()

    def needs_body(self, method: str, path: str) -> bool:
        """Whether an armed fault must see this call's request body to decide whether it applies."""
        with self._lock:
            return any(fault.needs_body(method, path) for fault in self._faults)

    def take(self, method: str, path: str, body: bytes | None = None) -> Fault | None:
        """The fault that applies to this call, consuming one of its uses."""
        with self._lock:
            for fault in self._faults:
                if not fault.matches(method, path, body):
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

    def record(self, fault: Fault, method: str, path: str) -> FaultHit:
        """Log that ``fault`` struck this call; the middleware updates the hit through :meth:`mark`."""
        with self._lock:
            self._seq += 1
            hit = FaultHit(seq=self._seq, method=method, path=path, fault=asdict(fault))
            self._hits.append(hit)
            return hit

    def mark(
        self,
        hit: FaultHit,
        *,
        applied: bool | None = None,
        done: bool | None = None,
        client_gone: bool | None = None,
    ) -> None:
        """Move a hit on (under the lock, so :meth:`hits` never sees a half-made change)."""
        with self._lock:
            if applied is not None:
                hit.applied = applied
            if done is not None:
                hit.done = done
            if client_gone is not None:
                hit.client_gone = client_gone

    def hits(self) -> list[FaultHit]:
        """Copies of the logged hits, oldest first."""
        with self._lock:
            return [replace(hit) for hit in self._hits]

    def clear_hits(self) -> None:
        """Empty the hit log (numbering starts again at 1)."""
        with self._lock:
            self._hits.clear()
            self._seq = 0


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
FaultHeaders = Callable[[Fault, Scope], dict[str, str]]
"""``(fault, request scope) -> headers`` an emulator adds to an injected answer (the fault's own
``headers`` win): e.g. HubSpot's rate-limit headers, which its real answers always carry."""
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
        fault_headers: FaultHeaders | None = None,
    ) -> None:
        self.app = app
        self.faults = faults
        self.calls = calls
        self.classify = classify
        self.render_fault_body = render_fault_body
        self.fault_headers = fault_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count, then fault or pass through."""
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        family = self.classify(method, path)
        if family is not None:
            self.calls.add(family)
        body: bytes | None = None
        if self.faults.needs_body(method, path):
            body = await read_body(receive)
            assert body is not None  # no limit
            receive = replay_body(body, receive)
        fault = self.faults.take(method, path, body)
        if fault is None:
            await self.app(scope, receive, send)
            return
        hit = self.faults.record(fault, method, path)
        try:
            if fault.after_apply:
                await self._after_apply(scope, receive, send, fault, hit)
            else:
                await self._before(scope, receive, send, fault, hit)
        finally:
            self.faults.mark(hit, done=True)

    def _extra_headers(self, fault: Fault, scope: Scope) -> dict[str, str]:
        if self.fault_headers is None:
            return {}
        return self.fault_headers(fault, scope)

    async def _before(
        self, scope: Scope, receive: Receive, send: Send, fault: Fault, hit: FaultHit
    ) -> None:
        if fault.latency:
            await asyncio.sleep(fault.latency)
        if fault.drop:
            await _drop_mid_response(send)
            return
        if fault.status is None:
            await self.app(scope, receive, send)
            self.faults.mark(hit, applied=True)
            return
        await _send_fault(send, fault, self.render_fault_body, self._extra_headers(fault, scope))

    async def _after_apply(
        self, scope: Scope, receive: Receive, send: Send, fault: Fault, hit: FaultHit
    ) -> None:
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        self.faults.mark(hit, applied=True)
        if fault.latency and not await _wait_unless_client_leaves(fault.latency, receive):
            self.faults.mark(hit, client_gone=True)
            return
        if fault.drop:
            await _drop_mid_response(send)
            return
        if fault.status is not None:
            await _send_fault(
                send, fault, self.render_fault_body, self._extra_headers(fault, scope)
            )
            return
        for message in held:
            await send(message)


async def read_body(receive: Receive, limit: int | None = None) -> bytes | None:
    """The whole request body, read before the handler; ``None`` once it exceeds ``limit``.

    Why before: a fault with ``body_regex`` must see it, and an emulator enforcing a body limit
    must refuse a chunked body that declared no length.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the already-read body to the app once, then the real channel."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _wait_unless_client_leaves(seconds: float, receive: Receive) -> bool:
    """Wait ``seconds``; ``False`` as soon as the client disconnects instead (a killed client)."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(disconnected(), timeout=seconds)
    except TimeoutError:
        return True
    return False


async def _send_fault(
    send: Send,
    fault: Fault,
    render: Callable[[Fault], bytes] | None,
    extra_headers: dict[str, str],
) -> None:
    import json

    if render is not None:
        body = render(fault)
    elif isinstance(fault.body, str | bytes):
        body = fault.body.encode() if isinstance(fault.body, str) else fault.body
    else:
        body = json.dumps(fault.body).encode()
    headers = {"content-type": "application/json;charset=UTF-8", **extra_headers, **fault.headers}
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
