"""One sync cycle for one pair: read both sides, plan, guard, execute, advance the cursors.

This is the function both ``crm-bridge sync`` and every ``crm-bridge daemon`` cycle call.  It
owns the order of operations and the safety checks; the decisions live in the planner and the
writes in the executor.

Each side reads at most ``max_records_per_cycle`` changes per object and the rest waits for the
next cycle, which keeps memory flat however large the backlog; the keyset cursor
(:mod:`crm_bridge.sync.cursor`) makes every capped read continue strictly after the last record
it took.  After new changes the ``overlap_seconds`` behind the newest are read once more, so a
record committed late or stamped by a skewed clock is read again rather than missed; the
planner skips versions already applied, so the overlap costs reads, never writes.
"""

from __future__ import annotations

import contextvars
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from more_itertools import chunked

from crm_bridge.connector import Capability, ChangeHint, Connector, Record
from crm_bridge.errors import CrmBridgeError, SyncAbortedError
from crm_bridge.ops.events import NO_OBSERVER, CycleObserver
from crm_bridge.store import ChangeCursor, DeadLetter, Link, RunStatus, Side, Store
from crm_bridge.sync.actions import SIDES, Plan, other
from crm_bridge.sync.cursor import Read, advance, seen_through, take, window
from crm_bridge.sync.executor import DEFAULT_MAX_ATTEMPTS, Executor
from crm_bridge.sync.mapping import ObjectMap, PairSettings
from crm_bridge.sync.owners import OwnerDirectory
from crm_bridge.sync.planner import (
    LinkState,
    PlanContext,
    identity_of,
    logical_values,
    plan_object,
)
from crm_bridge.sync.references import ReferenceDirectory, member_ids
from crm_bridge.sync.values import canonical
from crm_bridge.sync.write_clock import WriteClock

__all__ = ["HINTED_READ_LIMIT", "CycleReport", "SyncRunner"]

HINTED_READ_LIMIT = 200
"""Hinted ids per side and object above which a cursor read is cheaper than reads by id (a
HubSpot batch read holds 100 ids, a search page 200; a Salesforce query page 2,000)."""

_PASS_LIMIT_PER_CAP = 10
"""Applied records one read may pass over, per ``max_records_per_cycle``: the keys it keeps to
place the cursor stay a few MB (at the default cap, 100,000 keys) however large a read-back."""

_MAX_SURVIVOR_HOPS = 8
"""How far a chain of merges (A into B, then B into C) is followed by id in one cycle."""


@dataclass
class CycleReport:
    """What one cycle did, per object, and the API calls it spent per connector."""

    pair: str
    counts: Counter[str] = field(default_factory=Counter)
    calls: dict[str, int] = field(default_factory=dict)
    plans: list[Plan] = field(default_factory=list)
    """Each object's whole plan, kept only by a ``plan_only`` cycle (``sync --plan`` prints it):
    a cycle that writes lets each plan go once it is executed, so a cycle's memory is one
    object's batch, not the sum of all of them."""
    actions: dict[str, Counter[str]] = field(default_factory=dict)
    """Per object, how many actions of each kind were planned (``Create:map``, ``Update:crm``)."""
    run_id: int | None = None

    def note_plan(self, plan: Plan, *, keep: bool) -> None:
        """Count ``plan``'s actions; keep the plan itself only when asked to."""
        kinds = self.actions.setdefault(plan.obj, Counter())
        for action in plan.actions:
            target = getattr(action, "target", "")
            kinds[f"{type(action).__name__}:{target}" if target else type(action).__name__] += 1
        if keep:
            self.plans.append(plan)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@contextmanager
def _closing(stream: Iterator[Record]) -> Iterator[Iterator[Record]]:
    """A change stream, closed on the way out.

    A generator left mid-page releases its connection now rather than when it is collected.
    """
    try:
        yield stream
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()


def _link_state(link: Link) -> LinkState:
    return LinkState(
        id=link.id,
        crm_id=link.crm_id,
        map_id=link.map_id,
        crm_version=link.crm_version,
        map_version=link.map_version,
        synced=link.synced,
        active=link.active,
        crm_state=link.crm_state,
        map_state=link.map_state,
        crm_pending=link.crm_pending,
        map_pending=link.map_pending,
        identity=link.identity,
    )


