"""A hypothesis state machine: random edits, deletes, merges and crashes, then convergence.

Two in-memory systems, a real SQLite store, and the real runner.  Humans act on either side
between syncs; some write batches crash after applying part of their records (a ``kill -9``
between the vendor accepting a write and the store recording it).  Whatever happened, two clean
syncs must leave both sides agreeing on every mapped field of every linked pair, every live
person linked exactly once, no duplicates, and a further sync must write nothing.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from crm_bridge.connector import ChangeHint, WriteOp, WriteResult
from crm_bridge.connectors.example_memory import MemoryBackend, MemoryConnector, MemorySettings
from crm_bridge.errors import TransientError
from crm_bridge.store import Store
from crm_bridge.sync.mapping import PairSettings
from crm_bridge.sync.runner import SyncRunner
from crm_bridge.sync.values import canonical
from tests.sync.conftest import PAIR

NAMES = st.sampled_from(["Ann", "Bo", "Cy", "Di"])
TITLES = st.sampled_from(["", "CTO", "VP"])
SCORES = st.sampled_from(["", "1", "2.0", "3"])
SIDES = st.sampled_from(["crm", "map"])
_HINT_AT = datetime(2026, 1, 1, tzinfo=UTC)


@functools.cache
def _template_db() -> Path:
    path = Path(tempfile.mkdtemp(prefix="crm-bridge-template-")) / "state.sqlite3"
    Store.open(f"sqlite:///{path}").close()
    return path


class Crash(Exception):
    """The process died after the vendor accepted part of a batch."""


class CrashingConnector(MemoryConnector):
    """Dies (or fails) at a chosen write boundary of the next cycle.

    ``crash_after = (skip, keep)``: the first ``skip`` batches go through, then the vendor
    applies ``keep`` ops of the next one and the process dies -- every boundary between the
    vendor's answer and the store's record of it.  ``fail_next``: the next batch is refused
    whole, as a 503 would be (nothing applied, the cycle stops with a transient error).
    """

    crash_after: tuple[int, int] | None = None
    fail_next = False
    during_next_write: Callable[[], None] | None = None

    def write(self, obj: str, ops: Sequence[WriteOp]) -> list[WriteResult]:
        if self.during_next_write is not None:
            act, self.during_next_write = self.during_next_write, None
            act()  # a person acts while the batch is on its way
        if self.fail_next:
            self.fail_next = False
            raise TransientError("503 Service Unavailable", connector=self.name)
        if self.crash_after is not None:
            skip, keep = self.crash_after
            if skip > 0:
                self.crash_after = (skip - 1, keep)
                return super().write(obj, ops)
            self.crash_after = None
            super().write(obj, ops[:keep])
            raise Crash(f"killed after {keep} of {len(ops)} writes")
        return super().write(obj, ops)


class SyncMachine(RuleBasedStateMachine):
    emails = itertools.count()

    @initialize()
    def setup(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        pair = dict(PAIR)
        pair["objects"] = {"people": {**PAIR["objects"]["people"], "delete_policy": "archive"}}
        self.settings = PairSettings.model_validate({**pair, "delete_guard_floor": 10_000})
        self.conns = {
            side: CrashingConnector(MemorySettings(objects=["contacts"], max_batch=2), name=side)
            for side in ("crm", "map")
        }
        for side, conn in self.conns.items():
            conn.backend._prefix = side[0]  # readable ids in failure reports
        db = Path(self.tmp.name) / "state.sqlite3"
        shutil.copyfile(_template_db(), db)  # migrating once per example would dominate the run
        self.store = Store.open(f"sqlite:///{db}")

        self.human_duplicates: set[str] = set()
        # Oracles: a person's edit made after a failed cycle must survive it; a person deleted
        # before any cycle linked them must never come back on that side.
        self.kept_edits: dict[tuple[str, str], str] = {}
        self.deleted_before_link: dict[str, set[str]] = {"crm": set(), "map": set()}

    def teardown(self) -> None:
        self.store.close()
        self.tmp.cleanup()

    def runner(self, cap: int | None = None) -> SyncRunner:
        # a fresh runner each time, like a fresh process after a crash
        settings = self.settings
        if cap is not None:
            settings = settings.model_copy(update={"max_records_per_cycle": cap})
        return SyncRunner(
            name="p",
            settings=settings,
            crm=self.conns["crm"],
            map_=self.conns["map"],
            store=self.store,
        )

    def live(self, side: str) -> dict[str, dict[str, Any]]:
        return self.conns[side].backend.live("contacts")

    def touched(self, side: str, rid: str) -> None:
        """A person edited ``rid``: a later edit may rightly win over a watched one, and a
        record touched after its twin's delete is live news, not a resurrection."""
        self.kept_edits.clear()
        email = str(self.live(side)[rid].get("email", "")).lower()
        self.deleted_before_link[other_side(side)].discard(email)

    def synced_name(self, side: str, rid: str) -> Any:
        """The name the link of ``rid`` last synced (a sentinel when it has no link)."""
        with self.store.transaction(readonly=True) as tx:
            for link in tx.iter_links("p", "people"):
                if link.id_on(side) == rid:  # type: ignore[arg-type]
                    return link.synced.get(side, {}).get("name", object())
        return object()

    def fresh_email(self) -> str:
        return f"p{next(self.emails)}@example.com"

    # -- what humans do ---------------------------------------------------------------------
    @rule(side=SIDES, name=NAMES, title=TITLES, score=SCORES)
    def create(self, side: str, name: str, title: str, score: str) -> None:
        self.conns[side].backend.create(
            "contacts", {"email": self.fresh_email(), "name": name, "title": title, "score": score}
        )

    @rule(name1=NAMES, name2=NAMES, score=SCORES)
    def same_person_created_on_both_sides(self, name1: str, name2: str, score: str) -> None:
        email = self.fresh_email()
        self.conns["crm"].backend.create("contacts", {"email": email, "name": name1})
        self.conns["map"].backend.create(
            "contacts", {"email": email.upper(), "name": name2, "score": score}
        )

    @rule(side=SIDES, data=st.data(), field=st.sampled_from(["name", "title", "score"]))
    def edit(self, side: str, data: st.DataObject, field: str) -> None:
        live = sorted(self.live(side))
        if not live:
            return
        rid = data.draw(st.sampled_from(live))
        value = data.draw({"name": NAMES, "title": TITLES, "score": SCORES}[field])
        self.conns[side].backend.human_edit("contacts", rid, {field: value})
        self.touched(side, rid)  # a later edit may rightly win over the one being watched

    @rule(side=SIDES, data=st.data())
    def delete(self, side: str, data: st.DataObject) -> None:
        live = sorted(self.live(side))
        if live:
            self.conns[side].backend.delete("contacts", data.draw(st.sampled_from(live)))
            self.kept_edits.clear()

    @rule(side=SIDES, data=st.data(), name=NAMES)
    def human_duplicate(self, side: str, data: st.DataObject, name: str) -> None:
        """Someone enters a person who is already there (same e-mail, another record)."""
        live = self.live(side)
        if not live:
            return
        original = live[data.draw(st.sampled_from(sorted(live)))]
        email = str(original["email"])
        self.human_duplicates.add(email.lower())
        # A new record of that person, entered after a delete on the other side, is news.
        self.deleted_before_link[other_side(side)].discard(email.lower())
        self.conns[side].backend.create("contacts", {"email": email, "name": name})

    @rule(side=SIDES, data=st.data())
    def merge(self, side: str, data: st.DataObject) -> None:
        """Someone merges two records on one side (the CRM's or the platform's merge)."""
        live = sorted(self.live(side))
        if len(live) < 2:
            return
        winner, loser = data.draw(
            st.lists(st.sampled_from(live), min_size=2, max_size=2, unique=True)
        )
        self.conns[side].backend.merge("contacts", winner, loser)
        self.touched(side, winner)  # the survivor may carry a deleted twin's e-mail on

    @rule()
    def sync(self) -> None:
        self.runner().run_cycle()

    @rule(side=SIDES, same=NAMES)
    def delete_before_the_first_link(self, side: str, same: str) -> None:
        """One person on both sides, deleted on one before any cycle could link them."""
        email = self.fresh_email()
        doomed = self.conns[side].backend.create("contacts", {"email": email, "name": same})
        self.conns[other_side(side)].backend.create("contacts", {"email": email, "name": same})
        self.conns[side].backend.delete("contacts", doomed)
        self.deleted_before_link[side].add(email.lower())

    @rule(side=SIDES, data=st.data(), name=NAMES)
    def edit_after_a_failed_cycle(self, side: str, data: st.DataObject, name: str) -> None:
        """The cycle's first write batch is refused (a 503); then a person edits a record."""
        for conn in self.conns.values():
            conn.fail_next = True
        with contextlib.suppress(TransientError):
            self.runner().run_cycle()
        for conn in self.conns.values():
            conn.fail_next = False
        live = sorted(self.live(side))
        if not live:
            return
        rid = data.draw(st.sampled_from(live))
        # Clearly the newest change (beyond clock_skew_seconds of anything on either side), so
        # latest_wins must pick it even over a change the failed cycle left unsynced.
        clock = self.conns[side].backend.clock
        newest = max(c.backend.clock() for c in self.conns.values())
        clock.advance(newest + timedelta(seconds=10) - clock())  # type: ignore[attr-defined]
        # Setting the value it holds is no change, and rightly loses; so is setting the value
        # last synced (a three-way merge without field history cannot tell it from no edit).
        unchanged = name in (self.live(side)[rid].get("name"), self.synced_name(side, rid))
        self.conns[side].backend.human_edit("contacts", rid, {"name": name})
        self.touched(side, rid)
        if not unchanged:
            self.kept_edits[(side, rid)] = name  # "name" is latest_wins: the newest must win

    @rule(data=st.data(), into_existing=st.booleans())
    def convert(self, data: st.DataObject, into_existing: bool) -> None:
        """A rep converts a lead (into a new contact, or into one that is there already)."""
        self._convert(data, into_existing)

    @rule(data=st.data(), into_existing=st.booleans())
    def convert_during_a_write_batch(self, data: st.DataObject, into_existing: bool) -> None:
        """A rep converts a lead while the bridge's next write batch is on its way."""

        def act() -> None:
            for conn in self.conns.values():
                conn.during_next_write = None
            self._convert(data, into_existing)

        for conn in self.conns.values():
            conn.during_next_write = act
        self.runner().run_cycle()
        for conn in self.conns.values():
            conn.during_next_write = None

    def _convert(self, data: st.DataObject, into_existing: bool) -> None:
        live = sorted(self.live("crm"))
        if not live:
            return
        lead = data.draw(st.sampled_from(live))
        others = [r for r in live if r != lead]
        into = data.draw(st.sampled_from(others)) if into_existing and others else None
        contact = convert_lead(self.conns["crm"].backend, "contacts", lead, into)
        self.touched("crm", contact)  # the contact carries the lead's person on

    # -- what the bridge does ---------------------------------------------------------------
    @rule(side=SIDES, keep=st.integers(0, 2), skip=st.integers(0, 2))
    def crashing_sync(self, side: str, keep: int, skip: int = 0) -> None:
        self.conns[side].crash_after = (skip, keep)
        with contextlib.suppress(Crash):
            self.runner().run_cycle()
        self.conns[side].crash_after = None

    @rule(data=st.data(), crash=st.booleans())
    def hinted_sync(self, data: st.DataObject, crash: bool) -> None:
        """A cycle woken by push hints for some records of either side (changed or not).

        The channel may name any record -- repeats, stale hints, a record since merged or
        deleted -- and the hinted cycle must still leave a state the poll converges from; a
        crash mid-write (the hinted writes are real writes) is recovered like any other.
        """
        hints: dict[str, list[ChangeHint]] = {"crm": [], "map": []}
        for side in ("crm", "map"):
            known = sorted(self.conns[side].backend.tables.get("contacts", {}))
            if not known:
                continue
            for rid in data.draw(st.lists(st.sampled_from(known), max_size=4)):
                kind = data.draw(st.sampled_from(["upsert", "upsert", "gap", "delete"]))
                hints[side].append(ChangeHint("contacts", rid, _HINT_AT, kind=kind))
        side = data.draw(SIDES)
        if crash:
            self.conns[side].crash_after = (0, data.draw(st.integers(0, 1)))
        with contextlib.suppress(Crash):
            self.runner().run_cycle(hints=hints)  # type: ignore[arg-type]
        self.conns[side].crash_after = None

    @rule(cap=st.integers(1, 3))
    def capped_sync(self, cap: int) -> None:
        """A cycle that may read only ``cap`` changes per side (the rest waits for the next)."""
        self.runner(cap).run_cycle()

    # -- what must hold -----------------------------------------------------------------------
    @invariant()
    def no_engine_made_duplicates(self) -> None:
        for side in ("crm", "map"):
            emails = [str(v["email"]).lower() for v in self.live(side).values()]
            emails = [e for e in emails if e not in self.human_duplicates]
            assert len(emails) == len(set(emails)), f"duplicate e-mails on {side}: {emails}"

    @rule()
    def converges(self) -> None:
        # Two clean cycles settle almost everything; a duplicate dead-lettered until its twin's
        # link closes is replayed one cycle later, and what that replay matched flows in the
        # next.  So: quiet within four cycles, and quiet means a cycle that writes nothing.
        self.runner().run_cycle()
        for _ in range(3):
            writes = (self.conns["crm"].backend.writes, self.conns["map"].backend.writes)
            report = self.runner().run_cycle()
            if (self.conns["crm"].backend.writes, self.conns["map"].backend.writes) == writes:
                break
        else:
            raise AssertionError(f"still writing after four clean cycles: {report.counts}")
        crm, hub = self.live("crm"), self.live("map")
        linked_crm, linked_map = set(), set()
        with self.store.transaction(readonly=True) as tx:
            links = list(tx.iter_links("p", "people"))
        for link in links:
            assert link.crm_id in crm and link.map_id in hub, (link, sorted(crm), sorted(hub))
            a, b = crm[link.crm_id], hub[link.map_id]
            for field, kind in (
                ("email", "email"),
                ("name", "text"),
                ("title", "text"),
                ("score", "number"),
            ):
                assert canonical(a.get(field), kind) == canonical(b.get(field), kind), (field, a, b)
            assert link.crm_id not in linked_crm and link.map_id not in linked_map
            linked_crm.add(link.crm_id)
            linked_map.add(link.map_id)
        for side, records, linked in (("crm", crm, linked_crm), ("map", hub, linked_map)):
            unlinked = {
                rid
                for rid in set(records) - linked
                if str(records[rid]["email"]).lower() not in self.human_duplicates
            }
            assert not unlinked, f"unlinked {side} records: {unlinked}"
        for (side, rid), name in self.kept_edits.items():
            if rid in (crm if side == "crm" else hub):
                assert (crm if side == "crm" else hub)[rid].get("name") == name, (side, rid, name)
                partner = next((k for k in links if k.id_on(side) == rid), None)  # type: ignore[arg-type]
                if partner is not None:
                    there = other_side(side)
                    theirs = (crm if there == "crm" else hub)[partner.id_on(there) or ""]  # type: ignore[arg-type]
                    assert theirs.get("name") == name, (
                        "edit after a failed cycle lost",
                        rid,
                        theirs,
                    )
        for side, records in (("crm", crm), ("map", hub)):
            back = {str(v["email"]).lower() for v in records.values()} & self.deleted_before_link[
                side
            ]
            assert not back, f"deleted before any link, back on {side}: {back}"


