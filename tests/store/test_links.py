"""Links: insert, lookup from either side, updates, tombstones, uniqueness, bulk paths."""

from __future__ import annotations

import time
from collections.abc import Generator
from datetime import timedelta
from typing import cast

import pytest
import sqlalchemy as sa

from crm_bridge.store import (
    Link,
    LinkIn,
    PendingWrite,
    Store,
    StoreConflictError,
    StoreNotFoundError,
    StoreTx,
)

from .conftest import T0, FakeClock


def _add(
    tx: StoreTx, crm_id: str | None, map_id: str | None, obj: str = "contact", pair: str = "p"
) -> Link:
    return tx.insert_link(
        pair,
        obj,
        crm_id=crm_id,
        map_id=map_id,
        crm_version="v1",
        map_version="w1",
    )


def test_insert_and_lookup_both_sides(store: Store) -> None:
    with store.transaction() as tx:
        link = _add(tx, "003A", "501")
        assert link.status == "active" and link.created_at == T0 == link.updated_at
        assert tx.link_for("p", "contact", "crm", "003A") == link
        assert tx.link_for("p", "contact", "map", "501") == link
        assert tx.link_for("p", "contact", "map", "003A") is None  # wrong side
        assert tx.link_for("p", "deal", "crm", "003A") is None  # other object
        assert tx.link_for("other", "contact", "crm", "003A") is None  # other pair
        assert tx.link(link.id) == link


def test_update_link_changes_fields_and_timestamp(store: Store, clock: FakeClock) -> None:
    with store.transaction() as tx:
        link = _add(tx, "003A", None)  # HubSpot create pending
        later = clock.advance(minutes=5)
        written = PendingWrite(frozenset({"title"}), {"title": "CTO"})
        tx.update_link(
            link.id, map_id="501", map_version="w2", map_state="written", map_pending=written
        )
        got = tx.link_for("p", "contact", "map", "501")
    assert got is not None
    assert (got.id, got.map_version, got.crm_version) == (link.id, "w2", "v1")
    assert (got.map_state, got.map_pending, got.crm_state, got.crm_pending) == (
        "written",
        written,
        "synced",
        None,
    )
    assert got.updated_at == later and got.created_at == T0


def test_update_link_rejects_bad_input(store: Store) -> None:
    with store.transaction() as tx:
        link = _add(tx, "003A", "501")
        with pytest.raises(TypeError, match="unknown"):
            tx.update_link(link.id, colour="red")
        with pytest.raises(ValueError, match="status"):
            tx.update_link(link.id, status="gone")
        with pytest.raises(ValueError, match="crm_state"):
            tx.update_link(link.id, crm_state="unconfirmed")
        with pytest.raises(TypeError, match="map_pending"):
            tx.update_link(link.id, map_pending={"fields": ["title"]})
        with pytest.raises(StoreNotFoundError):
            tx.update_link(link.id + 1000, crm_version="x")


def test_mark_merged_and_deleted_keep_tombstones(store: Store) -> None:
    with store.transaction() as tx:
        loser, winner, gone = _add(tx, "A", "a"), _add(tx, "B", "b"), _add(tx, "C", "c")
        tx.mark_link(loser.id, "merged", merged_into=winner.id)
        tx.mark_link(gone.id, "deleted")
        merged = tx.link_for("p", "contact", "crm", "A")
        assert merged is not None and not merged.active
        assert (merged.status, merged.merged_into) == ("merged", winner.id)
        deleted = tx.link_for("p", "contact", "map", "c")
        assert deleted is not None and deleted.status == "deleted"
        assert tx.count_links("p", "contact") == 1
        assert tx.count_links("p", "contact", status="merged") == 1
        assert tx.count_links("p", "contact", status=None) == 3
        with pytest.raises(ValueError):
            tx.mark_link(winner.id, "merged")  # needs merged_into


def test_active_link_preferred_over_tombstones(store: Store) -> None:
    with store.transaction() as tx:
        old = _add(tx, "A", "a")
        tx.mark_link(old.id, "deleted")
        newer_tomb = _add(tx, "A", "a2")
        tx.mark_link(newer_tomb.id, "deleted")
        assert tx.link_for("p", "contact", "crm", "A") == tx.link(newer_tomb.id)
        fresh = _add(tx, "A", "a3")  # the id may be re-linked once the old link is dead
        assert tx.links_by_ids("p", "contact", "crm", ["A"]) == {"A": fresh}


