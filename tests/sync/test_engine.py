"""The engine end to end over two in-memory connectors and a real SQLite store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crm_bridge.errors import SyncAbortedError
from tests.sync.conftest import World


def test_initial_sync_both_ways_then_idle_costs_one_read_per_side(world: World) -> None:
    for i in range(5):
        world.crm.create("contacts", {"email": f"c{i}@x.io", "name": f"C{i}"})
    for i in range(3):
        world.map.create("contacts", {"email": f"m{i}@x.io", "name": f"M{i}", "score": "10"})
    first = world.sync()
    assert first.counts["created"] == 8
    assert set(world.by_email("crm")) == set(world.by_email("map"))
    assert len(world.people("crm")) == len(world.people("map")) == 8
    # batches respect max_batch: 5 creates on map in batches of 2, 3 on crm in one batch of 3
    assert world.map_conn.calls["write"] == 3 and world.crm_conn.calls["write"] == 1
    second = world.sync()  # reads our own writes back: echoes, zero writes
    assert second.counts["created"] == second.counts["updated"] == 0
    writes_before = (world.crm.writes, world.map.writes)
    calls_before = (world.crm_conn.calls["changes"], world.map_conn.calls["changes"])
    third = world.sync()
    assert (world.crm.writes, world.map.writes) == writes_before
    assert (world.crm_conn.calls["changes"], world.map_conn.calls["changes"]) == (
        calls_before[0] + 1,
        calls_before[1] + 1,
    )
    assert sum(third.counts[k] for k in ("created", "updated", "deleted")) == 0


def test_match_by_email_never_duplicates_and_rules_settle_conflicts(world: World) -> None:
    c = world.crm.create(
        "contacts", {"email": "Ann@X.io", "name": "Ann C", "title": "", "score": "1"}
    )
    h = world.map.create(
        "contacts", {"email": "ann@x.io", "name": "Ann M", "title": "CTO", "score": "7"}
    )
    world.sync()
    assert len(world.people("crm")) == len(world.people("map")) == 1
    crm, hub = world.crm.live("contacts")[c], world.map.live("contacts")[h]
    assert crm["title"] == hub["title"] == "CTO"  # crm_wins_unless_blank: crm was blank
    assert crm["score"] == "7" and float(hub["score"]) == 7  # map_wins
    with world.store.transaction(readonly=True) as tx:
        decisions = {d.field: d for d in tx.decisions(pair="p")}
    assert "title" not in decisions  # blank on one side is not a contest: the value just flows
    assert decisions["score"].winner == "map"
    assert decisions["name"].crm_value == "Ann C" and decisions["name"].map_value == "Ann M"


def test_incremental_edits_flow_and_concurrent_edits_follow_latest_wins(world: World) -> None:
    c = world.crm.create("contacts", {"email": "bo@x.io", "name": "Bo"})
    world.sync()
    (h,) = world.people("map")
    world.crm.human_edit("contacts", c, {"title": "VP"})
    world.map.human_edit("contacts", h, {"score": "42"})
    world.sync()
    assert world.people("map")[h]["title"] == "VP"
    assert world.people("crm")[c]["score"] == "42"
    # both edit name; the map edit is later than the skew tolerance -> map wins
    world.crm.human_edit("contacts", c, {"name": "Bo (crm)"})
    world.map.clock.advance(__import__("datetime").timedelta(seconds=30))  # type: ignore[attr-defined]
    world.map.human_edit("contacts", h, {"name": "Bo (map)"})
    world.sync()
    assert world.people("crm")[c]["name"] == world.people("map")[h]["name"] == "Bo (map)"


def test_rejected_record_goes_to_dead_letters_and_replays_after_fix(world: World) -> None:
    world.map.reject_when(
        lambda obj, f: "students not allowed" if f.get("title") == "student" else None
    )
    world.crm.create("contacts", {"email": "ok@x.io", "name": "Ok"})
    bad = world.crm.create("contacts", {"email": "st@x.io", "name": "St", "title": "student"})
    report = world.sync()
    assert report.counts["created"] == 1 and report.counts["dead_lettered"] == 1
    with world.store.transaction(readonly=True) as tx:
        (dl,) = tx.dead_letters(pair="p")
    assert dl.record_key == bad and dl.side == "map" and "students" in dl.reason
    world.map.reject_rules.clear()  # an admin fixes the validation rule
    replay = world.runner.replay([dl])
    assert replay.counts["replayed"] == 1
    assert "st@x.io" in world.by_email("map")
    with world.store.transaction(readonly=True) as tx:
        assert tx.dead_letters(pair="p") == []


def test_a_large_replay_runs_in_batches_of_the_cycle_cap(tmp_path: Path) -> None:
    """A replay holds its records and plan in memory like a cycle: the same cap bounds it."""
    w = World(tmp_path, max_records_per_cycle=2)
    w.map.reject_when(
        lambda obj, f: "students not allowed" if f.get("title") == "student" else None
    )
    for i in range(5):
        w.crm.create("contacts", {"email": f"st{i}@x.io", "name": f"St{i}", "title": "student"})
    for _ in range(4):  # a capped read takes two per cycle
        w.sync()
    with w.store.transaction(readonly=True) as tx:
        letters = tx.dead_letters(pair="p")
    assert len(letters) == 5
    w.map.reject_rules.clear()
    fetches = w.crm_conn.calls["fetch"]
    replay = w.runner.replay(letters)
    assert replay.counts["replayed"] == 5
    assert w.crm_conn.calls["fetch"] - fetches == 3  # ceil(5 / 2) batches, one read each
    assert len(w.people("map")) == 5
    w.store.close()


def test_the_two_sides_are_read_at_the_same_time(world: World) -> None:
    """Each side's read waits for the other at a barrier: serial reads would break it."""
    import threading

    world.crm.create("contacts", {"email": "a@x.io", "name": "A"})
    world.map.create("contacts", {"email": "b@x.io", "name": "B"})
    barrier = threading.Barrier(2, timeout=10)
    threads: set[str] = set()
    for conn in (world.crm_conn, world.map_conn):
        read = conn.changes

        def meeting(obj: str, since: Any, read: Any = read) -> Any:
            threads.add(threading.current_thread().name)
            barrier.wait()  # raises BrokenBarrierError if the other side is not reading too
            return read(obj, since)

        conn.changes = meeting  # type: ignore[method-assign]
    report = world.sync()
    assert report.counts["created"] == 2
    assert len(threads) == 2 and all(t.startswith("crm-bridge-read-p") for t in threads)