def convert_lead(backend: MemoryBackend, obj: str, lead: str, into: str | None) -> str:
    """Salesforce's lead conversion as a person stream (Lead or Contact) shows it.

    The contact is new (the lead's values) or one that exists (only its empty fields filled);
    the converted lead leaves the stream pointing at it, as a merge loser does.  Returns the
    contact's id.
    """
    rows = backend.tables[obj]
    values = dict(rows[lead].fields)
    if into is None:
        into = backend.create(obj, values)
    else:
        empty = {k: v for k, v in values.items() if rows[into].fields.get(k) in (None, "")}
        backend.human_edit(obj, into, empty)
    rows[lead].merged_into = into
    backend.delete(obj, lead)
    return into


def other_side(side: str) -> str:
    return "map" if side == "crm" else "crm"


class _Draws:
    """Stands in for ``st.data()`` when a regression replays a shrunk run step by step."""

    def __init__(self, *values: Any) -> None:
        self.values = list(values)

    def draw(self, strategy: Any) -> Any:
        return self.values.pop(0)


def test_regression_pending_create_rekeyed_by_a_merge_sends_the_survivors_values() -> None:
    """A create crashes unsent; then the CRM merges its source into a duplicate (state machine)."""
    m = SyncMachine()
    m.setup()
    try:
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.delete(data=_Draws("m1"), side="map")
        m.edit(data=_Draws("c1", "Di"), field="name", side="crm")
        m.human_duplicate(data=_Draws("c1"), name="Ann", side="crm")
        m.human_duplicate(data=_Draws("c1"), name="Ann", side="crm")
        m.crashing_sync(side="map", keep=0)
        m.merge(data=_Draws(["c1", "c3"]), side="crm")
        m.delete(data=_Draws("c2"), side="crm")
        m.converges()
        assert [v["name"] for v in m.live("map").values()] == ["Di"]
    finally:
        m.teardown()


