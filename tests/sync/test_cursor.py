"""The keyset cursor: a capped read always moves on, whatever the stream's ties and order.

Probe 4 of the correctness issue: with more records than ``max_records_per_cycle`` sharing the
overlap window (or one instant), every cycle re-read the same capped page and the cursor never
moved.  The unit tests pin :mod:`crm_bridge.sync.cursor`; the engine tests run the real runner
over in-memory systems whose clocks stamp many records with one instant.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from crm_bridge.connector import Ordering, Record, WriteResult
from crm_bridge.connectors.example_memory import MemoryBackend, MemoryConnector, MemorySettings
from crm_bridge.store import ChangeCursor
from crm_bridge.sync.cursor import ReadWindow, advance, seen_through, take, window
from crm_bridge.sync.write_clock import WriteClock
from tests.sync.conftest import World

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _rec(rid: str, seconds: float) -> Record:
    return Record(
        object="contacts",
        id=rid,
        version="1",
        modified_at=T0 + timedelta(seconds=seconds),
        fields={},
    )


def test_take_keeps_the_smallest_keysets_after_the_position_whatever_the_order() -> None:
    stream = [_rec("b", 1), _rec("a", 1), _rec("d", 1), _rec("c", 1), _rec("e", 2)]
    first = take(stream, ReadWindow(None), 2, Ordering.ASCENDING)
    assert [r.id for r in first.records] == ["a", "b"] and first.capped
    after = (first.records[-1].modified_at, first.records[-1].id)
    second = take(stream, ReadWindow(T0, after), 2, Ordering.ASCENDING)
    assert [r.id for r in second.records] == ["c", "d"] and second.capped
    last = take(stream, ReadWindow(T0, (T0 + timedelta(seconds=1), "d")), 2, Ordering.ASCENDING)
    assert [r.id for r in last.records] == ["e"] and not last.capped


def test_take_stops_an_ascending_stream_at_the_first_later_instant() -> None:
    seen: list[str] = []

    def stream() -> object:
        for rec in [_rec("a", 1), _rec("b", 2), _rec("c", 3), _rec("d", 4)]:
            seen.append(rec.id)
            yield rec

    read = take(stream(), ReadWindow(None), 1, Ordering.ASCENDING)  # type: ignore[arg-type]
    assert [r.id for r in read.records] == ["a"] and read.capped
    assert seen == ["a", "b"]  # one record past the cap tells it is capped: no more pages


def test_take_reads_an_unsorted_stream_to_its_end() -> None:
    stream = [_rec("d", 4), _rec("c", 3), _rec("b", 2), _rec("a", 1)]
    read = take(stream, ReadWindow(None), 2, Ordering.UNSORTED)
    assert [r.id for r in read.records] == ["a", "b"] and read.capped
    # Trusting an order it does not have would have stopped at "c" and lost "a" for good.
    shuffled = [_rec("b", 2), _rec("c", 3), _rec("a", 1)]
    assert [r.id for r in take(shuffled, ReadWindow(None), 1, Ordering.UNSORTED).records] == ["a"]
    assert [r.id for r in take(shuffled, ReadWindow(None), 1, Ordering.ASCENDING).records] == ["b"]


def test_phases_overlap_once_after_new_changes_then_settle() -> None:
    overlap = timedelta(seconds=5)
    assert window(None, overlap) == ReadWindow(None)
    assert advance(None, take([], ReadWindow(None), 3, Ordering.ASCENDING)) is None

    capped = advance(
        None, take([_rec("a", 1), _rec("b", 2)], ReadWindow(None), 1, Ordering.ASCENDING)
    )
    assert capped == ChangeCursor(
        (T0 + timedelta(seconds=1), "a"), "scanning", (T0 + timedelta(seconds=1), "a"), True
    )
    assert window(capped, overlap) == ReadWindow(T0 + timedelta(seconds=1), capped.position)

    done = advance(capped, take([_rec("b", 2)], window(capped, overlap), 1, Ordering.ASCENDING))
    assert done == ChangeCursor((T0 + timedelta(seconds=2), "b"), "overlap")
    assert window(done, overlap) == ReadWindow(T0 + timedelta(seconds=2) - overlap)

    # The overlap re-read meets only what it had: settled, and the next read starts after it.
    settled = advance(
        done, take([_rec("a", 1), _rec("b", 2)], window(done, overlap), 5, Ordering.ASCENDING)
    )
    assert settled == ChangeCursor((T0 + timedelta(seconds=2), "b"), "settled")
    assert window(settled, overlap) == ReadWindow(T0 + timedelta(seconds=2))
    assert advance(settled, take([], window(settled, overlap), 5, Ordering.ASCENDING)) == settled

    # Something new after a settled cursor: one more overlap re-read.
    fresh = advance(settled, take([_rec("c", 9)], window(settled, overlap), 5, Ordering.ASCENDING))
    assert fresh is not None and fresh.phase == "overlap" and fresh.newest[1] == "c"


def test_a_scan_that_ends_exactly_at_the_cap_finishes_on_the_next_empty_read() -> None:
    scanning = ChangeCursor((T0, "a"), "scanning", (T0, "a"), found_newer=False)
    ended = advance(scanning, take([], window(scanning, timedelta()), 1, Ordering.ASCENDING))
    assert ended == ChangeCursor((T0, "a"), "settled")


def _frozen_world(tmp_path: Path, cap: int, *, unsorted: bool = False) -> World:
    """A world whose CRM stamps every record with one instant (a bulk update)."""
    w = World(tmp_path, max_records_per_cycle=cap, overlap_seconds=5)
    w.crm = MemoryBackend(clock=lambda: T0, prefix="c")
    w.crm_conn = MemoryConnector(
        MemorySettings(objects=["contacts"], max_batch=3, page_size=2, unsorted=unsorted),
        name="crm",
        backend=w.crm,
    )
    w.runner = w.new_runner()
    return w


def test_more_records_than_the_cap_at_one_instant_all_reach_the_other_side(tmp_path: Path) -> None:
    w = _frozen_world(tmp_path, cap=3)
    for i in range(10):
        w.crm.create("contacts", {"email": f"p{i}@x.io", "name": f"P{i}"})
    for _ in range(12):  # creates into a capped side wait for its read to end: a few more
        w.sync()
    assert len(w.people("map")) == 10  # before the keyset cursor: 3, for ever
    w.crm.create("contacts", {"email": "late@x.io"})  # still the same instant
    for _ in range(12):
        w.sync()
    assert "late@x.io" in w.by_email("map")
    w.store.close()


def test_an_unsorted_connector_loses_nothing_under_the_cap(tmp_path: Path) -> None:
    w = World(tmp_path, max_records_per_cycle=3)
    w.crm_conn = MemoryConnector(
        MemorySettings(objects=["contacts"], max_batch=3, unsorted=True), name="crm", backend=w.crm
    )
    w.runner = w.new_runner()
    for i in range(8):
        w.crm.create("contacts", {"email": f"p{i}@x.io", "name": f"P{i}"})
    for _ in range(10):
        w.sync()
    assert len(w.people("map")) == 8
    with w.store.transaction(readonly=True) as tx:
        cursor = tx.get_change_cursor("p", "crm", "people")
    assert cursor is not None and cursor.phase in ("overlap", "settled")
    w.store.close()


def test_a_settled_cursor_still_sees_a_late_commit_at_its_own_instant(tmp_path: Path) -> None:
    """Ids are not commit order: "c11" sorts before "c9" although it was committed after it."""
    w = _frozen_world(tmp_path, cap=3)
    for i in range(10):
        w.crm.create("contacts", {"email": f"p{i}@x.io"})
    for _ in range(12):
        w.sync()
    with w.store.transaction(readonly=True) as tx:
        cursor = tx.get_change_cursor("p", "crm", "people")
    assert cursor is not None and cursor.newest[1] == "c9"
    w.crm.create("contacts", {"email": "late@x.io"})  # c11, at the same instant
    for _ in range(12):
        w.sync()
    assert "late@x.io" in w.by_email("map")
    w.store.close()


def test_an_idle_cycle_rereads_at_most_its_newest_instant(world: World) -> None:
    for i in range(5):
        world.crm.create("contacts", {"email": f"p{i}@x.io"})
    reports = [world.sync() for _ in range(4)]
    assert reports[-1].counts["read_crm"] <= 1 and reports[-1].counts["read_map"] <= 1
    with world.store.transaction(readonly=True) as tx:
        cursor = tx.get_change_cursor("p", "crm", "people")
    assert cursor is not None and cursor.phase == "settled"


def test_records_already_applied_do_not_count_against_the_cap_and_the_cursor_passes_them() -> None:
    """After a large load the other side's read is mostly our own writes coming back."""
    stream = [_rec(f"e{i}", i) for i in range(6)] + [_rec("n1", 7), _rec("n2", 8), _rec("n3", 9)]
    echoes = {f"e{i}" for i in range(6)}
    asked: list[int] = []

    def applied(records: object) -> set[str]:
        chunk = list(records)  # type: ignore[call-overload]
        asked.append(len(chunk))
        return {r.id for r in chunk if r.id in echoes}

    read = take(stream, ReadWindow(None), 2, Ordering.ASCENDING, applied=applied)
    assert [r.id for r in read.records] == ["n1", "n2"] and read.capped
    assert read.skipped == 6 and read.end == (T0 + timedelta(seconds=8), "n2")
    assert asked == [9]  # one check for the whole chunk
    cursor = advance(None, read)
    assert cursor is not None and cursor.position == read.end

    rest = take(stream, window(cursor, timedelta(0)), 2, Ordering.ASCENDING, applied=applied)
    assert [r.id for r in rest.records] == ["n3"] and not rest.capped