def test_delete_guard_stops_and_names_the_override(tmp_path: Path) -> None:
    w = World(tmp_path, delete_guard_floor=1, max_delete_ratio=0.3)
    ids = [w.crm.create("contacts", {"email": f"d{i}@x.io"}) for i in range(6)]
    w.sync()
    for rid in ids[:3]:
        w.crm.delete("contacts", rid)
    with pytest.raises(SyncAbortedError, match="--allow-deletes"):
        w.sync()
    assert len(w.people("map")) == 6  # nothing was written
    w.sync(allow_deletes=True)
    with w.store.transaction(readonly=True) as tx:
        assert tx.count_links("p", "people") == 3
    w.store.close()


def test_delete_policy_archive_propagates(tmp_path: Path) -> None:
    objects = {"people": {"delete_policy": "archive"}}
    base = World(tmp_path).settings.model_dump()
    base["objects"]["people"]["delete_policy"] = "archive"
    w = World(tmp_path / "b", **{"objects": base["objects"]})
    del objects
    rid = w.crm.create("contacts", {"email": "gone@x.io"})
    w.sync()
    w.crm.delete("contacts", rid)
    w.sync()
    assert w.people("map") == {}
    w.store.close()


def test_merge_rekeys_links_instead_of_orphaning(world: World) -> None:
    a = world.crm.create("contacts", {"email": "a@x.io", "name": "A"})
    b = world.crm.create("contacts", {"email": "b@x.io", "name": "B"})
    world.sync()
    assert len(world.people("map")) == 2
    world.crm.merge("contacts", a, b)
    world.sync()
    with world.store.transaction(readonly=True) as tx:
        link_b = tx.link_for("p", "people", "crm", b)
        link_a = tx.link_for("p", "people", "crm", a)
    assert link_b is not None and link_b.status == "merged" and link_b.merged_into == link_a.id  # type: ignore[union-attr]
    assert len(world.people("crm")) == 1


def test_merge_into_a_duplicate_of_a_linked_person_removes_the_orphaned_counterpart(
    tmp_path: Path,
) -> None:
    """Found by the state machine: a re-read merge survivor must not shield the counterpart.

    The platform merged m-b into m-a before the first sync (so m-a carries ``merged_from`` and is
    re-read in the overlap window).  Later the CRM merges c-a into c-b, whose e-mail already
    belongs to another linked pair.  The loser's link cannot be re-keyed, so m-a is a second record
    for a person the other pair holds: it follows the delete policy, it is not left unlinked.
    """
    base = World(tmp_path).settings.model_dump()
    base["objects"]["people"]["delete_policy"] = "archive"
    w = World(tmp_path / "b", **{"objects": base["objects"]})
    c_a = w.crm.create("contacts", {"email": "a@x.io", "name": "A"})
    c_b = w.crm.create("contacts", {"email": "b@x.io", "name": "B"})
    w.crm.create("contacts", {"email": "b@x.io", "name": "B again"})  # a human duplicate
    m_a = w.map.create("contacts", {"email": "A@X.IO", "name": "A"})
    m_b = w.map.create("contacts", {"email": "b@x.io", "name": "B"})
    w.map.merge("contacts", m_a, m_b)
    w.sync()
    assert m_a in w.people("map")
    w.crm.merge("contacts", c_b, c_a)
    w.sync()
    w.sync()
    assert m_a not in w.people("map")  # archived, as the policy says
    with w.store.transaction(readonly=True) as tx:
        live_links = {(link.crm_id, link.map_id) for link in tx.iter_links("p", "people")}
    assert all(map_id in w.people("map") for _, map_id in live_links)
    assert {m for _, m in live_links} == set(w.people("map"))
    w.store.close()