def test_regression_a_create_that_landed_before_a_crash_follows_its_sources_delete() -> None:
    """The create landed, the process died, then the source was deleted (state machine)."""
    m = SyncMachine()
    m.setup()
    try:
        m.create(name="Ann", score="", side="crm", title="")
        m.converges()
        m.create(name="Ann", score="", side="crm", title="")
        m.crashing_sync(keep=1, side="map")  # the create of c2 lands, unrecorded
        assert len(m.live("map")) == 2
        m.delete(data=_Draws("c2"), side="crm")
        m.converges()
        assert len(m.live("map")) == 1  # archived as the policy says, not left unlinked
    finally:
        m.teardown()


def test_regression_a_crash_between_two_sides_writes_keeps_the_second_write() -> None:
    """Both sides changed one person; the CRM write landed, the platform's did not."""
    m = SyncMachine()
    m.setup()
    try:
        m.create(name="Ann", score="", side="crm", title="")
        m.converges()
        m.edit(data=_Draws("c1", "VP"), field="title", side="crm")
        m.edit(data=_Draws("m1", "Cy"), field="name", side="map")
        m.crashing_sync(keep=0, side="map")
        assert m.live("crm")["c1"]["name"] == "Cy" and "title" not in m.live("map")["m1"]
        m.converges()
        assert m.live("map")["m1"]["title"] == "VP"
    finally:
        m.teardown()


def test_regression_merges_of_different_people_on_each_side_leave_no_orphan() -> None:
    """CRM merges p0 into p2 while the platform merges p2 into p1 (state machine)."""
    m = SyncMachine()
    m.setup()
    try:
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.human_duplicate(data=_Draws("c1"), name="Ann", side="crm")
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.converges()
        m.delete(data=_Draws("m1"), side="map")
        m.merge(data=_Draws(["c4", "c2"]), side="crm")
        m.merge(data=_Draws(["m2", "m3"]), side="map")
        m.converges()
        assert set(m.live("map")) == {"m2"} and "c4" not in m.live("crm")
    finally:
        m.teardown()


