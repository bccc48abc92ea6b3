"""Salesforce Change Data Capture over the Pub/Sub API (gRPC + Avro), read as change hints.

Why one stream: a CDC *channel* (``/data/ChangeEvents``, or a custom ``/data/Name__chn``)
carries the events of every entity selected for it, so one ``Subscribe`` call serves every object
of a pair, and the feed's position is one replay id.  A per-object topic would cost a stream and
a stored position per object.

How it reads, in the way Salesforce's own examples do: the first ``FetchRequest`` names the
channel and the start (``LATEST`` for a feed with no position, else ``CUSTOM`` after the stored
replay id); events come only while asked for (``cdc_batch_size`` per FetchRequest, asked again
when half are used).  A background thread reads the stream into a queue, so
:meth:`SalesforceCdcFeed.poll` waits on the queue and returns within its timeout whatever the
network does.  Each payload is Avro, decoded with the schema ``GetSchema`` names by the event's
``schema_id`` (fetched once per id and cached).

What becomes of an event (never the record's data -- the engine reads the record by id):

* CREATE / UPDATE / UNDELETE -> an ``upsert`` hint per record id; DELETE -> ``delete``;
  GAP_CREATE/UPDATE/DELETE/UNDELETE -> ``gap`` (the org lost the details; the record is named);
* GAP_OVERFLOW (a transaction too large to describe) -> ``lost=True``: the engine polls fully;
* ``ours=True`` when ``changeOrigin`` names our ``Sforce-Call-Options`` client id;
* a redelivered event (same event id) is dropped; hints carry ``event_id`` = event id, object and
  record id, so the engine can drop what this feed sent before a restart;
* a replay id the service no longer holds (72 h retention, or an org migration) ends the stream
  with ``sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted``: the feed answers
  ``lost=True`` and resumes from ``LATEST``.

An entity maps to the served objects that contain it: ``Lead`` to ``Lead`` and ``Person``,
``Contact`` to ``Contact`` and ``Person``, others to themselves.

Costs, counted in the connector's ``calls``: ``pubsub.subscribe`` (one per stream opened: at
start, after a resume from another position, after an error), ``pubsub.fetch`` (FetchRequests:
one per ``cdc_batch_size`` / 2 events), ``pubsub.get_schema`` (one per schema id and process).
None of them spends the org's daily REST allocation; CDC has its own event delivery allocation.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import queue
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crm_bridge.connector import ChangeFeed, ChangeHint, FeedBatch, HintKind
from crm_bridge.errors import AuthError, ConfigError, ConfigProblem, TransientError

__all__ = [
    "EXTRA",
    "REPLAY_CORRUPTED",
    "PubSubCredentials",
    "SalesforceCdcFeed",
    "changed_field_names",
    "load_grpc",
]

EXTRA = "salesforce-cdc"
REPLAY_CORRUPTED = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
_CONTAINED_IN = {"Lead": ("Person",), "Contact": ("Person",)}
ROLE_ENTITY = "OpportunityContactRole"
"""Its events hint the Opportunity: the connector serves an opportunity's roles as its field."""
_KINDS: dict[str, HintKind] = {
    "CREATE": "upsert",
    "UPDATE": "upsert",
    "UNDELETE": "upsert",
    "DELETE": "delete",
    "GAP_CREATE": "gap",
    "GAP_UPDATE": "gap",
    "GAP_DELETE": "gap",
    "GAP_UNDELETE": "gap",
}
_SEEN_EVENTS = 10_000


def load_grpc() -> tuple[Any, Any, Any]:
    """``(grpc, pubsub_pb2, pubsub_pb2_grpc)``, or a ConfigError naming the extra to install."""
    try:
        import grpc

        from crm_bridge.connectors.salesforce.pubsub import pubsub_pb2, pubsub_pb2_grpc
    except (ImportError, RuntimeError) as exc:  # RuntimeError: the stubs refuse an old grpcio
        raise ConfigError(
            [
                ConfigProblem(
                    key="connectors.salesforce.cdc",
                    problem=f"Salesforce CDC needs the {EXTRA} extra ({exc})",
                    fix=f"pip install 'crm-bridge[{EXTRA}]', or set cdc = false",
                )
            ],
            heading=f"Salesforce CDC needs the {EXTRA} extra",
        ) from exc
    return grpc, pubsub_pb2, pubsub_pb2_grpc


