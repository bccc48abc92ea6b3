"""A plain Pub/Sub API client for the emulator tests, written the way Salesforce's examples are.

Why not the connector's feed: these tests pin what the *server* does (flow control, replay
presets, errors), so they drive the generated stubs directly over a real TLS channel.
"""

from __future__ import annotations

import io
import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

import fastavro
import grpc

from crm_bridge.connectors.salesforce.emulator import RunningSalesforce
from crm_bridge.connectors.salesforce.pubsub import pubsub_pb2 as pb2
from crm_bridge.connectors.salesforce.pubsub import pubsub_pb2_grpc as pb2_grpc

WAIT = 5.0
"""Longest a test waits for an answer it expects (a bound, not a sleep)."""
QUIET = 0.3
"""How long a test listens to be sure nothing more comes."""


def metadata(
    salesforce: RunningSalesforce, token: str | None = None, **overrides: str
) -> tuple[tuple[str, str], ...]:
    values = {
        "accesstoken": token or salesforce.emulator.issue_token(),
        "instanceurl": salesforce.instance_url,
        "tenantid": salesforce.emulator.settings.org_id,
        **overrides,
    }
    return tuple(values.items())


def error_code(exc: grpc.RpcError) -> str:
    for key, value in exc.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "error-code":
            return str(value)
    return ""


class PubSubClient:
    """Stub + channel + schema cache for one emulator."""

    def __init__(self, salesforce: RunningSalesforce, token: str | None = None) -> None:
        with open(salesforce.ca_path, "rb") as handle:
            roots = handle.read()
        self.channel = grpc.secure_channel(
            salesforce.pubsub_address, grpc.ssl_channel_credentials(root_certificates=roots)
        )
        self.stub = pb2_grpc.PubSubStub(self.channel)
        self.salesforce = salesforce
        self.metadata = metadata(salesforce, token)
        self.schemas: dict[str, dict[str, Any]] = {}

    def log_in_again(self) -> None:
        """A fresh session (after the emulator clock moved past the token lifetime)."""
        self.metadata = metadata(self.salesforce)

    def schema(self, schema_id: str) -> dict[str, Any]:
        if schema_id not in self.schemas:
            info = self.stub.GetSchema(
                pb2.SchemaRequest(schema_id=schema_id), metadata=self.metadata, timeout=WAIT
            )
            self.schemas[schema_id] = json.loads(info.schema_json)
        return self.schemas[schema_id]

    def decode(self, event: Any) -> dict[str, Any]:
        parsed = fastavro.parse_schema(self.schema(event.schema_id))
        body = fastavro.schemaless_reader(io.BytesIO(event.payload), parsed)
        assert isinstance(body, dict)
        return body

    def subscribe(
        self,
        topic: str = "/data/ChangeEvents",
        *,
        preset: int = pb2.ReplayPreset.LATEST,
        replay_id: bytes = b"",
        num_requested: int = 100,
    ) -> Subscription:
        return Subscription(self, topic, preset, replay_id, num_requested)

    def close(self) -> None:
        self.channel.close()


class Subscription:
    """One Subscribe stream: FetchRequests from a queue, FetchResponses read on a thread."""

    def __init__(
        self, client: PubSubClient, topic: str, preset: int, replay_id: bytes, num: int
    ) -> None:
        self.client = client
        self.requests: queue.Queue[Any] = queue.Queue()
        self.responses: queue.Queue[Any] = queue.Queue()
        self.requests.put(
            pb2.FetchRequest(
                topic_name=topic, replay_preset=preset, replay_id=replay_id, num_requested=num
            )
        )
        self.call = client.stub.Subscribe(self._outgoing(), metadata=client.metadata)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _outgoing(self) -> Iterator[Any]:
        while True:
            item = self.requests.get()
            if item is None:
                return
            yield item

    def _read(self) -> None:
        try:
            for response in self.call:
                self.responses.put(response)
        except grpc.RpcError as exc:
            self.responses.put(exc)

    def fetch(self, num_requested: int, **fields: Any) -> None:
        self.requests.put(pb2.FetchRequest(num_requested=num_requested, **fields))

    def next(self, timeout: float = WAIT) -> Any:
        """The next FetchResponse (raises the stream's RpcError, or queue.Empty on timeout)."""
        item = self.responses.get(timeout=timeout)
        if isinstance(item, grpc.RpcError):
            raise item
        return item

    def events(self, count: int, timeout: float = WAIT) -> list[Any]:
        """The next ``count`` ConsumerEvents, skipping keepalives."""
        got: list[Any] = []
        while len(got) < count:
            got.extend(self.next(timeout).events)
        return got

    def headers(self, count: int) -> list[dict[str, Any]]:
        return [self.client.decode(e.event)["ChangeEventHeader"] for e in self.events(count)]

    def quiet(self) -> bool:
        """True when nothing arrives for a short while."""
        try:
            response = self.responses.get(timeout=QUIET)
        except queue.Empty:
            return True
        return isinstance(response, grpc.RpcError) or not response.events

    def close(self) -> None:
        self.requests.put(None)
        self.call.cancel()
        self.thread.join(timeout=WAIT)
