"""The emulator's Pub/Sub API over a real gRPC channel: topics, schemas, Subscribe, faults.

Every write comes in through the REST API with simple-salesforce (or the emulator's UI-like
control methods), so these tests also pin that each write path publishes change events.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from crm_bridge.connectors.salesforce.cdc import REPLAY_CORRUPTED, changed_field_names
from crm_bridge.connectors.salesforce.emulator import RunningSalesforce
from crm_bridge.connectors.salesforce.emulator.cdc import RETENTION_SECONDS
from crm_bridge.connectors.salesforce.pubsub import pubsub_pb2 as pb2
from crm_bridge.emulators.runtime import Fault

from .pubsub_client import PubSubClient, Subscription, error_code, metadata

CLIENT = {"Sforce-Call-Options": "client=tester"}


@pytest.fixture
def pubsub(salesforce: RunningSalesforce) -> Iterator[PubSubClient]:
    client = PubSubClient(salesforce)
    yield client
    client.close()


@pytest.fixture
def subscribe(pubsub: PubSubClient) -> Iterator[Any]:
    opened: list[Subscription] = []

    def open_(*args: Any, **kwargs: Any) -> Subscription:
        sub = pubsub.subscribe(*args, **kwargs)
        opened.append(sub)
        sub.next()  # the answer to the first FetchRequest: the starting replay id
        return sub

    yield open_
    for sub in opened:
        sub.close()


def _lead(sf: Any, last: str, **fields: Any) -> str:
    created = sf.Lead.create({"LastName": last, "Company": "Acme", **fields}, headers=CLIENT)
    return str(created["id"])


def test_get_topic_and_get_schema_describe_change_events(
    salesforce: RunningSalesforce, pubsub: PubSubClient
) -> None:
    topic = pubsub.stub.GetTopic(
        pb2.TopicRequest(topic_name="/data/LeadChangeEvent"), metadata=pubsub.metadata
    )
    schema = pubsub.schema(topic.schema_id)

    assert topic.can_subscribe and not topic.can_publish
    assert topic.tenant_guid == salesforce.emulator.settings.org_id
    assert schema["name"] == "LeadChangeEvent" and schema["namespace"] == "com.sforce.eventbus"
    assert schema["fields"][0]["name"] == "ChangeEventHeader"
    header = {f["name"] for f in schema["fields"][0]["type"]["fields"]}
    assert {"entityName", "recordIds", "changeType", "changeOrigin", "changedFields"} <= header
    email = next(f for f in schema["fields"] if f["name"] == "Email")
    assert email["type"] == ["null", "string"]
    assert {"Id", "SystemModstamp"}.isdisjoint(f["name"] for f in schema["fields"])


def test_the_all_changes_channel_has_no_single_schema_and_unknown_topics_are_refused(
    pubsub: PubSubClient,
) -> None:
    channel = pubsub.stub.GetTopic(
        pb2.TopicRequest(topic_name="/data/ChangeEvents"), metadata=pubsub.metadata
    )
    assert channel.schema_id == ""
    with pytest.raises(grpc.RpcError) as err:
        pubsub.stub.GetTopic(pb2.TopicRequest(topic_name="/data/Nope"), metadata=pubsub.metadata)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]


@pytest.mark.parametrize("bad", ["token", "tenantid", "instanceurl", "expired"])
def test_calls_without_a_valid_session_are_unauthenticated(
    salesforce: RunningSalesforce, pubsub: PubSubClient, bad: str
) -> None:
    overrides = {
        "token": {"accesstoken": "00Dnope!AQ"},
        "tenantid": {"tenantid": "00D000000000000"},
        "instanceurl": {"instanceurl": "https://other.example:1"},
        "expired": {},
    }[bad]
    md = metadata(salesforce, **overrides)
    if bad == "expired":
        salesforce.emulator.expire_tokens()
    with pytest.raises(grpc.RpcError) as err:
        pubsub.stub.GetTopic(pb2.TopicRequest(topic_name="/data/LeadChangeEvent"), metadata=md)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    assert error_code(err.value) == "sfdc.platform.eventbus.grpc.service.auth.error"


def test_create_update_delete_publish_headers_with_origin_and_changed_fields(
    salesforce: RunningSalesforce, pubsub: PubSubClient, subscribe: Any
) -> None:
    sub = subscribe("/data/LeadChangeEvent")
    sf = salesforce.simple_salesforce()
    lead = _lead(sf, "Ada", Email="ada@x.io")
    sf.Lead.update(lead, {"Title": "CTO", "Email": None})  # no client named this time
    sf.Lead.delete(lead, headers=CLIENT)

    events = sub.events(3)
    bodies = [pubsub.decode(e.event) for e in events]
    created, updated, deleted = (b["ChangeEventHeader"] for b in bodies)

    assert [h["changeType"] for h in (created, updated, deleted)] == ["CREATE", "UPDATE", "DELETE"]
    assert all(h["recordIds"] == [lead] and h["entityName"] == "Lead" for h in (created, updated))
    assert created["changeOrigin"] == "com/salesforce/api/rest/59.0;client=tester"
    assert updated["changeOrigin"] == "com/salesforce/api/rest/59.0"
    assert created["commitUser"] == salesforce.emulator.user_id(salesforce.integration_username)
    assert len({created["transactionKey"], updated["transactionKey"]}) == 2
    schema = pubsub.schema(events[1].event.schema_id)
    changed = changed_field_names(schema, updated["changedFields"])
    assert sorted(changed) == ["Email", "LastModifiedDate", "Title"]
    assert changed_field_names(schema, updated["nulledFields"]) == ["Email"]
    assert bodies[0]["Email"] == "ada@x.io" and bodies[1]["Title"] == "CTO"
    assert bodies[1]["Company"] is None  # an update carries only what changed
    assert all(v is None for k, v in bodies[2].items() if k != "ChangeEventHeader")
    replays = [int.from_bytes(e.replay_id, "big") for e in events]
    assert replays == sorted(replays) and all(len(e.replay_id) == 8 for e in events)


def test_flow_control_delivers_only_what_was_requested(
    salesforce: RunningSalesforce, subscribe: Any
) -> None:
    sub = subscribe("/data/LeadChangeEvent", num_requested=2)
    sf = salesforce.simple_salesforce()
    for name in ("a", "b", "c"):
        _lead(sf, name)

    first = sub.events(2)
    assert len(first) == 2 and sub.quiet()  # the third waits for a FetchRequest
    sub.fetch(1)
    (third,) = sub.events(1)
    assert int.from_bytes(third.replay_id, "big") > int.from_bytes(first[-1].replay_id, "big")


def test_replay_presets_and_the_first_request_alone_sets_the_start(
    salesforce: RunningSalesforce, pubsub: PubSubClient, subscribe: Any
) -> None:
    sf = salesforce.simple_salesforce()
    ids = [_lead(sf, name) for name in ("a", "b", "c")]
    earliest = subscribe("/data/LeadChangeEvent", preset=pb2.ReplayPreset.EARLIEST)
    events = earliest.events(3)
    assert [pubsub.decode(e.event)["ChangeEventHeader"]["recordIds"][0] for e in events] == ids

    custom = subscribe(
        "/data/LeadChangeEvent", preset=pb2.ReplayPreset.CUSTOM, replay_id=events[0].replay_id
    )
    assert [h["recordIds"][0] for h in custom.headers(2)] == ids[1:]

    latest = subscribe("/data/LeadChangeEvent")
    latest.fetch(5, replay_preset=pb2.ReplayPreset.EARLIEST)  # ignored after the first request
    assert latest.quiet()
    new = _lead(sf, "d")
    assert [h["recordIds"][0] for h in latest.headers(1)] == [new]


def test_an_expired_replay_id_is_refused_as_corrupted(
    salesforce: RunningSalesforce, pubsub: PubSubClient, subscribe: Any
) -> None:
    sf = salesforce.simple_salesforce()
    sub = subscribe("/data/LeadChangeEvent")
    _lead(sf, "old")
    (old,) = sub.events(1)
    salesforce.emulator.clock.advance(RETENTION_SECONDS - 60)
    pubsub.log_in_again()
    sf = salesforce.simple_salesforce()
    kept = subscribe(
        "/data/LeadChangeEvent", preset=pb2.ReplayPreset.CUSTOM, replay_id=old.replay_id
    )
    assert kept.quiet()  # within 72 h the id still resumes (nothing newer yet)
    _lead(sf, "new")
    salesforce.emulator.clock.advance(120)
    pubsub.log_in_again()

    expired = pubsub.subscribe(
        "/data/LeadChangeEvent", preset=pb2.ReplayPreset.CUSTOM, replay_id=old.replay_id
    )
    try:
        with pytest.raises(grpc.RpcError) as err:
            expired.next()
    finally:
        expired.close()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert error_code(err.value) == REPLAY_CORRUPTED
    assert "Replay ID validation failed" in err.value.details()  # type: ignore[attr-defined]


def test_an_all_or_none_request_that_fails_publishes_nothing_and_one_request_is_one_transaction(
    salesforce: RunningSalesforce, pubsub: PubSubClient, subscribe: Any
) -> None:
    sub = subscribe()
    sf = salesforce.simple_salesforce()

    def collection(records: list[dict[str, Any]], all_or_none: bool) -> Any:
        body = {
            "allOrNone": all_or_none,
            "records": [{"attributes": {"type": "Lead"}, "Company": "Acme", **r} for r in records],
        }
        return sf.restful("composite/sobjects", method="POST", data=json.dumps(body))

    collection([{"LastName": "ok"}, {"LastName": "bad", "Status": "Nope"}], True)
    assert sub.quiet()
    collection([{"LastName": "one"}, {"LastName": "two"}], False)

    one, two = sub.headers(2)
    assert one["transactionKey"] == two["transactionKey"]
    assert (one["sequenceNumber"], two["sequenceNumber"]) == (1, 2)


def test_a_lead_conversion_is_one_transaction_across_entities(
    salesforce: RunningSalesforce, subscribe: Any
) -> None:
    sf = salesforce.simple_salesforce()
    lead = _lead(sf, "Conv", Email="conv@x.io")
    sub = subscribe()
    result = salesforce.emulator.convert_lead(lead)

    headers = sub.headers(5)
    by_entity = {h["entityName"]: h for h in headers}
    assert set(by_entity) == {"Lead", "Contact", "Account", "Opportunity", "OpportunityContactRole"}
    assert len({h["transactionKey"] for h in headers}) == 1
    assert sorted(h["sequenceNumber"] for h in headers) == [1, 2, 3, 4, 5]
    assert by_entity["Contact"]["recordIds"] == [result["contactId"]]
    assert by_entity["Lead"]["changeType"] == "UPDATE" and by_entity["Lead"]["changeOrigin"] == ""


def test_gap_overflow_duplicate_and_reorder_faults(
    salesforce: RunningSalesforce, pubsub: PubSubClient, subscribe: Any
) -> None:
    sub = subscribe("/data/LeadChangeEvent")
    sf = salesforce.simple_salesforce()
    bus = salesforce.emulator.bus
    lead = _lead(sf, "G")
    sub.events(1)

    bus.faults.gap = 1
    sf.Lead.update(lead, {"Title": "x"})
    (gap,) = sub.events(1)
    body = pubsub.decode(gap.event)
    assert body["ChangeEventHeader"]["changeType"] == "GAP_UPDATE"
    assert body["ChangeEventHeader"]["recordIds"] == [lead] and body["Title"] is None

    bus.overflow_limit = 1
    body_json = {
        "allOrNone": True,
        "records": [
            {"attributes": {"type": "Lead"}, "LastName": n, "Company": "A"} for n in ("p", "q")
        ],
    }
    sf.restful("composite/sobjects", method="POST", data=json.dumps(body_json))
    assert [h["changeType"] for h in sub.headers(2)] == ["CREATE", "GAP_OVERFLOW"]
    bus.overflow_limit = 100_000

    bus.faults.duplicate = 1
    sf.Lead.update(lead, {"Title": "dup"})
    twice = sub.events(2)
    assert twice[0].event.id == twice[1].event.id and twice[0].replay_id == twice[1].replay_id

    bus.faults.reorder = 2
    sf.Lead.update(lead, {"Title": "first"})
    assert sub.quiet()  # held until the second arrives
    sf.Lead.update(lead, {"Title": "second"})
    titles = [pubsub.decode(e.event)["Title"] for e in sub.events(2)]
    assert titles == ["second", "first"]


def test_a_later_request_naming_another_topic_ends_the_stream(subscribe: Any) -> None:
    sub = subscribe("/data/LeadChangeEvent")
    sub.fetch(1, topic_name="/data/ContactChangeEvent")
    with pytest.raises(grpc.RpcError) as err:
        while True:
            sub.next()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]


def test_the_fault_plane_strikes_rpcs_and_they_are_counted(
    salesforce: RunningSalesforce, pubsub: PubSubClient
) -> None:
    salesforce.emulator.faults.add(Fault(path="/eventbus.v1.PubSub/GetTopic", status=503))
    request = pb2.TopicRequest(topic_name="/data/LeadChangeEvent")
    with pytest.raises(grpc.RpcError) as err:
        pubsub.stub.GetTopic(request, metadata=pubsub.metadata)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    pubsub.stub.GetTopic(request, metadata=pubsub.metadata)  # one call only
    assert salesforce.emulator.calls.snapshot().get("pubsub.GetTopic") == 2


def test_the_same_change_to_several_records_in_one_request_is_one_event(
    salesforce: RunningSalesforce, subscribe: Any
) -> None:
    sf = salesforce.simple_salesforce()
    a, b = _lead(sf, "a"), _lead(sf, "b")
    sub = subscribe("/data/LeadChangeEvent")
    body = {
        "allOrNone": False,
        "records": [{"attributes": {"type": "Lead"}, "id": i, "Title": "Same"} for i in (a, b)],
    }
    sf.restful("composite/sobjects", method="PATCH", data=json.dumps(body))

    (header,) = sub.headers(1)
    assert header["changeType"] == "UPDATE" and sorted(header["recordIds"]) == sorted([a, b])
    assert sub.quiet()


def test_the_bus_drops_its_oldest_events_past_its_cap_as_if_purged(
    salesforce: RunningSalesforce, pubsub: PubSubClient, subscribe: Any
) -> None:
    salesforce.emulator.bus.max_events = 2
    sf = salesforce.simple_salesforce()
    sub = subscribe("/data/LeadChangeEvent")
    for name in ("a", "b", "c"):
        _lead(sf, name)
    first, *_ = sub.events(3)

    again = pubsub.subscribe(
        "/data/LeadChangeEvent", preset=pb2.ReplayPreset.CUSTOM, replay_id=first.replay_id
    )
    try:
        with pytest.raises(grpc.RpcError) as err:
            again.next()
    finally:
        again.close()
    assert error_code(err.value) == REPLAY_CORRUPTED
    assert len(salesforce.emulator.bus.events) == 2


def test_reset_forgets_events_faults_and_limits(salesforce: RunningSalesforce) -> None:
    bus = salesforce.emulator.bus
    _lead(salesforce.simple_salesforce(), "gone")
    bus.max_events, bus.overflow_limit, bus.faults.gap = 2, 1, 3

    salesforce.emulator.reset()

    assert bus.events == [] and bus.faults.gap == 0
    assert (bus.max_events, bus.overflow_limit) == (200_000, 100_000)