def test_regression_a_merge_into_a_record_whose_create_was_lost_then_deleted() -> None:
    """Probe 1b: the CRM merges a new record into a linked one, then deletes the survivor's twin.

    This crashed the cycle with a UNIQUE violation on links (pair, object, map_id).
    """
    m = SyncMachine()
    m.setup()
    try:
        m.create(name="Ann", score="", side="crm", title="")
        m.converges()
        m.create(name="Ann", score="", side="crm", title="")
        m.crashing_sync(keep=0, side="map")  # the create of c2 on the platform never lands
        m.merge(data=_Draws(["c2", "c1"]), side="crm")
        m.delete(data=_Draws("c2"), side="crm")
        m.converges()
        assert not m.live("crm") and not m.live("map")
    finally:
        m.teardown()


def test_regression_merges_on_both_sides_with_a_lost_create_leave_nothing_unlinked() -> None:
    """Probe 1a: merges on both sides around a create that crashed unsent (``unlinked m…``)."""
    m = SyncMachine()
    m.setup()
    try:
        m.create(name="Ann", score="", side="crm", title="")
        m.create(name="Bo", score="", side="crm", title="CTO")
        m.converges()
        m.merge(data=_Draws(["c1", "c2"]), side="crm")
        m.create(name="Cy", score="", side="crm", title="")
        m.crashing_sync(keep=0, side="map")
        m.merge(data=_Draws(["c3", "c1"]), side="crm")
        m.merge(data=_Draws(["m1", "m2"]), side="map")
        m.converges()
        assert set(m.live("crm")) == {"c3"} and len(m.live("map")) == 1
    finally:
        m.teardown()


def test_regression_a_delete_before_the_first_cycle_is_not_undone() -> None:
    """Probe 3: one person on both sides, deleted on the CRM before any cycle linked them."""
    m = SyncMachine()
    m.setup()
    try:
        m.same_person_created_on_both_sides(name1="Ann", name2="Bo", score="")
        m.delete(data=_Draws("c1"), side="crm")
        m.sync()
        assert not m.live("crm")  # not re-created from the platform's record
        assert not m.live("map")  # the delete followed, as the archive policy says
        m.conns["map"].backend.human_edit("contacts", "m1", {"name": "Cy"})
        m.converges()
        assert not m.live("crm")
    finally:
        m.teardown()


def test_regression_a_crash_after_an_unlinked_delete_still_removes_the_counterpart() -> None:
    """Hunted: merge then delete on the CRM before any cycle; the removal's batch crashes."""
    m = SyncMachine()
    m.setup()
    try:
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.merge(data=_Draws(["c1", "c2"]), side="crm")
        m.delete(data=_Draws("c1"), side="crm")
        m.crashing_sync(keep=0, side="crm")
        m.converges()
        assert not m.live("crm")
    finally:
        m.teardown()


def test_regression_a_merge_into_a_new_record_after_a_platform_merge_does_not_crash() -> None:
    """Hunted: UNIQUE (pair, object, map_id) when both sides merged the same pair of people."""
    m = SyncMachine()
    m.setup()
    try:
        m.sync()
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.edit(data=_Draws("c1", "Ann"), field="name", side="crm")
        m.converges()
        m.merge(data=_Draws(["m2", "m1"]), side="map")
        m.create(name="Ann", score="", side="crm", title="")
        m.merge(data=_Draws(["c3", "c2"]), side="crm")
        m.converges()
    finally:
        m.teardown()


def test_regression_an_edit_back_to_the_old_value_after_a_two_way_pairing_flows() -> None:
    """Hunted: a pairing wrote both sides; the platform's later edit back to '' was invisible.

    Each side's baseline kept the pre-pairing value of the fields it sent out, so clearing the
    score on the platform looked like no change at all.
    """
    m = SyncMachine()
    m.setup()
    try:
        m.same_person_created_on_both_sides(name1="Ann", name2="Di", score="1")
        m.sync()  # name Ann -> platform, score 1 -> CRM
        (crm_id,) = m.live("crm")
        (map_id,) = m.live("map")
        m.edit(data=_Draws(map_id, ""), field="score", side="map")
        m.converges()
        assert not m.live("crm")[crm_id].get("score")
    finally:
        m.teardown()


def test_regression_a_capped_read_that_splits_a_delete_from_its_twin_does_not_undo_it() -> None:
    """Hunted: with a cap of 1 the deleted lead and its live twin arrive in different cycles."""
    m = SyncMachine()
    m.setup()
    try:
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.delete_before_the_first_link(same="Ann", side="crm")
        m.delete(data=_Draws("c1"), side="crm")
        m.create(name="Ann", score="", side="crm", title="")
        m.capped_sync(cap=1)
        m.converges()
        assert set(m.live("crm")) == {"c3"}
    finally:
        m.teardown()


def test_regression_a_held_back_create_pairs_with_the_twin_read_later() -> None:
    """Hunted: a create held back by a capped read then found the person's own CRM record.

    It was adopted as if it were ours, so the rep's title on it never reached the platform.
    """
    m = SyncMachine()
    m.setup()
    try:
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.create(name="Ann", score="", side="crm", title="")
        m.edit(data=_Draws("c1", "CTO"), field="title", side="crm")
        m.capped_sync(cap=1)
        m.converges()
        assert m.live("map")["m1"].get("title") == "CTO"
    finally:
        m.teardown()


def test_regression_an_edit_after_a_failed_first_cycle_wins() -> None:
    """Hunted: the oracle of a person's edit made after a cycle whose first batch was refused."""
    m = SyncMachine()
    m.setup()
    try:
        m.sync()
        m.converges()
        m.delete_before_the_first_link(same="Ann", side="crm")
        m.converges()
        m.sync()
        m.same_person_created_on_both_sides(name1="Ann", name2="Cy", score="1")
        m.edit_after_a_failed_cycle(data=_Draws("m2"), name="Bo", side="map")
        m.converges()
    finally:
        m.teardown()


def test_regression_a_merge_left_unsynced_by_a_failed_cycle_and_a_newer_edit() -> None:
    """Hunted: the CRM merge and the marketer's later edit compete; the newer one wins."""
    m = SyncMachine()
    m.setup()
    try:
        m.create(name="Ann", score="", side="crm", title="")
        m.converges()
        m.delete_before_the_first_link(same="Ann", side="crm")
        m.edit_after_a_failed_cycle(data=_Draws("c1"), name="Cy", side="crm")
        m.converges()
        m.human_duplicate(data=_Draws("c1"), name="Ann", side="crm")
        m.merge(data=_Draws(["c3", "c1"]), side="crm")
        m.edit_after_a_failed_cycle(data=_Draws("m1"), name="Bo", side="map")
        m.converges()
        assert m.live("crm")["c3"]["name"] == "Bo"
    finally:
        m.teardown()


