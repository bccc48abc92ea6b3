from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from crm_bridge.config import LoggingSettings
from crm_bridge.connectors.hubspot.emulator import RunningHubSpot
from crm_bridge.connectors.salesforce.emulator import RunningSalesforce
from crm_bridge.log import configure_logging
from tests.sync.emulated import Emulated, Make


@pytest.fixture
def make(salesforce: RunningSalesforce, hubspot: RunningHubSpot, tmp_path: Path) -> Iterator[Make]:
    made: list[Emulated] = []

    def build(*, store: str = "store", **kwargs: Any) -> Emulated:
        where = tmp_path / store
        where.mkdir(exist_ok=True)
        emulated = Emulated(salesforce, hubspot, where, **kwargs)
        made.append(emulated)
        return emulated

    yield build
    for emulated in made:
        emulated.close()


class JsonLog:
    """The JSON log lines written since the fixture configured logging."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.stream.getvalue().splitlines() if line]
        return [e for e in lines if name is None or e.get("event") == name]

    @property
    def text(self) -> str:
        return self.stream.getvalue()


@pytest.fixture
def json_log() -> Iterator[JsonLog]:
    stream = io.StringIO()
    configure_logging(LoggingSettings(format="json", level="info"), stream=stream)
    yield JsonLog(stream)
    configure_logging(LoggingSettings(), stream=io.StringIO())


class Receiver:
    """A local HTTP endpoint standing in for a webhook; keeps every JSON body posted to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/T0/SECRET-path-7f3a"

    def events(self) -> list[dict[str, Any]]:
        return [e for body in self.bodies for e in body.get("events", [])]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()
