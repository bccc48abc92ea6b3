"""The connectors' SLA capabilities against the emulators: touches read, tasks created."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import SecretStr

from crm_bridge.connector import Capability, Upsert
from crm_bridge.connectors.hubspot import HubSpotConnector, HubSpotSettings
from crm_bridge.connectors.hubspot.emulator.emulator import RunningHubSpot
from crm_bridge.http import FakeClock

from .conftest import SlaWorld


def test_hubspot_engagements_are_touches_and_tasks_are_created(hubspot: RunningHubSpot) -> None:
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    hubspot.emulator.clock.freeze(t0)
    hs = HubSpotConnector(
        HubSpotSettings(host=hubspot.base_url, access_token=SecretStr(hubspot.access_token)),
        name="hs",
        clock=FakeClock(t0),
    )
    try:
        assert {Capability.ACTIVITIES, Capability.TASKS} <= hs.capabilities
        [a, b] = hs.write(
            "contacts",
            [
                Upsert(key="a", fields={"email": "a@x.example"}),
                Upsert(key="b", fields={"email": "b@x.example"}),
            ],
        )
        owner = next(o.id for o in hs.owners() if o.email.startswith("rick.rep"))
        call = hs.client.send(
            "objects",
            "crm.objects.basic_api",
            "create",
            "calls",
            {
                "properties": {
                    "hs_call_title": "Intro",
                    "hubspot_owner_id": owner,
                    "hs_timestamp": t0.isoformat(),
                },
                "associations": [
                    {
                        "to": {"id": a.id},
                        "types": [
                            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194}
                        ],
                    }
                ],
            },
            idempotent=False,
        ).body
        hs.calls.clear()
        touches = list(hs.activities("contacts", [str(a.id), str(b.id)], None))
        assert [(t.record_id, t.kind, t.owner_id, t.subject) for t in touches] == [
            (a.id, "call", owner, "Intro")
        ]
        assert touches[0].id == str(call["id"])
        # 3 association reads (calls, emails, meetings) + 1 batch read of the one call found.
        assert hs.calls == {"associations": 3, "batch": 1}
        assert list(hs.activities("contacts", [str(a.id)], t0 + timedelta(hours=1))) == []

        single = hs.create_task("contacts", str(b.id), owner_id=owner, subject="SLA: accept")
        hs.calls.clear()
        ids = hs.create_tasks(
            "contacts",
            [{"record_id": str(a.id), "owner_id": owner, "subject": f"SLA {n}"} for n in range(3)],
        )
        assert len(ids) == 3 and all(ids)
        assert hs.calls == {"batch": 1}  # three tasks, one call
        assert hs.related("contacts", [str(a.id), str(b.id)], "tasks") == {
            str(a.id): sorted(ids, key=int),  # type: ignore[arg-type]
            str(b.id): [single],
        }
        # Ids come back in input order, and a task HubSpot refuses (its contact does not
        # exist) is None in its place without failing the others.
        mixed = hs.create_tasks(
            "contacts",
            [
                {"record_id": str(b.id), "owner_id": owner, "subject": "on b"},
                {"record_id": "999999999", "owner_id": owner, "subject": "on nothing"},
                {"record_id": str(a.id), "owner_id": owner, "subject": "on a"},
            ],
        )
        assert mixed[1] is None and mixed[0] and mixed[2]
        related = hs.related("contacts", [str(a.id), str(b.id)], "tasks")
        assert mixed[0] in related[str(b.id)] and mixed[2] in related[str(a.id)]
    finally:
        hs.close()


def test_hubspot_task_batch_answer_is_mapped_back_to_input_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hs = HubSpotConnector(
        HubSpotSettings(host="https://hubspot.invalid", access_token=SecretStr("t")), name="hs"
    )
    sent: list[dict[str, Any]] = []

    def send(*args: Any, **kwargs: Any) -> SimpleNamespace:
        inputs = args[-1]["inputs"]
        sent.extend(inputs)
        # HubSpot does not promise result order: answer reversed, and refuse the middle input
        # through the objectWriteTraceId it carries (a 207).
        results = [
            {"id": f"t-{i['properties']['hs_task_subject']}", "properties": i["properties"]}
            for n, i in enumerate(inputs)
            if n != 1
        ][::-1]
        error = {
            "status": "error",
            "context": {"objectWriteTraceId": [inputs[1]["objectWriteTraceId"]]},
        }
        return SimpleNamespace(body={"status": "COMPLETE", "results": results, "errors": [error]})

    monkeypatch.setattr(hs.client, "send", send)
    try:
        ids = hs.create_tasks(
            "contacts",
            [{"record_id": str(n), "owner_id": None, "subject": f"s{n}"} for n in range(3)],
        )
    finally:
        hs.close()
    assert ids == ["t-s0", None, "t-s2"]
    assert len({i["objectWriteTraceId"] for i in sent}) == 3  # unique: per-input validation


def test_salesforce_activities_by_id_and_by_time(world: SlaWorld) -> None:
    lead, _ = world.new_lead("Touchy")
    other, _ = world.new_lead("Quiet")
    rep = world.as_rep("ann")
    rep.Task.create({"WhoId": lead, "Subject": "Sent deck", "TaskSubtype": "Email"})
    rep.Event.create(
        {
            "WhoId": lead,
            "Subject": "Demo",
            "DurationInMinutes": 30,
            "ActivityDateTime": "2026-03-03T10:00:00Z",
        }
    )
    world.crm.calls.clear()
    found = sorted(
        (t.kind, t.subject, t.owner_id) for t in world.crm.activities("Lead", [lead, other], None)
    )
    ann = world.users["ann"]
    assert found == [("email", "Sent deck", ann), ("meeting", "Demo", ann)]
    assert world.crm.calls.get("composite") == 2  # Task and Event: one Composite call each

    from crm_bridge.connectors.salesforce import activities as sf_activities

    many = [lead, *[f"00Q5g00000000{n:05d}AAA" for n in range(sf_activities.TIME_QUERY_THRESHOLD)]]
    by_time = list(world.crm.activities("Lead", many, world.now() - timedelta(minutes=1)))
    assert sorted(t.subject for t in by_time) == ["Demo", "Sent deck"]