def test_regression_a_platform_merge_into_the_twin_of_a_deleted_lead() -> None:
    """Hunted: the platform merges a linked person into the twin of a lead deleted unlinked."""
    m = SyncMachine()
    m.setup()
    try:
        m.create(name="Ann", score="", side="crm", title="")
        m.converges()
        m.capped_sync(cap=1)
        m.delete_before_the_first_link(same="Ann", side="crm")
        m.merge(data=_Draws(["m2", "m1"]), side="map")
        m.converges()
        assert list(m.live("map")) == ["m2"] and len(m.live("crm")) == 1
    finally:
        m.teardown()


def test_regression_an_upsert_that_matches_an_unlinked_duplicate_keeps_its_values() -> None:
    """Hunted: a CRM duplicate's create matched the platform's unlinked twin (score 3), whose
    unwritten fields were then taken for vendor defaults and never reached the CRM."""
    m = SyncMachine()
    m.setup()
    try:
        m.create(name="Ann", score="", side="map", title="")
        m.create(name="Ann", score="3", side="map", title="")
        m.human_duplicate(data=_Draws("m2"), name="Ann", side="map")
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.converges()
        m.delete(data=_Draws("m3"), side="map")
        m.crashing_sync(keep=0, side="crm", skip=0)
        m.human_duplicate(data=_Draws("c2"), name="Ann", side="crm")
        m.converges()
        assert m.live("crm")["c4"].get("score") == "3"
    finally:
        m.teardown()


def test_regression_two_failed_cycles_then_an_edit_to_the_first_plans_value() -> None:
    """Hunted: the marketer set the value the first failed cycle had meant to write; the
    store still held that stale plan, so the edit looked like our write having landed."""
    m = SyncMachine()
    m.setup()
    try:
        m.same_person_created_on_both_sides(name1="Bo", name2="Ann", score="")
        m.create(name="Ann", score="", side="map", title="")
        m.edit_after_a_failed_cycle(data=_Draws("c1"), name="Cy", side="crm")
        m.edit_after_a_failed_cycle(data=_Draws("m1"), name="Bo", side="map")
        m.converges()
        assert m.live("crm")["c1"]["name"] == "Bo"
    finally:
        m.teardown()


def test_regression_an_update_to_a_record_not_read_this_cycle_keeps_its_unseen_edit() -> None:
    """Hunted: a capped read left the CRM record unread; our update's new version was taken
    as confirmed and swallowed the rep's score edit that the record already held."""
    m = SyncMachine()
    m.setup()
    try:
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.create(name="Ann", score="", side="map", title="")
        m.converges()
        m.edit(data=_Draws("c1", "Ann"), field="name", side="crm")
        m.edit_after_a_failed_cycle(data=_Draws("m2"), name="Cy", side="map")
        m.edit(data=_Draws("c2", "1"), field="score", side="crm")
        m.delete_before_the_first_link(same="Cy", side="map")
        m.crashing_sync(keep=2, side="crm", skip=0)
        m.capped_sync(cap=2)
        m.converges()
        assert m.live("map")["m2"].get("score") == "1"
    finally:
        m.teardown()


def test_regression_a_crash_while_removing_the_twin_of_a_remembered_delete() -> None:
    """Hunted: the twin's removal was announced as a link whose deleted side is never re-read."""
    m = SyncMachine()
    m.setup()
    try:
        m.create(name="Ann", score="", side="crm", title="")
        m.converges()
        m.delete_before_the_first_link(same="Ann", side="crm")
        m.delete_before_the_first_link(same="Ann", side="crm")
        m.delete_before_the_first_link(same="Ann", side="map")
        m.delete(data=_Draws("c1"), side="crm")
        m.capped_sync(cap=3)
        m.create(name="Ann", score="", side="map", title="")
        m.crashing_sync(keep=0, side="crm", skip=0)
        m.converges()
    finally:
        m.teardown()


