"""The Pub/Sub API (gRPC) of the emulated org: ``GetTopic``, ``GetSchema`` and ``Subscribe``.

Why a real gRPC server: the connector's feed must be tested over the same HTTP/2 + TLS channel,
call metadata and streaming flow control as Salesforce's service, with the stubs generated from
the same interface (:mod:`crm_bridge.connectors.salesforce.pubsub`), not against a fake client.

What it keeps from the real service:

* authentication by the metadata headers ``accesstoken`` (a session the emulator issued, checked
  on its clock), ``instanceurl`` (this org's URL) and ``tenantid`` (this org's id);
* ``Subscribe`` is pull-based: events flow only while the client has requested more
  (``num_requested`` adds up across FetchRequests; ``pending_num_requested`` says what is left);
  ``replay_preset``/``replay_id`` are read from the first FetchRequest only; a later FetchRequest
  naming another topic ends the stream with INVALID_ARGUMENT;
* a replay id the bus no longer holds ends the stream with INVALID_ARGUMENT and the trailer
  ``error-code: sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted``;
* an idle stream gets empty FetchResponses carrying ``latest_replay_id`` (keepalives).

Simplified: the first FetchRequest is answered at once with an empty FetchResponse carrying the
subscription's starting ``latest_replay_id`` (the real service only promises a keepalive within
270 s), the keepalive interval is :attr:`PubSubServer.keepalive_seconds` of real time, and the
error codes other than the replay one (auth, unknown topic) are our best reading of the docs.
Faults: the emulator's HTTP fault plane also strikes RPCs (path ``/eventbus.v1.PubSub/<Method>``,
method ``POST``; an HTTP status maps to the gRPC code a client would see); event faults (gaps,
overflow, duplicates, reordering) are armed on the :class:`~.cdc.EventBus`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent import futures
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import grpc

from crm_bridge.connectors.salesforce.emulator.cdc import EventBus, ReplayExpired
from crm_bridge.connectors.salesforce.pubsub import pubsub_pb2 as pb2
from crm_bridge.connectors.salesforce.pubsub import pubsub_pb2_grpc as pb2_grpc
from crm_bridge.emulators.runtime import TlsMaterial

if TYPE_CHECKING:
    from crm_bridge.connectors.salesforce.emulator.emulator import SalesforceEmulator

__all__ = ["REPLAY_CORRUPTED", "PubSubServer"]

REPLAY_CORRUPTED = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
AUTH_ERROR = "sfdc.platform.eventbus.grpc.service.auth.error"
TOPIC_NOT_FOUND = "sfdc.platform.eventbus.grpc.topic.not.found"
_MAX_BATCH = 100
_HTTP_TO_GRPC = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
}


def _abort(context: Any, code: grpc.StatusCode, message: str, error_code: str) -> None:
    rpc_id = str(uuid.uuid4())
    context.set_trailing_metadata((("error-code", error_code), ("rpc-id", rpc_id)))
    context.abort(code, f"{message} rpcId: {rpc_id}")


class _Servicer(pb2_grpc.PubSubServicer):  # type: ignore[misc]
    def __init__(self, emulator: SalesforceEmulator, server: PubSubServer) -> None:
        self.emu = emulator
        self.bus: EventBus = emulator.bus
        self.server = server

    # -- gates ----------------------------------------------------------------------------------
    def _gate(self, method: str, context: Any) -> str:
        """Count the call, apply an armed fault, check the auth metadata; the user id."""
        self.emu.calls.add(f"pubsub.{method}")
        fault = self.emu.faults.take("POST", f"/eventbus.v1.PubSub/{method}")
        if fault is not None and fault.status is not None:
            code = _HTTP_TO_GRPC.get(fault.status, grpc.StatusCode.INTERNAL)
            _abort(context, code, f"injected fault {fault.status}.", "sfdc.emulator.fault")
        meta = {k.lower(): v for k, v in context.invocation_metadata()}
        token = meta.get("accesstoken", "")
        org = self.emu.org
        with org.lock:
            user_id = org.tokens.user_for(token, self.emu.clock.time()) if token else None
        tenant = meta.get("tenantid", "")
        org_id = self.emu.settings.org_id
        instance = urlsplit(meta.get("instanceurl", "")).netloc
        if (
            user_id is None
            or tenant[:15] != org_id[:15]
            or instance != urlsplit(self.server.instance_url).netloc
        ):
            _abort(
                context,
                grpc.StatusCode.UNAUTHENTICATED,
                "The session is invalid or has expired, or the instanceurl or tenantid header "
                "does not match it.",
                AUTH_ERROR,
            )
        assert user_id is not None
        return user_id

    def _entities(self, topic: str, context: Any) -> frozenset[str]:
        with self.emu.org.lock:
            entities = self.bus.topic_entities(topic)
        if entities is None:
            _abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"The topic {topic!r} does not exist or you have no access to it.",
                TOPIC_NOT_FOUND,
            )
        assert entities is not None
        return entities

    # -- unary ----------------------------------------------------------------------------------
    def GetTopic(self, request: Any, context: Any) -> Any:
        """What a topic is; its ``schema_id`` is the current one (one entity's topics only)."""
        self._gate("GetTopic", context)
        entities = self._entities(request.topic_name, context)
        schema_id = ""
        if len(entities) == 1:
            with self.emu.org.lock:
                schema_id = self.bus.schema_of(next(iter(entities))).schema_id
        return pb2.TopicInfo(
            topic_name=request.topic_name,
            tenant_guid=self.emu.settings.org_id,
            can_publish=False,
            can_subscribe=True,
            schema_id=schema_id,
            rpc_id=str(uuid.uuid4()),
        )

    def GetSchema(self, request: Any, context: Any) -> Any:
        """The Avro schema (JSON) an event's ``schema_id`` names."""
        self._gate("GetSchema", context)
        text = self.bus.schema_json(request.schema_id)
        if text is None:
            _abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"No schema with id {request.schema_id!r}.",
                "sfdc.platform.eventbus.grpc.schema.not.found",
            )
        return pb2.SchemaInfo(
            schema_json=text, schema_id=request.schema_id, rpc_id=str(uuid.uuid4())
        )

    # -- streaming ------------------------------------------------------------------------------
    def Subscribe(self, request_iterator: Iterator[Any], context: Any) -> Iterator[Any]:
        """Events of one topic after the start the first FetchRequest names, as requested."""
        self._gate("Subscribe", context)
        bus = self.bus
        first = next(request_iterator, None)
        if first is None:
            return
        topic = first.topic_name
        entities = self._entities(topic, context)
        preset = pb2.ReplayPreset.Name(first.replay_preset)
        try:
            cursor = bus.start_cursor(preset, bytes(first.replay_id))
        except ReplayExpired:
            _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "The Replay ID validation failed. Ensure that the replay_id field value in "
                "FetchRequest is valid and refers to an event that is within the retention "
                "window.",
                REPLAY_CORRUPTED,
            )
            return
        state = {"requested": max(0, first.num_requested), "bad_topic": "", "done": False}

        def read_requests() -> None:
            try:
                for request in request_iterator:
                    with bus.cond:
                        if request.topic_name and request.topic_name != topic:
                            state["bad_topic"] = request.topic_name
                        state["requested"] += max(0, request.num_requested)
                        bus.cond.notify_all()
            except Exception:  # the client went away: nothing left to read
                pass
            finally:
                with bus.cond:
                    state["done"] = True
                    bus.cond.notify_all()

        reader = threading.Thread(target=read_requests, name="pubsub-requests", daemon=True)
        reader.start()
        yield pb2.FetchResponse(
            latest_replay_id=bus.replay_bytes(cursor),
            rpc_id=str(uuid.uuid4()),
            pending_num_requested=int(state["requested"]),
        )
        while True:
            with bus.cond:
                batch: list[Any] = []
                while True:
                    if bus.closed or state["done"] or not context.is_active():
                        return
                    if state["bad_topic"]:
                        break
                    for event in bus.after(cursor):
                        if int(state["requested"]) <= len(batch) or len(batch) >= _MAX_BATCH:
                            break
                        cursor = event.replay
                        if event.entity not in entities:
                            continue
                        batch.append(event)
                        if bus.take_duplicate():
                            batch.append(event)
                    if batch:
                        state["requested"] = max(0, int(state["requested"]) - len(batch))
                        break
                    if not bus.cond.wait(timeout=self.server.keepalive_seconds):
                        break  # idle for a while: send a keepalive
            if state["bad_topic"]:
                _abort(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"The topic name {state['bad_topic']!r} does not match the subscription's "
                    f"topic {topic!r}.",
                    "sfdc.platform.eventbus.grpc.subscription.topic.mismatch",
                )
                return
            yield pb2.FetchResponse(
                events=[
                    pb2.ConsumerEvent(
                        event=pb2.ProducerEvent(
                            id=event.event_id, schema_id=event.schema_id, payload=event.payload
                        ),
                        replay_id=event.replay_id,
                    )
                    for event in batch
                ],
                latest_replay_id=bus.replay_bytes(cursor),
                rpc_id=str(uuid.uuid4()),
                pending_num_requested=int(state["requested"]),
            )


class PubSubServer:
    """The gRPC server of one emulator, over TLS on 127.0.0.1 (a free port unless given)."""

    def __init__(
        self,
        emulator: SalesforceEmulator,
        *,
        tls: TlsMaterial,
        instance_url: str,
        host: str = "127.0.0.1",
        port: int = 0,
        keepalive_seconds: float = 270.0,
    ) -> None:
        self.instance_url = instance_url
        self.keepalive_seconds = keepalive_seconds
        self._bus = emulator.bus
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="pubsub"),
            options=[("grpc.so_reuseport", 0)],
        )
        pb2_grpc.add_PubSubServicer_to_server(_Servicer(emulator, self), self._server)
        credentials = grpc.ssl_server_credentials(
            [(tls.key_pem.read_bytes(), tls.cert_pem.read_bytes())]
        )
        self.port: int = self._server.add_secure_port(f"{host}:{port}", credentials)
        self.host = host
        self.address = f"{host}:{self.port}"
        self._server.start()

    def stop(self) -> None:
        """End every stream and stop serving."""
        self._bus.close()
        self._server.stop(grace=1).wait(timeout=5)