def test_a_long_read_back_ends_at_the_pass_limit_on_an_instant_boundary() -> None:
    """A read-back of a million echoes must not hold a million keys: the read stops and goes on.

    The stop waits for a strictly later instant (e3 and e4 share one), so no record at or
    before the cursor is left unread.
    """
    stream = [_rec("e1", 1), _rec("e2", 2), _rec("e3", 3), _rec("e4", 3), _rec("n1", 4)]
    stream += [_rec(f"e{i}", i) for i in range(5, 9)]
    echoes = {r.id for r in stream if r.id.startswith("e")}

    def applied(records: object) -> set[str]:
        return {r.id for r in records if r.id in echoes}  # type: ignore[attr-defined]

    read = take(stream, ReadWindow(None), 5, Ordering.ASCENDING, applied=applied, pass_limit=3)
    assert read.records == [] and read.capped  # more is waiting: poll again soon
    assert read.skipped == 4 and read.end == (T0 + timedelta(seconds=3), "e4")
    cursor = advance(None, read)
    assert cursor is not None and cursor.phase == "scanning"
    seen = []
    while cursor is not None and cursor.phase == "scanning":
        more = take(
            stream, window(cursor, timedelta(0)), 5, Ordering.ASCENDING, applied, pass_limit=3
        )
        seen += [r.id for r in more.records]
        cursor = advance(cursor, more)
    assert seen == ["n1"]  # the one real change is read exactly once, nothing skipped past it
    unsorted = take(stream, ReadWindow(None), 5, Ordering.UNSORTED, applied, pass_limit=3)
    assert [r.id for r in unsorted.records] == ["n1"] and not unsorted.capped  # no boundary