def test_duplicates_on_one_side_are_dead_lettered_not_doubled(world: World) -> None:
    world.crm.create("contacts", {"email": "dup@x.io", "name": "Old"})
    world.crm.create("contacts", {"email": "DUP@x.io", "name": "New"})
    report = world.sync()
    assert len(world.people("map")) == 1
    assert report.counts["dead_lettered"] == 1


def test_plan_only_writes_nothing(world: World) -> None:
    world.crm.create("contacts", {"email": "p@x.io"})
    report = world.sync(plan_only=True)
    assert report.plans[0].actions and world.people("map") == {}
    with world.store.transaction(readonly=True) as tx:
        assert tx.get_change_cursor("p", "crm", "people") is None


def test_create_matching_an_already_linked_record_is_dead_lettered_and_the_batch_lands(
    world: World,
) -> None:
    """The batched write-back finds the one create whose upsert hit a linked record.

    The platform's change to h1's e-mail has not reached the change stream yet (index lag), so
    only the vendor's upsert answer reveals that the e-mail belongs to a linked person.
    """
    world.crm.create("contacts", {"email": "a@x.io", "name": "A"})
    world.sync()
    (h1,) = world.people("map")
    world.map.create("contacts", {"email": "z@x.io", "name": "Z"})
    world.sync()  # the map cursor moves past h1
    world.map.tables["contacts"][h1].fields["email"] = "b@x.io"  # not in the stream yet
    c2 = world.crm.create("contacts", {"email": "b@x.io", "name": "B"})
    c3 = world.crm.create("contacts", {"email": "c@x.io", "name": "C"})
    report = world.sync()
    assert report.counts["dead_lettered"] == 1 and report.counts["created"] == 1
    with world.store.transaction(readonly=True) as tx:
        (letter,) = tx.dead_letters()
        linked = {link.crm_id for link in tx.iter_links("p", "people")}
    assert (letter.record_key, letter.error_code) == (c2, "ALREADY_LINKED")
    assert h1 in letter.reason
    assert c3 in linked and c2 not in linked


def test_new_record_with_an_identity_a_linked_record_just_took_is_not_upserted(
    world: World,
) -> None:
    """An upsert by e-mail would overwrite the linked person: the planner refuses it first."""
    world.crm.create("contacts", {"email": "a@x.io", "name": "A"})
    world.sync()
    (h1,) = world.people("map")
    world.map.human_edit("contacts", h1, {"email": "b@x.io"})
    c2 = world.crm.create("contacts", {"email": "b@x.io", "name": "B"})
    report = world.sync()
    assert world.people("map")[h1]["name"] == "A"  # not overwritten by c2's create
    assert report.counts["dead_lettered"] == 1
    with world.store.transaction(readonly=True) as tx:
        (letter,) = tx.dead_letters()
    assert (letter.record_key, letter.error_code) == (c2, "DUPLICATE_IDENTITY")
    assert h1 in letter.reason


def test_both_sides_merging_the_same_two_people_keep_both_survivors(tmp_path: Path) -> None:
    base = World(tmp_path).settings.model_dump()
    base["objects"]["people"]["delete_policy"] = "archive"
    w = World(tmp_path / "b", **{"objects": base["objects"]})
    a = w.crm.create("contacts", {"email": "a@x.io", "name": "A"})
    b = w.crm.create("contacts", {"email": "b@x.io", "name": "B"})
    w.sync()
    by_email = {v["email"]: k for k, v in w.people("map").items()}
    w.crm.merge("contacts", a, b)
    w.map.merge("contacts", by_email["b@x.io"], by_email["a@x.io"])  # the other way round
    w.sync()
    w.sync()
    assert set(w.people("crm")) == {a} and set(w.people("map")) == {by_email["b@x.io"]}
    with w.store.transaction(readonly=True) as tx:
        (link,) = list(tx.iter_links("p", "people"))
    assert (link.crm_id, link.map_id) == (a, by_email["b@x.io"])
    w.store.close()