def changed_field_names(schema: dict[str, Any], bitmaps: Sequence[str]) -> list[str]:
    """Field names a ``changedFields``/``nulledFields`` bitmap names (top-level fields only).

    Bit *i* of the ``0x...`` value is the schema's field *i* (0 is ``ChangeEventHeader``); the
    ``parent-0x...`` entries of compound fields are not expanded.
    """
    fields = [str(f["name"]) for f in schema.get("fields", [])]
    names: list[str] = []
    for entry in bitmaps:
        if not entry.startswith("0x"):
            continue
        value = int(entry[2:], 16)
        names.extend(name for i, name in enumerate(fields) if value >> i & 1)
    return names


@dataclass(frozen=True)
class PubSubCredentials:
    """What every RPC carries as metadata: the session, the org's URL and its id."""

    access_token: str
    instance_url: str
    tenant_id: str

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The call metadata the Pub/Sub API authenticates."""
        return (
            ("accesstoken", self.access_token),
            ("instanceurl", self.instance_url),
            ("tenantid", self.tenant_id),
        )


def encode_position(replay_id: bytes) -> str:
    """A replay id as the feed's opaque position (base64)."""
    return base64.b64encode(replay_id).decode("ascii")


class _Stream:
    """One Subscribe call: requests fed from a queue, responses read into a queue by a thread."""

    def __init__(self, stub: Any, first: Any, metadata: tuple[tuple[str, str], ...]) -> None:
        self.requests: queue.Queue[Any] = queue.Queue()
        self.responses: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.requests.put(first)
        self.requested = int(first.num_requested)
        self.call = stub.Subscribe(self._outgoing(), metadata=metadata)
        self.thread = threading.Thread(target=self._read, name="salesforce-cdc", daemon=True)
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
                self.responses.put(("response", response))
        except Exception as exc:  # grpc.RpcError, the stream's end as the client sees it
            self.responses.put(("error", exc))
        else:
            self.responses.put(("end", None))

    def close(self) -> None:
        self.requests.put(None)
        self.call.cancel()
        self.thread.join(timeout=5)