def test_a_read_of_nothing_but_applied_records_still_moves_the_cursor_past_them() -> None:
    stream = [_rec("e1", 1), _rec("e2", 2)]
    read = take(stream, ReadWindow(None), 5, Ordering.ASCENDING, applied=lambda rs: {"e1", "e2"})
    assert read.records == [] and read.skipped == 2 and not read.capped
    cursor = advance(None, read)
    assert cursor is not None and cursor.newest == (T0 + timedelta(seconds=2), "e2")
    assert cursor.phase == "overlap"  # new to the cursor: re-read the overlap once, as ever


def test_our_own_writes_read_back_do_not_cap_the_side_and_defer_its_creates(
    tmp_path: Path,
) -> None:
    """The 100k load's stall: a cycle's creates came back as more than a cap of echoes, which
    capped that side's read, and creates into a capped side wait -- cycle after cycle."""
    from crm_bridge.sync.runner import SyncRunner

    world = World(tmp_path, max_records_per_cycle=5)
    try:
        for i in range(5):
            world.crm.create("contacts", {"email": f"a{i}@x.io", "name": f"A{i}"})
        assert world.sync().counts["created"] == 5
        for i in range(2):
            world.crm.create("contacts", {"email": f"b{i}@x.io", "name": f"B{i}"})
        small = SyncRunner(
            name="p",
            settings=world.settings.model_copy(update={"max_records_per_cycle": 2}),
            crm=world.crm_conn,
            map_=world.map_conn,
            store=world.store,
        )
        report = small.run_cycle()
        assert report.counts["passed_over_map"] == 5  # the five echoes, over a cap of two
        assert report.counts["capped_reads"] == 0 and report.counts["create_deferred"] == 0
        assert report.counts["created"] == 2 and len(world.people("map")) == 7
    finally:
        world.store.close()


