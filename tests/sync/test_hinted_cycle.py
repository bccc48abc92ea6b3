"""Cycles woken by push hints: hinted records are read by id, the poll stays the truth.

Over two in-memory connectors and a real SQLite store (tests/sync/conftest.py); the push
channels themselves are tested with their emulators.  Hints are built here as a feed builds them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from crm_bridge.connector import ChangeHint, HintKind
from crm_bridge.store import Side
from crm_bridge.sync.runner import HINTED_READ_LIMIT
from tests.sync.conftest import World
from tests.sync.emulated import Make, writes

AT = datetime(2026, 1, 1, tzinfo=UTC)


def _hint(record_id: str, kind: HintKind = "upsert", *, ours: bool = False) -> ChangeHint:
    return ChangeHint("contacts", record_id, AT, kind=kind, ours=ours)


def _cursors(world: World) -> dict[Side, object]:
    with world.store.transaction(readonly=True) as tx:
        sides: tuple[Side, ...] = ("crm", "map")
        return {s: tx.get_change_cursor("p", s, "people") for s in sides}


def _linked(world: World) -> tuple[str, str]:
    crm_id = world.crm.create("contacts", {"email": "ann@x.io", "name": "Ann", "score": "1"})
    world.sync()
    world.sync()  # the echo of the create
    (map_id,) = world.people("map")
    return crm_id, map_id


def test_a_hinted_edit_is_read_by_id_written_and_the_cursors_stay(world: World) -> None:
    crm_id, map_id = _linked(world)
    before = _cursors(world)
    world.crm.human_edit("contacts", crm_id, {"name": "Ann Smith"})
    reads = (world.crm_conn.calls["changes"], world.map_conn.calls["changes"])

    report = world.sync(hints={"crm": [_hint(crm_id)]})

    assert world.people("map")[map_id]["name"] == "Ann Smith"
    assert report.counts["updated"] == 1 and report.counts["read_hinted_crm"] == 1
    assert (world.crm_conn.calls["changes"], world.map_conn.calls["changes"]) == reads
    assert world.crm_conn.calls["fetch"] >= 1
    assert _cursors(world) == before
    # the poll brings the same version later: already applied, nothing written twice
    writes = world.map.writes
    later = world.sync()
    assert later.counts["updated"] == 0 and world.map.writes == writes


def test_a_hint_of_our_own_write_is_dropped_unread(world: World) -> None:
    crm_id, _ = _linked(world)
    fetches = (world.crm_conn.calls["fetch"], world.map_conn.calls["fetch"])

    report = world.sync(hints={"crm": [_hint(crm_id, ours=True)]})

    assert report.counts["hints_ours"] == 1 and report.counts["hints"] == 0
    assert (world.crm_conn.calls["fetch"], world.map_conn.calls["fetch"]) == fetches
    assert world.crm_conn.calls["changes"] + world.map_conn.calls["changes"] == 4


def test_a_hinted_new_record_takes_the_cursor_read_and_is_created_once(world: World) -> None:
    _linked(world)
    new = world.map.create("contacts", {"email": "bob@x.io", "name": "Bob", "score": "7"})

    first = world.sync(hints={"map": [_hint(new), _hint(new)]})

    # a record with no link is a create: the cursor read shows whether its twin was deleted
    assert first.counts["hinted_polls"] == 1 and first.counts["created"] == 1
    assert set(world.by_email("crm")) == {"ann@x.io", "bob@x.io"}
    world.sync()
    world.sync()
    assert len(world.people("crm")) == len(world.people("map")) == 2


def test_a_delete_hint_runs_the_objects_cursor_read(tmp_path: Path) -> None:
    plain = World(tmp_path)
    settings = plain.settings.model_dump()
    plain.store.close()
    settings["objects"]["people"]["delete_policy"] = "archive"
    world = World(tmp_path / "archive", objects=settings["objects"])
    crm_id, map_id = _linked(world)
    world.crm.delete("contacts", crm_id)
    reads = world.crm_conn.calls["changes"]

    report = world.sync(hints={"crm": [_hint(crm_id, "delete")]})

    assert report.counts["hinted_polls"] == 1
    assert world.crm_conn.calls["changes"] > reads
    assert map_id not in world.people("map")
    world.store.close()


def test_more_hints_than_the_limit_fall_back_to_the_cursor_read(world: World) -> None:
    _linked(world)
    ids = [world.crm.create("contacts", {"email": f"p{i}@x.io"}) for i in range(3)]
    hints = [_hint(rid) for rid in ids] + [_hint(f"missing{i}") for i in range(HINTED_READ_LIMIT)]

    report = world.sync(hints={"crm": hints})

    assert report.counts["hinted_polls"] == 1 and report.counts["created"] == 3
    assert report.counts["read_hinted_crm"] == 0


def test_hints_for_objects_the_pair_does_not_map_are_ignored(world: World) -> None:
    _linked(world)
    calls = sum(world.crm_conn.calls.values()) + sum(world.map_conn.calls.values())

    report = world.sync(hints={"crm": [ChangeHint("deals", "d1", AT)]})

    assert report.counts["hints"] == 0 and not report.plans
    assert sum(world.crm_conn.calls.values()) + sum(world.map_conn.calls.values()) == calls


def test_a_hinted_rep_edit_reaches_hubspot_through_the_real_clients(make: Make) -> None:
    e = make()
    lead = e.create_lead("hint@lead.example", FirstName="Hana", Title="CTO")
    e.advance(1)
    e.cycle()
    e.cycle()
    e.update_lead(lead, Title="CEO")
    e.advance(1)
    calls = sum(e.crm.calls.values())

    report = e.runner.run_cycle(hints={"crm": [ChangeHint("Person", lead, AT, event_id="1")]})

    assert e.contacts()["hint@lead.example"]["jobtitle"] == "CEO"
    assert report.counts["read_hinted_crm"] == 1 and writes(report) == {"updated": 1}
    assert sum(e.crm.calls.values()) - calls == 1  # one read by id, no change-stream pages