class SalesforceCdcFeed(ChangeFeed):
    """Change hints from one CDC channel of one org (see the module docstring)."""

    def __init__(
        self,
        *,
        endpoint: str,
        channel: str,
        objects: Sequence[str],
        client_id: str,
        credentials: Callable[[], PubSubCredentials],
        refresh: Callable[[], None],
        calls: Counter[str],
        ca_bundle: Path | None = None,
        batch_size: int = 100,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.grpc, self.pb2, pb2_grpc = load_grpc()
        self.channel_name = channel
        self.objects = frozenset(objects)
        self.client_id = client_id
        self.credentials = credentials
        self.refresh = refresh
        self.calls = calls
        self.batch_size = batch_size
        self.monotonic = monotonic
        roots = ca_bundle.read_bytes() if ca_bundle is not None else None
        self._channel = self.grpc.secure_channel(
            endpoint, self.grpc.ssl_channel_credentials(root_certificates=roots)
        )
        self._stub = pb2_grpc.PubSubStub(self._channel)
        self._stream: _Stream | None = None
        self._position: str | None = None
        self._opened_from: str | None = None
        self._handed_out = False
        self._schemas: dict[str, Any] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.duplicates = 0
        """Events dropped because the same event id came before (redeliveries)."""

    # -- the ChangeFeed API --------------------------------------------------------------------

    def poll(self, position: str | None, *, timeout: float) -> FeedBatch:
        """Hints after ``position``; waits up to ``timeout`` for the first, then drains.

        With ``position=None`` (start from now) it also returns once the stream has named its
        starting replay id, so the caller has a position to store before its first full cycle.
        """
        deadline = self.monotonic() + max(0.0, timeout)
        hints: list[ChangeHint] = []
        lost = False
        if self._stream is None or not self._continues(position):
            lost = not self._open(position)
        refreshed = False
        ends = 0
        while True:
            stream = self._stream
            assert stream is not None
            wait = deadline - self.monotonic()
            # A caller starting from now (or after a lost position) wants a position: it is
            # answered as soon as the stream names one, as a caller with hints is.
            placed = (position is None or lost) and self._position is not None
            try:
                if hints or placed or wait <= 0:
                    kind, item = stream.responses.get_nowait()
                else:
                    kind, item = stream.responses.get(timeout=wait)
            except queue.Empty:
                break
            if kind == "response":
                lost = self._take(stream, item, hints) or lost
                continue
            if kind == "end" and ends < 3:  # the service closed the stream: resubscribe
                ends += 1
                self._open(self._position)
                continue
            if kind == "end":
                self._close_stream()
                raise TransientError("Salesforce Pub/Sub keeps closing the stream at once")
            code, error_code, details = self._describe(item)
            if code == "INVALID_ARGUMENT" and error_code == REPLAY_CORRUPTED:
                self._open(None)
                lost = True
                continue
            if code == "UNAUTHENTICATED" and not refreshed:
                refreshed = True
                self.refresh()
                self._open(self._position)
                continue
            self._close_stream()
            if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
                raise AuthError(f"Salesforce Pub/Sub refused the session: {details}")
            raise TransientError(f"Salesforce Pub/Sub stream failed ({code}): {details}")
        if self._position is not None:
            self._handed_out = True
        return FeedBatch(hints=tuple(hints), position=self._position, lost=lost)

    def _continues(self, position: str | None) -> bool:
        """Whether a poll from ``position`` goes on with the open stream.

        Yes from where the last poll left off, and from the position the stream was opened
        with while no poll has handed out a newer one (a caller that started from now before
        the stream named its start).  Anything else -- an older position after a cycle that
        did not commit, a restart -- subscribes again from there, so its hints come again.
        """
        if position == self._position:
            return True
        return position == self._opened_from and not self._handed_out

    def close(self) -> None:
        """End the stream and close the channel."""
        self._close_stream()
        self._channel.close()

    # -- the stream ----------------------------------------------------------------------------

    def _open(self, position: str | None) -> bool:
        """(Re)subscribe after ``position`` (``LATEST`` if None); False if it is unreadable."""
        self._close_stream()
        readable = True
        replay = b""
        if position is not None:
            try:
                replay = base64.b64decode(position, validate=True)
            except (binascii.Error, ValueError):
                readable = False
        preset = self.pb2.ReplayPreset.CUSTOM if replay else self.pb2.ReplayPreset.LATEST
        first = self.pb2.FetchRequest(
            topic_name=self.channel_name,
            replay_preset=preset,
            replay_id=replay,
            num_requested=self.batch_size,
        )
        self._position = position if readable and replay else None
        self._opened_from = position
        self._handed_out = False
        metadata = self.credentials().metadata()
        self.calls["pubsub.subscribe"] += 1
        self.calls["pubsub.fetch"] += 1
        self._stream = _Stream(self._stub, first, metadata)
        return readable

    def _close_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def _take(self, stream: _Stream, response: Any, hints: list[ChangeHint]) -> bool:
        """Turn one FetchResponse into hints; True if it held an overflow. Asks for more."""
        lost = False
        for consumer in response.events:
            self._position = encode_position(bytes(consumer.replay_id))
            event = consumer.event
            if event.id in self._seen:
                self.duplicates += 1
                continue
            self._seen[event.id] = None
            if len(self._seen) > _SEEN_EVENTS:
                self._seen.popitem(last=False)
            lost = self._hints_of(event, hints) or lost
        if response.latest_replay_id:
            self._position = encode_position(bytes(response.latest_replay_id))
        stream.requested = max(0, stream.requested - len(response.events))
        if stream.requested <= self.batch_size // 2:
            more = self.batch_size - stream.requested
            stream.requests.put(self.pb2.FetchRequest(num_requested=more))
            stream.requested += more
            self.calls["pubsub.fetch"] += 1
        return lost

    def _hints_of(self, event: Any, hints: list[ChangeHint]) -> bool:
        import fastavro

        schema = self._schema(event.schema_id)
        body = fastavro.schemaless_reader(io.BytesIO(bytes(event.payload)), schema)
        assert isinstance(body, dict)
        header = body["ChangeEventHeader"]
        entity = str(header["entityName"])
        change = str(header["changeType"])
        at = datetime.fromtimestamp(int(header["commitTimestamp"]) / 1000, tz=UTC)
        ours = self._is_ours(str(header.get("changeOrigin") or ""))
        if entity == ROLE_ENTITY:
            return self._role_hints(event.id, body, change, at, ours, hints)
        targets = [o for o in (entity, *_CONTAINED_IN.get(entity, ())) if o in self.objects]
        if not targets:
            return False
        if change == "GAP_OVERFLOW":
            return True
        kind = _KINDS.get(change)
        if kind is None:
            return False
        for record_id in header.get("recordIds") or ():
            for obj in targets:
                hints.append(
                    ChangeHint(
                        object=obj,
                        record_id=str(record_id),
                        occurred_at=at,
                        kind=kind,
                        ours=ours,
                        event_id=f"{event.id}:{obj}:{record_id}",
                    )
                )
        return False

    def _role_hints(
        self,
        event_id: str,
        body: Mapping[str, Any],
        change: str,
        at: datetime,
        ours: bool,
        hints: list[ChangeHint],
    ) -> bool:
        """A contact role's change is a change of its opportunity (its contacts are a field).

        A created role names its ``OpportunityId``, so the opportunity is hinted by id.  A
        deleted role carries no field values, and an update only the fields it changed: the
        opportunity is unknown, so the hint asks for the opportunity stream's cursor read
        (kind ``delete``, as for any change a read by id cannot see), which brings the role
        change as the polling cycle would.  An overflow of role events is a lost channel.
        """
        if "Opportunity" not in self.objects:
            return False
        if change == "GAP_OVERFLOW":
            return True
        kind = _KINDS.get(change)
        if kind is None:
            return False
        opportunity = body.get("OpportunityId")
        targets: list[tuple[str, HintKind]]
        if kind == "upsert" and opportunity:
            targets = [(str(opportunity), kind)]
        else:  # which opportunity is not in the event: read the stream
            ids = body["ChangeEventHeader"].get("recordIds") or ()
            targets = [(str(rid), "delete") for rid in ids]
        for record_id, hinted in targets:
            hints.append(
                ChangeHint(
                    object="Opportunity",
                    record_id=record_id,
                    occurred_at=at,
                    kind=hinted,
                    ours=ours,
                    event_id=f"{event_id}:Opportunity:{record_id}",
                )
            )
        return False

    def _is_ours(self, origin: str) -> bool:
        """Whether ``changeOrigin`` (``com/salesforce/api/rest/59.0;client=X``) names us."""
        wanted = f"client={self.client_id}"
        return any(part.strip().rstrip("/") == wanted for part in origin.split(";"))

    def _schema(self, schema_id: str) -> Any:
        cached = self._schemas.get(schema_id)
        if cached is None:
            import fastavro

            self.calls["pubsub.get_schema"] += 1
            try:
                info = self._stub.GetSchema(
                    self.pb2.SchemaRequest(schema_id=schema_id),
                    metadata=self.credentials().metadata(),
                    timeout=30,
                )
            except self.grpc.RpcError as exc:
                code, _, details = self._describe(exc)
                raise TransientError(
                    f"Salesforce Pub/Sub GetSchema failed ({code}): {details}"
                ) from exc
            cached = fastavro.parse_schema(json.loads(info.schema_json))
            self._schemas[schema_id] = cached
        return cached

    @staticmethod
    def _describe(exc: Any) -> tuple[str, str, str]:
        """``(status name, Pub/Sub error-code trailer, details)`` of a gRPC failure."""
        code = getattr(exc, "code", None)
        name = code().name if callable(code) else "UNKNOWN"
        trailers = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
        error_code = ""
        for key, value in trailers or ():
            if key == "error-code":
                error_code = str(value)
        details = exc.details() if hasattr(exc, "details") else str(exc)
        return name, error_code, str(details)
