"""Marketo emulator fixtures: a recording server, an httpx helper, and the swagger check.

The session server is the package's own emulator with a thin recording wrapper around its ASGI
app, so every answer any test provokes -- through httpx or through ``marketorestpython`` -- is
checked against the vendor swagger after the test (``_swagger_conformance``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_bridge.connectors.marketo.emulator import MarketoEmulator, RunningMarketo
from crm_bridge.emulators.runtime import CONTROL_PREFIX, serve

from .swagger import Answer, problems


class Recorder:
    """ASGI wrapper keeping every API exchange (control-plane calls excluded)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.answers: list[Answer] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        request_chunks: list[bytes] = []
        status = 0
        ctype = ""
        chunks: list[bytes] = []

        async def recv() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                request_chunks.append(message.get("body", b""))
            return message

        async def snd(message: Message) -> None:
            nonlocal status, ctype
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = dict(message.get("headers", []))
                ctype = headers.get(b"content-type", b"").decode()
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, recv, snd)
        req_headers = dict(scope.get("headers", []))
        answer = Answer(
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode(),
            request_body=b"".join(request_chunks),
            request_type=req_headers.get(b"content-type", b"").decode(),
            status=status,
            content_type=ctype,
            body=b"".join(chunks),
        )
        with self.lock:
            self.answers.append(answer)

    def peek(self) -> list[Answer]:
        with self.lock:
            return list(self.answers)

    def take(self) -> list[Answer]:
        with self.lock:
            answers, self.answers = self.answers, []
        return answers


@pytest.fixture(scope="session")
def marketo_emulator() -> MarketoEmulator:
    return MarketoEmulator()


@pytest.fixture(scope="session")
def marketo_recorder(marketo_emulator: MarketoEmulator) -> Recorder:
    return Recorder(marketo_emulator.app)


@pytest.fixture(scope="session")
def marketo_server(
    marketo_emulator: MarketoEmulator, marketo_recorder: Recorder
) -> Iterator[RunningMarketo]:
    """The package's emulator on a real socket, served through the recorder."""
    running = RunningMarketo(marketo_emulator, serve(marketo_recorder))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def marketo(marketo_server: RunningMarketo, marketo_recorder: Recorder) -> Iterator[RunningMarketo]:
    """The session emulator, emptied and with default settings; answers checked afterwards."""
    marketo_server.emulator.reset()
    marketo_recorder.take()
    yield marketo_server
    bad = [p for answer in marketo_recorder.take() for p in problems(answer)]
    assert not bad, "answers that do not match the vendor swagger:\n" + "\n".join(bad[:20])


class Api:
    """Plain httpx calls with a bearer token; ``call`` returns the parsed envelope."""

    def __init__(self, running: RunningMarketo) -> None:
        self.running = running
        self.base = running.base_url
        self.token = running.token()
        self.http = httpx.Client(base_url=self.base, timeout=30)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers(), **kwargs.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kwargs)

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        resp = self.raw(method, path, **kwargs)
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        return self.call("GET", path, params=params)

    def post(self, path: str, json: Any = None, **params: Any) -> dict[str, Any]:
        return self.call("POST", path, json=json, params=params)

    def ok(self, method: str, path: str, **kwargs: Any) -> list[Any]:
        body = self.call(method, path, **kwargs)
        assert body["success"] is True, body
        return body.get("result", [])  # type: ignore[no-any-return]

    def error(self, method: str, path: str, **kwargs: Any) -> str:
        """The code of a whole-request failure (asserting it is one)."""
        body = self.call(method, path, **kwargs)
        assert body["success"] is False, body
        assert len(body["errors"]) == 1 and isinstance(body["errors"][0]["code"], str)
        return str(body["errors"][0]["code"])

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def api(marketo: RunningMarketo) -> Iterator[Api]:
    client = Api(marketo)
    try:
        yield client
    finally:
        client.close()


def make_leads(api: Api, *rows: dict[str, Any]) -> list[int]:
    """Create leads through the API; their ids (asserting each was created)."""
    result = api.ok("POST", "/rest/v1/leads.json", json={"input": list(rows)})
    assert [r["status"] for r in result] == ["created"] * len(rows), result
    return [int(r["id"]) for r in result]