SyncMachine.TestCase.settings = settings(
    # 40 keeps the suite quick; the "thorough" profile (tests/conftest.py) asks for far more.
    max_examples=max(40, settings.default.max_examples)
    if settings.default.max_examples > 100
    else 40,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSyncConvergence = SyncMachine.TestCase


def test_random_hunt_with_a_fresh_seed() -> None:
    """A bounded hunt with a new seed every run (the derandomised run above replays fixed ones).

    The seed is printed; a failure prints the shrunk steps and the command that replays them.
    ``CRM_BRIDGE_HUNT_SEED`` replays a seed, ``CRM_BRIDGE_HUNT_EXAMPLES`` sizes the hunt.
    """
    chosen = os.environ.get("CRM_BRIDGE_HUNT_SEED")
    if chosen is None and "CRM_BRIDGE_HUNT_EXAMPLES" not in os.environ:
        # The suite's own run replays fixed examples; .ci/run hunts with a fresh seed as a
        # step of its own (docs/sync.md), and what a hunt finds becomes a regression test.
        pytest.skip("set CRM_BRIDGE_HUNT_EXAMPLES=N (or CRM_BRIDGE_HUNT_SEED) to hunt")
    hunt_seed = int(chosen) if chosen else secrets.randbits(63)
    examples = int(os.environ.get("CRM_BRIDGE_HUNT_EXAMPLES", "150"))
    replay = (
        f"CRM_BRIDGE_HUNT_SEED={hunt_seed} CRM_BRIDGE_HUNT_EXAMPLES={examples} python -m pytest "
        f"'tests/sync/test_convergence.py::test_random_hunt_with_a_fresh_seed'"
    )
    print(f"sync state machine hunt: seed {hunt_seed}, {examples} examples; replay: {replay}")
    hunted = seed(hunt_seed)(type("HuntedSyncMachine", (SyncMachine,), {}))
    try:
        run_state_machine_as_test(
            hunted,
            settings=settings(
                max_examples=examples,
                derandomize=False,
                database=None,
                stateful_step_count=25,
                deadline=None,
                print_blob=True,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    except BaseException as exc:
        exc.add_note(f"replay this hunt with: {replay}")
        raise


def test_regression_a_create_waiting_on_a_capped_side_sends_the_sources_newest_values() -> None:
    """A refused create waits while the target is capped; the source's edit read then is kept."""
    m = SyncMachine()
    m.setup()
    try:
        m.create(name="Ann", score="", side="map", title="")
        m.edit_after_a_failed_cycle(data=_Draws("m1"), name="Bo", side="map")
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.create(name="Ann", score="", side="crm", title="")
        m.capped_sync(cap=1)  # reads m1 (Bo); the crm side is capped, so the create waits
        m.converges()
        email = m.live("map")["m1"]["email"]
        (created,) = [v for v in m.live("crm").values() if v["email"] == email]
        assert created["name"] == "Bo"
    finally:
        m.teardown()


def test_regression_a_landed_create_is_owed_the_edit_its_source_made_while_it_waited() -> None:
    """The create landed before a crash; the source changed; the target's read was capped."""
    m = SyncMachine()
    m.setup()
    try:
        m.create(name="Ann", score="", side="map", title="")
        m.create(name="Xi", score="", side="crm", title="")
        m.create(name="Yu", score="", side="crm", title="")
        m.crashing_sync(side="crm", keep=1, skip=0)  # m1's create lands on the crm, unrecorded
        assert [v["name"] for v in m.live("crm").values()] == ["Xi", "Yu", "Ann"]
        m.edit(data=_Draws("m1", "Bo"), field="name", side="map")
        m.capped_sync(cap=1)  # m1 read (Bo); the landed create is beyond the crm cap
        m.converges()
        email = m.live("map")["m1"]["email"]
        (created,) = [v for v in m.live("crm").values() if v["email"] == email]
        assert created["name"] == "Bo"
    finally:
        m.teardown()


def test_regression_a_capped_side_is_read_by_id_before_its_record_is_written_over() -> None:
    """A merge survivor's older name must not overwrite a newer edit beyond the other cap."""
    m = SyncMachine()
    m.setup()
    try:
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.converges()
        m.delete_before_the_first_link(same="Di", side="crm")
        m.human_duplicate(data=_Draws("c1"), name="Di", side="crm")
        m.sync()
        m.same_person_created_on_both_sides(name1="Ann", name2="Cy", score="")
        m.merge(data=_Draws(["c3", "c1"]), side="crm")
        m.same_person_created_on_both_sides(name1="Bo", name2="Cy", score="1")
        m.edit_after_a_failed_cycle(data=_Draws("m1"), name="Cy", side="map")
        m.capped_sync(cap=3)  # the platform's read stops before m1's newest edit
        m.converges()
        assert m.live("map")["m1"]["name"] == "Cy"
        assert m.live("crm")["c3"]["name"] == "Cy"
    finally:
        m.teardown()


def test_regression_a_value_set_back_to_the_synced_one_is_no_edit() -> None:
    """Three failed cycles and edits; the last sets the CRM back to the synced name (ABA)."""
    m = SyncMachine()
    m.setup()
    try:
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.edit_after_a_failed_cycle(data=_Draws("m1"), name="Bo", side="map")
        m.edit_after_a_failed_cycle(data=_Draws("c1"), name="Cy", side="crm")
        m.edit_after_a_failed_cycle(data=_Draws("c1"), name="Ann", side="crm")
        assert not m.kept_edits  # Ann is the synced name: indistinguishable from no edit
        m.converges()
        assert m.live("crm")["c1"]["name"] == m.live("map")["m1"]["name"] == "Bo"
    finally:
        m.teardown()


def test_regression_two_landed_creates_of_merged_records_leave_one_record() -> None:
    """Both creates landed before a crash; the CRM then merged their sources (state machine)."""
    m = SyncMachine()
    m.setup()
    try:
        m.create(name="Ann", score="", side="crm", title="")
        m.create(name="Ann", score="", side="crm", title="")
        m.crashing_sync(keep=2, side="map", skip=0)
        assert len(m.live("map")) == 2
        m.merge(data=_Draws(["c1", "c2"]), side="crm")
        m.converges()
        m.no_engine_made_duplicates()
        assert len(m.live("map")) == 1  # the loser's copy archived, as the policy says
    finally:
        m.teardown()


def test_regression_a_landed_create_whose_source_merged_into_a_linked_record_is_removed() -> None:
    """The platform merges a record whose create landed unrecorded into a linked one."""
    m = SyncMachine()
    m.setup()
    try:
        m.create(name="Ann", score="", side="map", title="")
        for _ in range(3):
            m.create(name="Ann", score="", side="crm", title="")
        m.capped_sync(cap=1)
        m.crashing_sync(keep=1, side="crm", skip=0)
        m.merge(data=_Draws(["m1", "m2"]), side="map")
        m.sync()  # used to fail: the kept link's re-key met the closing pending link's id
        m.no_engine_made_duplicates()
        m.converges()
    finally:
        m.teardown()


def test_regression_merges_on_both_sides_after_a_crash_leave_no_orphan() -> None:
    m = SyncMachine()
    m.setup()
    try:
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.create(name="Ann", score="", side="crm", title="")
        m.edit_after_a_failed_cycle(data=_Draws("c1"), name="Ann", side="crm")
        m.create(name="Ann", score="", side="map", title="")
        m.merge(data=_Draws(["m1", "m2"]), side="map")
        m.crashing_sync(keep=1, side="map", skip=0)
        m.merge(data=_Draws(["c2", "c1"]), side="crm")
        m.converges()
    finally:
        m.teardown()


def test_regression_an_unconfirmed_write_to_a_record_the_stream_has_passed_is_redone() -> None:
    """A pairing's update is refused after a capped cycle read its target; nobody edits it."""
    m = SyncMachine()
    m.setup()
    try:
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="1")
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.merge(data=_Draws(["m1", "m2"]), side="map")
        m.capped_sync(cap=1)  # reads c1 (its create waits); the cursor moves past it
        m.edit_after_a_failed_cycle(data=_Draws("m1"), name="Ann", side="map")
        m.converges()
        assert m.live("crm")["c1"]["score"] == "1"
    finally:
        m.teardown()


def test_regression_a_merge_survivors_twin_beyond_the_other_sides_cap_is_found() -> None:
    """The CRM merges a linked person into an unlinked one whose twin the capped read missed."""
    m = SyncMachine()
    m.setup()
    try:
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.sync()
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.merge(data=_Draws(["c2", "c1"]), side="crm")
        m.capped_sync(cap=1)
        m.no_engine_made_duplicates()
        m.sync()
        m.no_engine_made_duplicates()
        m.converges()
        assert len(m.live("map")) == 1  # the merged-away person's record archived
    finally:
        m.teardown()


def test_regression_a_failed_write_redone_after_its_source_was_set_back() -> None:
    """A write of a marketing edit fails; the marketer sets the old value back: that one wins."""
    m = SyncMachine()
    m.setup()
    try:
        m.delete_before_the_first_link(same="Ann", side="map")
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="2.0")
        m.edit_after_a_failed_cycle(data=_Draws("m2"), name="Di", side="map")
        m.edit_after_a_failed_cycle(data=_Draws("m2"), name="Ann", side="map")
        m.converges()
        assert m.live("crm")["c2"]["name"] == "Ann"
    finally:
        m.teardown()


def test_regression_an_edit_back_to_a_settled_writes_prior_is_an_edit() -> None:
    """A failed cycle's write is settled by a person typing its value; their next edit sets the
    value the record held before that write: an edit, not a write that did not land."""
    m = SyncMachine()
    m.setup()
    try:
        m.same_person_created_on_both_sides(name1="Ann", name2="Bo", score="1")
        m.edit_after_a_failed_cycle(data=_Draws("m1"), name="Ann", side="map")
        m.edit_after_a_failed_cycle(data=_Draws("m1"), name="Bo", side="map")
        m.converges()
        assert m.live("crm")["c1"]["name"] == "Bo"
    finally:
        m.teardown()


def test_regression_an_edit_whose_write_met_a_conversion_reaches_the_contact() -> None:
    """A marketer's edit is on its way to a lead as the rep converts it: the write is refused,
    and the edit must reach the contact the lead became."""
    m = SyncMachine()
    m.setup()
    try:
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.converges()
        m.edit(data=_Draws("m1", "Bo"), field="name", side="map")
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.convert_during_a_write_batch(data=_Draws("c1"), into_existing=False)
        m.converges()
        assert m.live("crm")["c3"]["name"] == "Bo"
    finally:
        m.teardown()


def test_regression_a_crash_in_a_merge_of_two_people_leaves_no_duplicate() -> None:
    """Conversions chain two people into one contact; a crash after the first map write must
    not leave two platform records with one e-mail (the loser's record goes first)."""
    m = SyncMachine()
    m.setup()
    try:
        m.create(name="Ann", score="", side="crm", title="")
        m.create(name="Cy", score="3", side="map", title="")
        m.capped_sync(cap=1)
        m.convert(data=_Draws("c1"), into_existing=False)
        m.convert(data=_Draws("c3"), into_existing=False)
        m.convert(data=_Draws("c2", "c4"), into_existing=True)
        m.crashing_sync(keep=1, side="map", skip=0)
        m.no_engine_made_duplicates()
        m.converges()
    finally:
        m.teardown()


def test_regression_a_source_deleted_before_its_held_back_create_went_out() -> None:
    """A create held back for a capped side is never sent; the source is deleted; its twin on
    the other side is then found: the twin follows the delete, it is not paired with it."""
    m = SyncMachine()
    m.setup()
    try:
        m.create(name="Ann", score="", side="crm", title="")
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.human_duplicate(data=_Draws("m1"), name="Ann", side="map")
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.delete(data=_Draws("c3"), side="crm")
        m.capped_sync(cap=1)
        m.capped_sync(cap=2)
        m.delete(data=_Draws("c4"), side="crm")
        m.same_person_created_on_both_sides(name1="Bo", name2="Bo", score="1")
        m.converges()
        assert "m4" not in m.live("map")
    finally:
        m.teardown()


def test_regression_a_merge_survivor_beyond_its_own_sides_cap_is_read() -> None:
    """The platform merges a linked person into one whose CRM twin is unlinked; the cap stops
    before the survivor: it is read by id, so the link closes into the twin's pairing."""
    m = SyncMachine()
    m.setup()
    try:
        m.delete_before_the_first_link(same="Ann", side="crm")
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.converges()
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.merge(data=_Draws(["m3", "m2"]), side="map")
        m.capped_sync(cap=3)
        m.no_engine_made_duplicates()
        m.converges()
    finally:
        m.teardown()


def test_regression_an_edit_landing_just_before_our_write_is_not_absorbed() -> None:
    """A rep converts a lead into a contact (filling its empty title) just before the bridge's
    write to that contact lands: the version the write returns covers the rep's change too, so
    it must not be taken as ours."""
    m = SyncMachine()
    m.setup()
    try:
        m.create(name="Ann", score="", side="map", title="")
        m.create(name="Ann", score="", side="crm", title="CTO")
        m.create(name="Ann", score="", side="crm", title="")
        m.converges()
        m.human_duplicate(data=_Draws("c1"), name="Ann", side="crm")
        m.human_duplicate(data=_Draws("c1"), name="Ann", side="crm")
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="1")
        m.convert_during_a_write_batch(data=_Draws("c1", "c6"), into_existing=True)
        m.converges()
        assert m.live("crm")["c6"]["title"] == "CTO"
    finally:
        m.teardown()