class SyncRunner:
    """Runs cycles of one pair; keep one instance alive in a daemon so owner lists are cached."""

    def __init__(
        self,
        *,
        name: str,
        settings: PairSettings,
        crm: Connector[Any],
        map_: Connector[Any],
        store: Store,
        now: Callable[[], datetime] = _utcnow,
        owner_ttl: timedelta = timedelta(hours=1),
    ) -> None:
        self.name = name
        self.settings = settings
        self.connectors: dict[Side, Connector[Any]] = {"crm": crm, "map": map_}
        self.store = store
        self.now = now
        self.owner_ttl = owner_ttl
        self._owners: OwnerDirectory | None = None
        self._owners_at: datetime | None = None
        self._stop_requested = False
        self._store_lock = threading.Lock()  # the two sides' reads share the store
        # When our writes came back, to tell how late a read ran (crm_bridge.sync.write_clock).
        self.write_clock = WriteClock()
        self.observer: CycleObserver = NO_OBSERVER  # log events, metrics, alerts (crm_bridge.ops)

    def request_stop(self) -> None:
        """Finish the write batch in flight, then end the cycle without advancing cursors."""
        self._stop_requested = True

    def resume(self) -> None:
        """Take back :meth:`request_stop`, so a runner kept alive can serve a new daemon run."""
        self._stop_requested = False

    # -- public ---------------------------------------------------------------------------------
    def run_cycle(
        self,
        *,
        plan_only: bool = False,
        allow_deletes: bool = False,
        hints: Mapping[Side, Sequence[ChangeHint]] | None = None,
    ) -> CycleReport:
        """One cycle over every object of the pair; raises on whole-cycle failures.

        With ``hints`` (from the connectors' push channels, :mod:`crm_bridge.sync.push`) the
        cycle reads only the hinted records, by id, and leaves the cursors where they are: the
        poll stays the truth and brings the same versions again later, as re-reads the planner
        skips.  A hint the vendor attributes to our own integration is dropped unread.  Deletes
        and merges are not in a record read by id, and a new record's create needs the other
        side's stream (see ``_hinted_object``), so a hint of one -- or more hints on a side than
        :data:`HINTED_READ_LIMIT` -- runs that object's ordinary cursor read instead.
        """
        report = CycleReport(pair=self.name)
        hinted = None if hints is None else self._hinted_ids(hints, report)
        before = {s: Counter(c.calls) for s, c in self.connectors.items()}
        started = self.now()
        run_id = None
        if not plan_only:
            with self.store.transaction() as tx:
                run_id = tx.start_run(self.name, self.now())
        report.run_id = run_id
        self.observer.cycle_started(self, report)
        try:
            for obj_name in self.settings.ordered_objects():
                if self._stop_requested:
                    break
                objmap = self.settings.objects[obj_name]
                if hinted is None:
                    self._cycle_object(obj_name, objmap, report, plan_only, allow_deletes, run_id)
                elif obj_name not in hinted:
                    continue
                elif not self._hinted_object(
                    obj_name, objmap, hinted[obj_name], report, plan_only, run_id
                ):
                    # Too many ids, a delete/merge/gap, or a record not linked yet: the cursor
                    # read is the one that cannot miss anything.
                    report.counts["hinted_polls"] += 1
                    self._cycle_object(obj_name, objmap, report, plan_only, allow_deletes, run_id)
                self.observer.object_finished(self, report, obj_name)
            if not plan_only and hinted is None:
                self._replay_due(report, run_id, started)
        except CrmBridgeError as exc:
            self._finish(
                report,
                before,
                run_id,
                "aborted" if isinstance(exc, SyncAbortedError) else "failed",
                str(exc),
            )
            self.observer.cycle_finished(self, report, exc)
            raise
        except Exception as exc:
            self._finish(report, before, run_id, "failed", f"{type(exc).__name__}: {exc}")
            self.observer.cycle_finished(self, report, exc)
            raise
        self._finish(report, before, run_id, "ok", None)
        self.observer.cycle_finished(self, report, None)
        return report

    def replay(self, dead_letters: Iterable[DeadLetter]) -> CycleReport:
        """Re-read the source records of dead letters and try them again now."""
        report = CycleReport(pair=self.name)
        before = {s: Counter(c.calls) for s, c in self.connectors.items()}
        self._replay(list(dead_letters), report, None)
        self._finish(report, before, None, "ok", None)
        return report

    # -- internals ------------------------------------------------------------------------------
    def _hinted_ids(
        self, hints: Mapping[Side, Sequence[ChangeHint]], report: CycleReport
    ) -> dict[str, dict[Side, list[str]] | None]:
        """Per pair object: the ids to read by id on each side, or ``None`` for a cursor read."""
        by_vendor = {
            side: {
                (objmap.crm_object if side == "crm" else objmap.map_object): name
                for name, objmap in self.settings.objects.items()
            }
            for side in SIDES
        }
        wanted: dict[str, dict[Side, list[str]] | None] = {}
        for side in SIDES:
            for hint in hints.get(side, ()):
                name = by_vendor[side].get(hint.object)
                if name is None:
                    continue
                if hint.ours:
                    report.counts["hints_ours"] += 1
                    continue
                report.counts["hints"] += 1
                if name in wanted and wanted[name] is None:
                    continue
                if hint.kind in ("delete", "merge"):
                    wanted[name] = None
                    continue
                ids = wanted.setdefault(name, {"crm": [], "map": []})
                assert ids is not None
                if hint.record_id not in ids[side]:
                    ids[side].append(hint.record_id)
                if len(ids[side]) > HINTED_READ_LIMIT:
                    wanted[name] = None
        return wanted

    def _hinted_object(
        self,
        obj_name: str,
        objmap: ObjectMap,
        ids: dict[Side, list[str]] | None,
        report: CycleReport,
        plan_only: bool,
        run_id: int | None,
    ) -> bool:
        """Read the hinted records by id, plan them as a replay would, and write; no cursor moves.

        ``ids`` is ``None`` when the hints asked for the cursor read (delete, merge, gap, or more
        ids than a read by id is worth): ``False`` at once.

        Only for records linked already: ``False`` (nothing read) when a hinted id has no active
        link.  A new record is a create, and only the other side's stream can show whether its
        twin there was deleted before any cycle paired them -- a create from a read by id would
        bring such a person back -- so that object takes the cursor read instead.  A version
        already applied is skipped, so a hint for a change the poll brought first costs one read.
        A read that finds a hinted record deleted or merged, whatever the hint said, also hands
        the object to the cursor read.
        """
        if ids is None:
            return False
        with self.store.transaction(readonly=True) as tx:
            for side in SIDES:
                found = tx.links_by_ids(self.name, obj_name, side, ids[side]) if ids[side] else {}
                if any(rid not in found or not found[rid].active for rid in ids[side]):
                    return False
        objects = self._objects(objmap)
        changes: dict[Side, list[Record]] = {"crm": [], "map": []}
        for side in SIDES:
            if ids[side]:
                changes[side] = list(self.connectors[side].fetch(objects[side], ids[side]))
                report.counts[f"read_hinted_{side}"] += len(changes[side])
                if any(r.deleted or r.merged_into or r.merged_from for r in changes[side]):
                    # The channel said "changed" but the record is gone or merged: its
                    # survivor and twins are only in the streams (the hunt found a merge loser
                    # hinted as an upsert re-keyed onto an unread survivor, duplicating it).
                    return False
        links = self._links(obj_name, changes)
        none: dict[Side, bool] = {"crm": False, "map": False}
        if self._read_counterparts(objects, changes, links, none):
            links = self._links(obj_name, changes)
        context = self._context(obj_name, objmap, changes, links, none)
        plan = plan_object(context, changes["crm"], changes["map"], links)
        report.note_plan(plan, keep=plan_only)
        report.counts["already_applied"] += plan.already_applied
        self._guard_deletes(obj_name, plan, allow_deletes=False)
        if plan_only:
            return True
        outcome = self._executor(objects, run_id).execute(plan)
        report.counts.update(outcome.counts)
        return True

    def _finish(
        self,
        report: CycleReport,
        before: dict[Side, Counter[str]],
        run_id: int | None,
        status: RunStatus,
        error: str | None,
    ) -> None:
        for side, conn in self.connectors.items():
            spent = Counter(conn.calls)
            spent.subtract(before[side])
            report.calls[conn.name] = sum(v for v in spent.values() if v > 0)
        if run_id is not None:
            with self.store.transaction() as tx:
                tx.finish_run(
                    run_id,
                    status=status,
                    counts=dict(report.counts),
                    calls=report.calls,
                    error=error,
                    now=self.now(),
                )

    def _objects(self, objmap: ObjectMap) -> dict[Side, str]:
        return {"crm": objmap.crm_object, "map": objmap.map_object}

    def value_context(self, obj_name: str, records: dict[Side, list[Record]]) -> PlanContext:
        """The context a cycle would compare ``records`` of ``obj_name`` in.

        For readers outside the engine (``crm-bridge explain``, the demo's agreement check):
        owner e-mails, picklist vocabularies and references resolved as a cycle resolves them,
        so what they call "in step" is what the planner calls in step.
        """
        objmap = self.settings.objects[obj_name]
        none: dict[Side, dict[str, LinkState]] = {"crm": {}, "map": {}}
        return self._context(obj_name, objmap, records, none, {"crm": False, "map": False})

    def _context(
        self,
        obj_name: str,
        objmap: ObjectMap,
        changes: dict[Side, list[Record]],
        links: dict[Side, dict[str, LinkState]],
        complete: dict[Side, bool],
    ) -> PlanContext:
        """The planner's context; ``complete`` per side: whether ``changes`` read to the end."""
        base = PlanContext(
            pair=self.name,
            name=obj_name,
            objmap=objmap,
            owners=self._owner_directory(objmap),
            references=self._reference_directory(objmap, changes),
            match_fields={
                side: frozenset(self.connectors[side].object_spec(obj).identity_fields)
                for side, obj in self._objects(objmap).items()
            },
            now=self.now(),
            skew=timedelta(seconds=self.settings.clock_skew_seconds),
            default_owner={
                "crm": self.settings.default_crm_owner,
                "map": self.settings.default_map_owner,
            },
        )
        identities = {
            key
            for side in SIDES
            for record in changes[side]
            if record.id not in links[side] or not links[side][record.id].active
            if (key := identity_of(base, logical_values(base, side, record))) is not None
        }
        with self.store.transaction(readonly=True) as tx:
            found = tx.links_by_identity(self.name, obj_name, identities) if identities else {}
            pending = [_link_state(link) for link in tx.pending_links(self.name, obj_name)]
            identities |= {p.identity for p in pending if p.identity is not None}
            gone = (
                tx.unpaired_deletes_by_identity(self.name, obj_name, identities)
                if identities
                else {}
            )
        return replace(
            base,
            linked_identities={k: _link_state(v) for k, v in found.items()},
            unpaired_deletes={
                key: (side, rid, link.created_at)
                for key, link in gone.items()
                for side in SIDES
                if (rid := link.id_on(side)) is not None
            },
            pending=pending,
            complete=complete,
        )

    def _reference_directory(
        self, objmap: ObjectMap, changes: dict[Side, list[Record]]
    ) -> ReferenceDirectory:
        """Id translation for the object's reference fields, preloaded with the ids just read."""

        def lookup(obj: str, side: Side, ids: set[str]) -> dict[str, Link]:
            with self.store.transaction(readonly=True) as tx:
                return tx.links_by_ids(self.name, obj, side, ids)

        def follow(link_id: int) -> Link | None:
            with self.store.transaction(readonly=True) as tx:
                return tx.link(link_id)

        directory = ReferenceDirectory(lookup=lookup, follow=follow)
        wanted: dict[tuple[str, Side], set[str]] = {}
        for fm in objmap.fields.values():
            if fm.refers_to is None:
                continue
            for side in SIDES:
                vendor = fm.crm if side == "crm" else fm.map
                ids = wanted.setdefault((fm.refers_to, side), set())
                for r in changes[side]:
                    ids.update(member_ids(r.fields.get(vendor)))
        directory.preload(wanted)
        return directory

    def _owner_directory(self, objmap: ObjectMap) -> OwnerDirectory:
        if not any(fm.kind == "owner" for fm in objmap.fields.values()):
            return self._owners or OwnerDirectory()
        now = self.now()
        if (
            self._owners is None
            or self._owners_at is None
            or now - self._owners_at > self.owner_ttl
        ):
            lists = {
                s: list(c.owners()) if Capability.OWNERS in c.capabilities else []
                for s, c in self.connectors.items()
            }
            self._owners = OwnerDirectory.build(lists["crm"], lists["map"], self.settings.owner_map)
            self._owners_at = now
        return self._owners

    def _read(
        self,
        side: Side,
        obj: str,
        cursor: ChangeCursor | None,
        obj_name: str,
        known: dict[str, Link | None],
    ) -> Read:
        """The side's next read; ``known`` receives the links of the records it kept.

        The applied check has already looked those links up, so :meth:`_links` takes them
        from ``known`` instead of asking the store a second time for the same ids.
        """
        conn = self.connectors[side]
        overlap = timedelta(seconds=self.settings.overlap_seconds)
        where = window(cursor, overlap)
        started = self.write_clock.monotonic()
        ran_at: list[datetime] = []  # the vendor's clock at the start, at least (see applied)

        def applied(records: Sequence[Record]) -> set[str]:
            done = self._applied(side, obj_name, records, known)
            if done:
                ours = [r for r in records if r.id in done]
                bound = self.write_clock.vendor_now_at_least(side, obj, ours, started)
                if bound is not None and (not ran_at or bound > ran_at[0]):
                    ran_at[:] = [bound]
            return done

        with _closing(conn.changes(obj, where.since)) as stream:
            read = take(
                stream,
                where,
                self.settings.max_records_per_cycle,
                conn.object_spec(obj).ordering,
                applied=applied,
                pass_limit=_PASS_LIMIT_PER_CAP * self.settings.max_records_per_cycle,
            )
        through = seen_through(cursor, where, read, ran_at[0] if ran_at else None, overlap)
        if through is not None:
            read = replace(read, seen_through=through)
        kept = {record.id for record in read.records}
        for rid in [rid for rid in known if rid not in kept]:
            del known[rid]  # beyond the cap: read again next cycle, not planned now
        return read

    def _read_sides(
        self,
        objects: dict[Side, str],
        cursors: dict[Side, ChangeCursor | None],
        obj_name: str,
        known: dict[Side, dict[str, Link | None]],
    ) -> dict[Side, Read]:
        """Both sides' reads at once, each on its own thread.

        Why: the two reads share nothing but the store (whose lookups take turns), and each
        mostly waits -- on its vendor's rate limiter (HubSpot's five searches a second), on the
        network, or, for the other, on parsing under the GIL.  A cycle's read then costs the
        slower side's time, not the sum.  An error on either side is raised once both have
        ended, so no stream is left open.
        """
        with ThreadPoolExecutor(2, thread_name_prefix=f"crm-bridge-read-{self.name}") as pool:
            futures = {
                # each thread runs in a copy of this one's context: the log fields bound for
                # the cycle (pair, run) stay on every line the read logs
                s: pool.submit(
                    contextvars.copy_context().run,
                    self._read,
                    s,
                    objects[s],
                    cursors[s],
                    obj_name,
                    known[s],
                )
                for s in SIDES
            }
        return {s: futures[s].result() for s in SIDES}

    def _applied(
        self,
        side: Side,
        obj_name: str,
        records: Sequence[Record],
        known: dict[str, Link | None],
    ) -> set[str]:
        """The records the planner would pass over: versions a confirmed link already holds.

        Exactly its "already applied" test (:meth:`LinkState.news` false on a live, paired
        link), so leaving them out of the plan changes nothing but the memory and the cap: a
        linked pair whose other side changed is planned from this side's baseline either way.
        Deletes and merges always go to the planner.  The links of the others (``None``: not
        linked) go to ``known``.
        """
        candidates = [r.id for r in records if not (r.deleted or r.merged_into or r.merged_from)]
        if not candidates:
            return set()
        versions = {r.id: r.version for r in records}
        with self._store_lock, self.store.transaction(readonly=True) as tx:
            links = tx.links_by_ids(self.name, obj_name, side, candidates)
        done = {
            rid
            for rid, link in links.items()
            if link.active
            and link.crm_id is not None
            and link.map_id is not None
            and link.state_on(side) == "synced"
            and link.version_on(side) == versions[rid]
        }
        for rid in candidates:
            if rid not in done:
                known[rid] = links.get(rid)
        return done

    def _links(
        self,
        obj_name: str,
        changes: dict[Side, list[Record]],
        known: Mapping[Side, Mapping[str, Link | None]] | None = None,
    ) -> dict[Side, dict[str, LinkState]]:
        """The link of every record in ``changes`` (and of merge partners), by side and id.

        ``known`` holds links already read this cycle (by the applied check); only the other
        ids are looked up.  Nothing writes links between the read and the plan, so they hold.
        """
        wanted: dict[Side, set[str]] = {"crm": set(), "map": set()}
        for side in SIDES:
            for record in changes[side]:
                wanted[side].add(record.id)
                if record.merged_into:
                    wanted[side].add(record.merged_into)
                wanted[side].update(record.merged_from)
        found: dict[Side, dict[str, LinkState]] = {"crm": {}, "map": {}}
        for side in SIDES:
            cached = known.get(side, {}) if known is not None else {}
            for rid in wanted[side] & cached.keys():
                if (link := cached[rid]) is not None:
                    found[side][rid] = _link_state(link)
            wanted[side] -= cached.keys()
        with self.store.transaction(readonly=True) as tx:
            for side in SIDES:
                if not wanted[side]:
                    continue
                for rid, link in tx.links_by_ids(self.name, obj_name, side, wanted[side]).items():
                    found[side][rid] = _link_state(link)
        return found

    def _read_counterparts(
        self,
        objects: dict[Side, str],
        changes: dict[Side, list[Record]],
        links: dict[Side, dict[str, LinkState]],
        capped: dict[Side, bool],
    ) -> bool:
        """Read by id the linked counterparts the stream did not bring, where they matter.

        A capped read stops short of the side's later changes: a person's edit there would be
        unseen, and the other side's older change written over it.  Reading those few records
        by id lets the conflict rules see both edits.  The same goes for a record whose last
        write is unconfirmed (``written``): only a read tells whether the write must be redone,
        and the stream may never bring it again.  And for the counterpart of a merge loser (or a
        converted lead): a write to the loser sent as it left was refused, and the change that
        write carried is only in the counterpart, past the cursor.  And for a capped side's
        merge survivor the cap left unread: it decides where the loser's link goes (re-key, or
        close into a twin).  These reads do not move the cursor: the stream brings them again,
        as re-reads the planner recognises.
        """
        fetched = False
        for side in SIDES:
            have = {record.id for record in changes[side]}
            wanted = sorted(
                {
                    rid
                    for record in changes[other(side)]
                    if (link := links[other(side)].get(record.id)) is not None
                    and link.active
                    and (rid := link.id_on(side)) is not None
                    and rid not in have
                    and (
                        capped[side]
                        or link.state_on(side) == "written"
                        or record.merged_into is not None
                    )
                }
            )
            if wanted:
                changes[side].extend(self.connectors[side].fetch(objects[side], wanted))
                fetched = True
            # A merge loser whose survivor this read did not bring (beyond the cap, or read by
            # an earlier cycle): the survivor decides where the loser's link goes (re-key, or
            # close into a twin), so it is read now -- to the end of the chain, as a survivor
            # may itself have been merged (or a converted lead's contact converted on) since.
            for _ in range(_MAX_SURVIVOR_HOPS):
                have = {record.id for record in changes[side]}
                survivors = sorted(
                    {
                        r.merged_into
                        for r in changes[side]
                        if r.merged_into is not None and r.merged_into not in have
                    }
                )
                if not survivors:
                    break
                changes[side].extend(self.connectors[side].fetch(objects[side], survivors))
                fetched = True
        return fetched

    def _read_merge_twins(
        self,
        objmap: ObjectMap,
        objects: dict[Side, str],
        cursors: dict[Side, ChangeCursor | None],
        changes: dict[Side, list[Record]],
        links: dict[Side, dict[str, LinkState]],
        capped: dict[Side, bool],
    ) -> bool:
        """Find, beyond a capped side's cap, the twin of an unlinked merge survivor.

        A merge on one side whose survivor is not linked may join a person the other side
        holds as an unlinked record; the planner then closes the merged link instead of
        re-keying it (which would write the survivor's identity onto a second record of that
        person).  When the other side's read stopped at the cap, the rest of its stream is
        scanned for those identities only -- rare (a merge during a backlog), and bounded by
        the identities wanted, not by the backlog.
        """
        if objmap.identity is None:
            return False
        fm = objmap.fields[objmap.identity]
        found = False
        for side in SIDES:
            there = other(side)
            if not capped[there]:
                continue
            here = {record.id: record for record in changes[side]}
            missing = sorted({r.merged_into for r in changes[side] if r.merged_into} - set(here))
            if missing:  # a survivor the capped read of its own side did not reach
                for record in self.connectors[side].fetch(objects[side], missing):
                    changes[side].append(record)
                    here[record.id] = record
                    found = True
            survivors = {r.merged_into for r in changes[side] if r.merged_into} | {
                r.id for r in changes[side] if r.merged_from
            }
            wanted = {
                canonical(value, fm.kind)
                for sid in survivors
                if (survivor := here.get(sid)) is not None
                and not survivor.deleted
                and not ((link := links[side].get(sid)) is not None and link.active)
                and (value := survivor.fields.get(fm.crm if side == "crm" else fm.map))
                not in (None, "")
            }
            if not wanted:
                continue
            field = fm.crm if there == "crm" else fm.map
            have = {record.id for record in changes[there]}
            where = window(cursors[there], timedelta(seconds=self.settings.overlap_seconds))
            with _closing(self.connectors[there].changes(objects[there], where.since)) as stream:
                for record in stream:
                    if (
                        record.id not in have
                        and not record.deleted
                        and canonical(record.fields.get(field), fm.kind) in wanted
                    ):
                        changes[there].append(record)
                        have.add(record.id)
                        found = True
        return found

    def _cycle_object(
        self,
        obj_name: str,
        objmap: ObjectMap,
        report: CycleReport,
        plan_only: bool,
        allow_deletes: bool,
        run_id: int | None,
    ) -> None:
        objects = self._objects(objmap)
        with self.store.transaction(readonly=True) as tx:
            cursors = {s: tx.get_change_cursor(self.name, s, obj_name) for s in SIDES}
        known: dict[Side, dict[str, Link | None]] = {s: {} for s in SIDES}
        reads = self._read_sides(objects, cursors, obj_name, known)
        changes = {s: list(reads[s].records) for s in SIDES}
        links = self._links(obj_name, changes, known)
        capped = {s: reads[s].capped for s in SIDES}
        if self._read_counterparts(objects, changes, links, capped) | self._read_merge_twins(
            objmap, objects, cursors, changes, links, capped
        ):
            links = self._links(obj_name, changes, known)
        context = replace(
            self._context(
                obj_name, objmap, changes, links, {s: not reads[s].capped for s in SIDES}
            ),
            capped={s: reads[s].capped for s in SIDES},
        )
        plan = plan_object(context, changes["crm"], changes["map"], links)
        report.note_plan(plan, keep=plan_only)
        for side in SIDES:
            report.counts[f"read_{side}"] += len(reads[side].records)
            if reads[side].skipped:
                # Versions already applied (mostly our own writes read back), passed over
                # while reading and left out of the plan (see _applied).
                report.counts[f"passed_over_{side}"] += reads[side].skipped
            if reads[side].capped:
                report.counts["capped_reads"] += 1  # a backlog: the daemon polls again soon
            if extra := len(changes[side]) - len(reads[side].records):
                report.counts[f"read_by_id_{side}"] += extra
        report.counts["already_applied"] += plan.already_applied
        self._guard_deletes(obj_name, plan, allow_deletes)
        if plan_only:
            return
        outcome = self._executor(objects, run_id).execute(plan)
        report.counts.update(outcome.counts)
        if outcome.stopped:
            return  # batches not sent yet are re-planned next cycle: the cursors stay
        with self.store.transaction() as tx:
            for side in SIDES:
                moved = advance(cursors[side], reads[side])
                if moved is not None and moved != cursors[side]:
                    tx.set_change_cursor(self.name, side, obj_name, moved, now=self.now())

    def _executor(
        self, objects: dict[Side, str], run_id: int | None, *, replay: bool = False
    ) -> Executor:
        """The executor of one plan; a replay runs to the end with the executor's own attempts."""
        return Executor(
            pair=self.name,
            connectors=self.connectors,
            objects=objects,
            store=self.store,
            now=self.now,
            run_id=run_id,
            max_attempts=(
                DEFAULT_MAX_ATTEMPTS if replay else self.settings.dead_letter_max_attempts
            ),
            should_stop=(lambda: False) if replay else (lambda: self._stop_requested),
            on_written=self.write_clock.note,
        )

    def _guard_deletes(self, obj_name: str, plan: Plan, allow_deletes: bool) -> None:
        deletes = plan.deletes()
        if allow_deletes or deletes <= self.settings.delete_guard_floor:
            return
        with self.store.transaction(readonly=True) as tx:
            linked = tx.count_links(self.name, obj_name)
        ratio = deletes / max(linked, 1)
        if ratio > self.settings.max_delete_ratio:
            raise SyncAbortedError(
                f"pair {self.name!r}, object {obj_name!r}: this cycle would delete {deletes} of "
                f"{linked} linked records ({ratio:.0%} > max_delete_ratio "
                f"{self.settings.max_delete_ratio:.0%}); nothing was written. If this is "
                f"intended, re-run with `crm-bridge sync --allow-deletes` or raise "
                f"pairs.{self.name}.max_delete_ratio"
            )

    def _replay_due(self, report: CycleReport, run_id: int | None, started: datetime) -> None:
        """Replay what is due, but not what this very cycle dead-lettered.

        This cycle read those records moments ago; nothing they wait for has happened since.
        """
        with self.store.transaction(readonly=True) as tx:
            due = tx.due_dead_letters(
                self.name,
                self.now(),
                self.settings.dead_letter_max_attempts,
                limit=self.settings.max_records_per_cycle,
            )
        due = [dl for dl in due if dl.last_seen < started]
        if due:
            self._replay(due, report, run_id)

    def _replay(
        self, dead_letters: list[DeadLetter], report: CycleReport, run_id: int | None
    ) -> None:
        """Replay by object, in batches of at most ``max_records_per_cycle`` dead letters.

        Why batches: a long outage can leave tens of thousands of dead letters, and a replay
        holds its records, links and plan in memory like a cycle does; the same bound keeps a
        replay's memory that of an ordinary cycle.
        """
        by_object: dict[str, list[DeadLetter]] = {}
        for dl in dead_letters:
            by_object.setdefault(dl.obj, []).append(dl)
        for obj_name, all_items in by_object.items():
            objmap = self.settings.objects.get(obj_name)
            if objmap is None:
                continue
            for items in chunked(all_items, self.settings.max_records_per_cycle):
                self._replay_batch(obj_name, objmap, items, report, run_id)

    def _replay_batch(
        self,
        obj_name: str,
        objmap: ObjectMap,
        items: list[DeadLetter],
        report: CycleReport,
        run_id: int | None,
    ) -> None:
        """Re-read one batch's source records (and their counterparts), plan and write them."""
        objects = self._objects(objmap)
        wanted: dict[Side, set[str]] = {"crm": set(), "map": set()}
        for dl in items:
            wanted[other(dl.side)].add(dl.record_key)
        # Fetch the linked counterparts too: a write that failed left them unconfirmed.
        with self.store.transaction(readonly=True) as tx:
            for source in SIDES:
                for link in tx.links_by_ids(self.name, obj_name, source, wanted[source]).values():
                    counterpart = link.id_on(other(source))
                    if link.active and counterpart:
                        wanted[other(source)].add(counterpart)
        changes: dict[Side, list[Record]] = {"crm": [], "map": []}
        for side in SIDES:
            if wanted[side]:
                changes[side] = list(
                    self.connectors[side].fetch(objects[side], sorted(wanted[side]))
                )
        links = self._links(obj_name, changes)
        context = self._context(obj_name, objmap, changes, links, {"crm": False, "map": False})
        plan = plan_object(
            replace(context, replay=True),
            changes["crm"],
            changes["map"],
            links,
        )
        outcome = self._executor(objects, run_id, replay=True).execute(plan)
        report.counts.update({f"replay_{k}": v for k, v in outcome.counts.items()})
        found = {(s, r.id) for s in SIDES for r in changes[s]}
        with self.store.transaction() as tx:
            for dl in items:
                key = (other(dl.side), dl.record_key)
                if key not in found:
                    tx.set_dead_letter_status(dl.id, "dismissed", now=self.now())
                    report.counts["replay_source_gone"] += 1
                elif key not in outcome.failed:
                    tx.set_dead_letter_status(dl.id, "replayed", now=self.now())
                    report.counts["replayed"] += 1