def test_uniqueness_violations_raise_and_tx_survives(store: Store) -> None:
    with store.transaction() as tx:
        a = _add(tx, "A", "a")
        b = _add(tx, "B", "b")
        with pytest.raises(StoreConflictError):
            _add(tx, "A", "other")  # crm side taken
        with pytest.raises(StoreConflictError):
            _add(tx, "other", "a")  # map side taken
        with pytest.raises(StoreConflictError):
            tx.update_link(b.id, crm_id="A")
        with pytest.raises(StoreConflictError):
            tx.insert_links("p", "contact", [LinkIn("X", "x"), LinkIn("Y", "a")])
        # the transaction is still usable (PostgreSQL would have aborted it without savepoints)
        tx.update_link(a.id, crm_version="v2")
    with store.transaction() as tx:
        assert tx.count_links("p", "contact", status=None) == 2
        assert tx.link_for("p", "contact", "crm", "X") is None  # bulk insert was all-or-nothing
        got = tx.link_for("p", "contact", "crm", "A")
        assert got is not None and got.crm_version == "v2"


def test_pending_creates_may_share_null_ids(store: Store) -> None:
    with store.transaction() as tx:
        _add(tx, "A", None)
        _add(tx, "B", None)
        _add(tx, None, "c")
        assert tx.count_links("p", "contact") == 3
        with pytest.raises(ValueError):
            _add(tx, None, None)


def test_links_by_ids_chunks_large_inputs(store: Store) -> None:
    n = 1234  # crosses two chunk boundaries
    with store.transaction() as tx:
        made = tx.insert_links("p", "contact", [LinkIn(f"C{i}", f"M{i}") for i in range(n)])
        assert [m.crm_id for m in made] == [f"C{i}" for i in range(n)]  # order preserved
        wanted = [f"M{i}" for i in range(n)] + ["missing", "M5"]  # unknown and duplicate ids
        found = tx.links_by_ids("p", "contact", "map", wanted)
    assert len(found) == n
    assert found["M1000"].crm_id == "C1000"
    assert "missing" not in found


def test_iter_links_streams_in_id_order(store: Store) -> None:
    with store.transaction() as tx:
        made = tx.insert_links("p", "deal", [LinkIn(f"C{i}", f"M{i}") for i in range(2500)])
        tx.mark_link(made[7].id, "deleted")
        ids = [link.id for link in tx.iter_links("p", "deal")]
        assert ids == sorted(ids) and len(ids) == 2499 and made[7].id not in ids
        assert [link.id for link in tx.iter_links("p", "deal", status="deleted")] == [made[7].id]
        # abandoning the iterator half way leaves the transaction usable
        it = cast(Generator[Link, None, None], tx.iter_links("p", "deal"))
        next(it)
        it.close()
        assert tx.count_links("p", "deal") == 2499


def test_update_links_bulk(store: Store, clock: FakeClock) -> None:
    with store.transaction() as tx:
        made = tx.insert_links("p", "contact", [LinkIn(f"C{i}", f"M{i}") for i in range(50)])
        clock.advance(hours=1)
        tx.update_links(
            {m.id: {"crm_version": f"v{m.id}", "crm_state": "written"} for m in made[:40]}
            | {made[45].id: {"map_id": "M45b"}}
        )
        with pytest.raises(StoreNotFoundError):
            tx.update_links({made[0].id: {"crm_state": "synced"}, 10**9: {"crm_state": "synced"}})
        after = tx.links_by_ids("p", "contact", "crm", [m.crm_id or "" for m in made])
    assert after["C3"].crm_version == f"v{made[3].id}" and after["C3"].crm_state == "written"
    assert after["C3"].updated_at == T0 + timedelta(hours=1)
    assert after["C45"].map_id == "M45b"
    assert after["C41"].crm_state == "synced"
    assert after["C0"].crm_state == "written"  # the failed bulk update changed nothing