def test_regression_a_survivor_whose_create_waits_pairs_with_its_twin() -> None:
    """The platform merges a linked person into one whose create to the CRM still waits (the
    CRM side was capped) and whose CRM twin is read now: the survivor pairs with that twin, and
    the merged link is not re-keyed onto it (which would give two CRM records one e-mail)."""
    m = SyncMachine()
    m.setup()
    try:
        m.create(name="Ann", score="", side="crm", title="")
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.capped_sync(cap=1)
        m.merge(data=_Draws(["m1", "m2"]), side="map")
        m.capped_sync(cap=1)
        m.no_engine_made_duplicates()
        m.converges()
    finally:
        m.teardown()


def test_regression_a_failed_write_to_a_converted_leads_contact_is_redone() -> None:
    """A marketer's edit meets a conversion (refused: the lead moved on); the next cycle's write
    to the contact fails too (a 503): the edit, read by id from the platform, must not be lost."""
    m = SyncMachine()
    m.setup()
    try:
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.delete_before_the_first_link(same="Ann", side="crm")
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.converges()
        m.edit(data=_Draws("m1", "Bo"), field="name", side="map")
        m.delete_before_the_first_link(same="Ann", side="crm")
        m.convert_during_a_write_batch(data=_Draws("c1"), into_existing=False)
        m.edit_after_a_failed_cycle(data=_Draws("c4"), name="Ann", side="crm")
        m.converges()
        assert m.live("crm")["c6"]["name"] == "Bo"
    finally:
        m.teardown()