# -- the overlap narrowed to when the read ran ---------------------------------------------------

OVERLAP = timedelta(seconds=5)


def test_the_overlap_reread_starts_at_what_the_read_saw_through_never_outside_the_old_window() -> (
    None
):
    """A burst written 0-4 s, read back at 7 s: only what changed after 2 s may be unseen."""
    burst = [_rec(f"w{n}", n) for n in range(5)]  # our writes, the newest at 4 s
    where = ReadWindow(T0 - timedelta(seconds=30))
    read = take(burst, where, 100, Ordering.ASCENDING)
    through = seen_through(None, where, read, T0 + timedelta(seconds=7), OVERLAP)
    assert through == T0 + timedelta(seconds=2)
    cursor = advance(None, replace(read, seen_through=through))
    assert cursor is not None and cursor.phase == "overlap"
    assert window(cursor, OVERLAP).since == T0 + timedelta(seconds=2)  # not -1 s: 2 records less
    # the read ran long after the burst: the re-read is the newest instant only, as if settled
    late = replace(cursor, seen_through=T0 + timedelta(seconds=60))
    assert window(late, OVERLAP).since == T0 + timedelta(seconds=4)
    # a bound before the old window (a read that ran at once) keeps the old window
    early = replace(cursor, seen_through=T0 - timedelta(seconds=9))
    assert window(early, OVERLAP).since == T0 - timedelta(seconds=1)
    assert window(replace(cursor, seen_through=None), OVERLAP).since == T0 - timedelta(seconds=1)


def test_no_narrowing_without_a_bound_for_a_capped_read_or_a_scan_begun_inside_the_window() -> None:
    records = [_rec(f"r{n}", n) for n in range(5)]
    ran = T0 + timedelta(seconds=30)
    wide = ReadWindow(T0 - timedelta(seconds=30))
    whole = take(records, wide, 100, Ordering.ASCENDING)
    assert seen_through(None, wide, whole, None, OVERLAP) is None
    capped = take(records, wide, 2, Ordering.ASCENDING)
    assert capped.capped and seen_through(None, wide, capped, ran, OVERLAP) is None
    # the end of a scan that began at 3 s: the records before it came from an earlier read
    position = (T0 + timedelta(seconds=3), "r3")
    scan = ChangeCursor(position, "scanning", position=position, found_newer=True)
    rest = take(records, window(scan, OVERLAP), 100, Ordering.ASCENDING)
    assert [r.id for r in rest.records] == ["r4"]
    assert seen_through(scan, window(scan, OVERLAP), rest, ran, OVERLAP) is None


def test_the_write_clock_bounds_the_vendor_clock_only_from_our_versions_written_before_the_read() -> (
    None
):
    mono = [100.0]
    clock = WriteClock(monotonic=lambda: mono[0])
    clock.note("map", "contacts", [WriteResult.success("k1", "c1", version="v1")])
    mono[0] = 103.0
    clock.note("map", "contacts", [WriteResult.success("k2", "c2", version="v2")])
    ours = _rec("c1", 10)
    stamp = ours.modified_at
    read_back = replace(ours, version="v1")
    edited = replace(ours, version="v9", modified_at=stamp + timedelta(seconds=50))
    assert clock.vendor_now_at_least("map", "contacts", [read_back], 106.0) == stamp + timedelta(
        seconds=6
    )
    assert clock.vendor_now_at_least("map", "contacts", [edited], 106.0) is None  # not our version
    assert clock.vendor_now_at_least("crm", "contacts", [read_back], 106.0) is None  # other side
    later = replace(_rec("c2", 90), version="v2")  # its answer came after the read began
    assert clock.vendor_now_at_least("map", "contacts", [later], 102.0) is None
    small = WriteClock(keep=1, monotonic=lambda: mono[0])
    small.note("map", "contacts", [WriteResult.success("a", "c1", version="v1")])
    small.note("map", "contacts", [WriteResult.success("b", "c2", version="v2")])
    assert small.vendor_now_at_least("map", "contacts", [read_back], 200.0) is None  # forgotten