def test_ten_thousand_links_are_bulk_operations(store: Store) -> None:
    """10k links in one transaction take a few dozen statements, not 10k round trips.

    Counting statements is deterministic; the wall-clock bound is only a generous sanity check
    (it runs ~1 s on SQLite, ~2 s on PostgreSQL, and CI machines are shared).
    """
    statements = 0

    def count(*_args: object) -> None:
        nonlocal statements
        statements += 1

    sa.event.listen(store.engine, "before_cursor_execute", count)
    start = time.perf_counter()
    with store.transaction() as tx:
        made = tx.insert_links(
            "p",
            "contact",
            [LinkIn(f"C{i}" if i % 3 else None, f"M{i}", "1", "1") for i in range(10_000)],
        )
        assert [m.map_id for m in made] == [f"M{i}" for i in range(10_000)]
    inserted = statements
    with store.transaction() as tx:
        found = tx.links_by_ids("p", "contact", "map", [f"M{i}" for i in range(10_000)])
        tx.update_links({link.id: {"map_version": "2"} for link in found.values()})
    elapsed = time.perf_counter() - start
    assert len(found) == 10_000
    assert inserted <= 40, f"bulk insert used {inserted} statements"
    assert statements - inserted <= 40, f"lookup + update used {statements - inserted} statements"
    assert elapsed < 20.0, f"10k links took {elapsed:.2f}s"


def test_synced_baseline_round_trips(store: Store) -> None:
    baseline = {"email": "a@example.com", "score": 7, "tags": ["x"], "owner": None}
    with store.transaction() as tx:
        link = tx.insert_link(
            "p",
            "contact",
            crm_id="A",
            map_id="a",
            crm_version=None,
            map_version=None,
            synced=baseline,
        )
        bare = _add(tx, "B", "b")
        assert dict(link.synced) == baseline
        assert bare.synced == {}  # never recorded
        tx.update_link(bare.id, synced={"email": "b@example.com"})
        made = tx.insert_links("p", "deal", [LinkIn("D", "d", synced={"amount": 5})])
        with pytest.raises(TypeError, match="synced"):
            tx.update_link(bare.id, synced="not a mapping")
    with store.transaction() as tx:
        got = tx.link_for("p", "contact", "crm", "B")
        assert got is not None and dict(got.synced) == {"email": "b@example.com"}
        assert dict(made[0].synced) == {"amount": 5}


def test_pending_links_are_listed_and_only_they_can_be_deleted(store: Store) -> None:
    with store.transaction() as tx:
        full = _add(tx, "003A", "501")
        waiting_map = _add(tx, "003B", None)
        waiting_crm = _add(tx, None, "502")
        _add(tx, "003C", None, obj="deal")
        closed = _add(tx, "003D", None)
        tx.mark_link(closed.id, "deleted")
    with store.transaction() as tx:
        assert [link.id for link in tx.pending_links("p", "contact")] == [
            waiting_map.id,
            waiting_crm.id,
        ]
        tx.delete_pending_link(waiting_map.id)
        with pytest.raises(StoreNotFoundError):
            tx.delete_pending_link(full.id)
    with store.transaction() as tx:
        assert [link.id for link in tx.pending_links("p", "contact")] == [waiting_crm.id]
        assert tx.link(full.id) == full
        assert tx.link(waiting_map.id) is None


def test_links_by_link_ids_reads_many_at_once(store: Store) -> None:
    with store.transaction() as tx:
        made = [_add(tx, f"C{i}", f"M{i}") for i in range(3)]
        tombstone = _add(tx, "gone", "gone-m")
        tx.mark_link(tombstone.id, "deleted")
        found = tx.links_by_link_ids([made[0].id, made[2].id, tombstone.id, 987_654])
    assert set(found) == {made[0].id, made[2].id, tombstone.id}  # unknown ids are absent
    assert found[made[2].id] == made[2]
    assert not found[tombstone.id].active


def test_insert_links_returns_exactly_what_is_stored(store: Store) -> None:
    rows = [
        LinkIn("C1", "M1", "v1", "w1", {"crm": {"email": "a@x.io"}}, "a@x.io"),
        LinkIn(
            None,
            "M2",
            None,
            "w2",
            {"crm": {"email": "b@x.io"}},
            "b@x.io",
            crm_state="creating",
            crm_pending=PendingWrite(frozenset({"email"}), {}),
        ),
        LinkIn("C3", None, "v3", map_state="creating"),
    ]
    with store.transaction() as tx:
        made = tx.insert_links("p", "contact", rows)
        assert made == [tx.link(link.id) for link in made]
    assert [(m.crm_id, m.map_id, m.identity) for m in made] == [
        ("C1", "M1", "a@x.io"),
        (None, "M2", "b@x.io"),
        ("C3", None, None),
    ]