def test_regression_a_chain_of_conversions_beyond_the_cap_is_followed_to_its_end() -> None:
    """Lead into contact, that contact into another, into another: a capped cycle reads the
    first links of the chain; the last survivor (with a same-e-mail twin on the platform) must
    be read too, or the link re-keys onto it and the platform ends with two records of one
    person."""
    m = SyncMachine()
    m.setup()
    try:
        m.create(name="Di", score="", side="crm", title="")
        m.create(name="Ann", score="", side="crm", title="VP")
        m.convert_during_a_write_batch(data=_Draws("c1"), into_existing=False)
        m.converges()
        m.convert(data=_Draws("c3", "c2"), into_existing=True)
        m.convert(data=_Draws("c2", "c4"), into_existing=True)
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.delete_before_the_first_link(same="Ann", side="map")
        m.convert(data=_Draws("c4", "c5"), into_existing=True)
        m.capped_sync(cap=3)
        m.no_engine_made_duplicates()
        m.sync()
        m.no_engine_made_duplicates()
        m.converges()
    finally:
        m.teardown()


def test_regression_a_survivors_twin_held_by_an_unsent_create_pairs_with_it() -> None:
    """A capped cycle holds back the create of a platform record; the CRM's twin of that
    person then becomes the survivor of a conversion: the twin pairs with the survivor (the
    converted person's link closes) instead of staying unlinked."""
    m = SyncMachine()
    m.setup()
    try:
        m.create(name="Di", score="", side="crm", title="")
        m.create(name="Ann", score="", side="crm", title="VP")
        m.convert_during_a_write_batch(data=_Draws("c1"), into_existing=False)
        m.converges()
        m.convert(data=_Draws("c3", "c2"), into_existing=True)
        m.convert(data=_Draws("c2", "c4"), into_existing=True)
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.capped_sync(cap=2)
        m.convert(data=_Draws("c4", "c5"), into_existing=True)
        m.converges()
    finally:
        m.teardown()


def test_regression_a_forgotten_unsent_create_does_not_hold_its_identity() -> None:
    """A held-back create's source is converted away before it goes out: the plan forgets that
    pending link, so it must not also reject the surviving record and its twin as duplicates
    of it (both stayed unlinked)."""
    m = SyncMachine()
    m.setup()
    try:
        m.create(name="Ann", score="", side="crm", title="")
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.converges()
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.convert(data=_Draws("c2", "c3"), into_existing=True)
        m.capped_sync(cap=1)
        m.convert(data=_Draws("c3"), into_existing=False)
        m.convert(data=_Draws("c4"), into_existing=False)
        m.create(name="Ann", score="", side="crm", title="")
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.edit(data=_Draws("c1", "Ann"), field="name", side="crm")
        m.converges()
    finally:
        m.teardown()


def test_regression_a_survivor_read_by_an_earlier_cycle_is_read_again_for_its_twin() -> None:
    """A lead is converted into an existing contact whose create was held back by a capped
    cycle; the next cycle brings only the converted lead: its survivor (read before) must be
    read again, or the link re-keys onto it while the survivor's twin stays unlinked."""
    m = SyncMachine()
    m.setup()
    try:
        m.create(name="Ann", score="", side="crm", title="")
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.converges()
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.convert(data=_Draws("c2", "c3"), into_existing=True)
        m.capped_sync(cap=1)
        m.converges()
    finally:
        m.teardown()


def test_regression_a_merge_survivor_whose_twin_waits_in_a_held_back_create() -> None:
    """The platform merges two people; the survivor's twin in the CRM is known only through a
    create into the platform that a capped cycle held back: that twin pairs with the survivor
    (no re-key that would give the CRM two records with one e-mail)."""
    m = SyncMachine()
    m.setup()
    try:
        m.create(name="Cy", score="2.0", side="map", title="")
        m.same_person_created_on_both_sides(name1="Ann", name2="Bo", score="3")
        m.same_person_created_on_both_sides(name1="Ann", name2="Bo", score="3")
        m.delete_before_the_first_link(same="Di", side="map")
        m.converges()
        m.same_person_created_on_both_sides(name1="Di", name2="Cy", score="1")
        m.capped_sync(cap=2)
        m.same_person_created_on_both_sides(name1="Ann", name2="Bo", score="3")
        m.same_person_created_on_both_sides(name1="Bo", name2="Di", score="3")
        m.convert(data=_Draws("c5"), into_existing=False)
        m.capped_sync(cap=2)
        m.merge(data=_Draws(["m7", "m6"]), side="map")
        m.convert_during_a_write_batch(data=_Draws("c1"), into_existing=False)
        m.no_engine_made_duplicates()
        m.converges()
    finally:
        m.teardown()


def test_regression_a_hint_for_a_new_record_does_not_bring_back_its_deleted_twin() -> None:
    """Deleted on the CRM before any link, the person's platform twin is hinted (state machine).

    A create planned from a read by id cannot see the CRM's delete, which only its stream
    shows; the hinted cycle must take the cursor read for a record that has no link yet.
    """
    m = SyncMachine()
    m.setup()
    try:
        m.delete_before_the_first_link(same="Ann", side="crm")
        m.hinted_sync(data=_Draws([], ["m1"], "upsert", "crm"), crash=False)
        m.converges()
        assert m.live("crm") == {}
    finally:
        m.teardown()


def test_regression_a_hint_for_one_of_two_unlinked_twins_links_them_and_keeps_every_field() -> None:
    """The same person on both sides, unlinked; one is hinted and the write crashes."""
    m = SyncMachine()
    m.setup()
    try:
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="3")
        m.hinted_sync(data=_Draws(["c1"], "upsert", [], "map", 0), crash=True)
        m.converges()
        (crm,) = m.live("crm").values()
        assert crm.get("score") == "3"
    finally:
        m.teardown()


def test_regression_a_merge_loser_hinted_as_an_upsert_does_not_duplicate_the_survivor() -> None:
    """A platform merge the poll has not seen yet; the channel names the loser as "changed".

    Found by the fresh-seed hunt (seed 1073011408): the hinted read brought the merged loser
    and the plan re-keyed its link onto a survivor it had not read, whose unlinked twin on the
    CRM then got a duplicate.  A hinted read that finds a delete or merge takes the cursor read.
    """
    m = SyncMachine()
    m.setup()
    try:
        m.sync()
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.sync()
        m.sync()
        m.sync()
        m.same_person_created_on_both_sides(name1="Ann", name2="Ann", score="")
        m.merge(data=_Draws(["m2", "m1"]), side="map")
        m.hinted_sync(data=_Draws([], ["m1"], "upsert", "crm"), crash=False)
        m.no_engine_made_duplicates()
        m.converges()
    finally:
        m.teardown()
