"""The executor: carries a plan out through the connectors, in the largest batches they allow.

Order matters for crash safety:

1. Local bookkeeping (merges re-keyed, pairings, refreshed versions, flagged deletes, rejects and
   decisions) is committed first, in one store transaction.
2. Remote writes go out grouped by (side, kind) in batches of the connector's ``max_batch``.  Each
   batch's outcomes -- new links for creates, new versions and agreed values for updates, closed
   links for deletes, dead letters for rejects -- are committed in one transaction right after
   the batch returns.  A crash between a write and its commit is safe because creates are
   upserts by identity and updates are idempotent: the re-run reads the same changes and lands
   on the same state.
3. The runner advances the cursors only after every batch of the object has been recorded.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from more_itertools import chunked

from crm_bridge.connector import (
    ALREADY_GONE_CODES,
    MOVED_ON_CODES,
    Capability,
    Connector,
    Delete,
    Upsert,
    WriteOp,
    WriteResult,
)
from crm_bridge.store import (
    DecisionIn,
    Link,
    LinkIn,
    PendingWrite,
    Side,
    Store,
    StoreConflictError,
    StoreTx,
)
from crm_bridge.sync.actions import (
    SIDES,
    Adopt,
    Converted,
    Create,
    FlagDeleted,
    Forget,
    LinkRefresh,
    MarkMerged,
    Pairing,
    Plan,
    Reject,
    Rekey,
    Remove,
    Tombstone,
    Update,
    other,
)

__all__ = ["DEFAULT_MAX_ATTEMPTS", "ExecutionReport", "Executor"]

RemoteAction = Create | Update | Remove

DEFAULT_MAX_ATTEMPTS = 5
"""Attempts of a record before its dead letter stops being retried, unless the pair says."""

_AWAITS_A_LINK = frozenset({"REFERENCE_NOT_LINKED"})
"""Codes of records waiting for another record's link rather than for a person's fix."""
_AWAIT_LINK_CYCLES = 3
"""Cycles such a record is retried at once before the usual backoff takes over."""


@dataclass
class ExecutionReport:
    """What a plan did: counts by outcome, and which source records ended well or badly."""

    counts: Counter[str] = field(default_factory=Counter)
    succeeded: set[tuple[Side, str]] = field(default_factory=set)
    failed: set[tuple[Side, str]] = field(default_factory=set)
    stopped: bool = False


def _first_error(done: Iterable[Future[None]]) -> BaseException | None:
    return next((f.exception() for f in done if f.exception() is not None), None)


class Executor:
    """Runs plans for one pair against its two connectors and its store."""

    def __init__(
        self,
        *,
        pair: str,
        connectors: dict[Side, Connector[Any]],
        objects: dict[Side, str],
        store: Store,
        now: Callable[[], datetime],
        run_id: int | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        should_stop: Callable[[], bool] = lambda: False,
        on_written: Callable[[Side, str, Sequence[WriteResult]], None] | None = None,
    ) -> None:
        self.pair = pair
        self.on_written = on_written
        self.connectors = connectors
        self.objects = objects
        self.store = store
        self.now = now
        self.run_id = run_id
        self.max_attempts = max_attempts
        self.should_stop = should_stop
        self._store_lock = threading.Lock()

    def execute(self, plan: Plan) -> ExecutionReport:
        """Carry out ``plan``; returns what happened.  Per-record failures never raise."""
        report = ExecutionReport()
        self._record_local(plan, report)
        remote: list[RemoteAction] = [
            a for a in plan.actions if isinstance(a, Create | Update | Remove)
        ]
        self._announce_rewrites(
            remote
        )  # before the first batch: any batch may be the one that fails
        for side in SIDES:
            spec = self.connectors[side].object_spec(self.objects[side])
            for kind in (Remove, Create, Update):
                batch = [a for a in remote if a.target == side and isinstance(a, kind)]
                chunks = list(chunked(batch, max(1, spec.max_batch)))
                if not self._write_chunks(plan, side, chunks, spec.max_concurrent_writes, report):
                    report.stopped = True
                    return report
        return report

    def _write_chunks(
        self,
        plan: Plan,
        side: Side,
        chunks: Sequence[Sequence[RemoteAction]],
        workers: int,
        report: ExecutionReport,
    ) -> bool:
        """Send ``chunks`` with at most ``workers`` in flight; ``False`` if asked to stop.

        Why threads: a batch spends most of its time waiting -- on the vendor's answer and on
        the rate limiter -- while the next one could be announced and the last one recorded.
        Each batch still commits its own outcomes, so a crash leaves every batch either
        recorded or re-planned; a stop request lets the batches in flight finish.  The store is
        written by one batch at a time (``_store_lock``): its work is CPU under the GIL anyway,
        and SQLite has one writer.
        """
        if workers <= 1 or len(chunks) <= 1:
            for chunk in chunks:
                if self.should_stop():
                    return False
                self._write_batch(plan, side, chunk, report)
            return True
        parts: list[ExecutionReport] = []
        failure: BaseException | None = None
        stopped = False
        with ThreadPoolExecutor(workers, thread_name_prefix=f"crm-bridge-{side}") as pool:
            in_flight: set[Future[None]] = set()
            for chunk in chunks:
                if len(in_flight) >= workers:
                    done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    failure = failure or _first_error(done)
                if failure is not None:
                    break
                if self.should_stop():
                    stopped = True
                    break
                parts.append(ExecutionReport())
                in_flight.add(pool.submit(self._write_batch, plan, side, chunk, parts[-1]))
            done, _ = wait(in_flight)
            failure = failure or _first_error(done)
        for part in parts:
            report.counts.update(part.counts)
            report.succeeded |= part.succeeded
            report.failed |= part.failed
        if failure is not None:
            raise failure
        return not stopped

    # -- local bookkeeping ----------------------------------------------------------------------
    def _record_local(self, plan: Plan, report: ExecutionReport) -> None:
        now = self.now()
        with self.store.transaction() as tx:
            for action in plan.actions:
                if isinstance(action, Rekey):
                    # The survivor's version is not known: its next read is compared with the
                    # loser's baseline, so its merged values flow on.
                    tx.update_link(
                        action.link_id,
                        now=now,
                        **_side_columns(action.side, action.new_id, None),
                    )
                    tx.audit(
                        "sync.merge.rekeyed",
                        action.old_id,
                        {"survivor": action.new_id, "side": action.side},
                        now=now,
                        pair=self.pair,
                    )
                    report.counts["merged"] += 1
                elif isinstance(action, MarkMerged):
                    self._close_merged(tx, action, report, now)
                elif isinstance(action, Adopt):
                    stored = tx.link(action.link_id)
                    assert stored is not None
                    synced: dict[str, dict[str, Any]] = {
                        s: dict(stored.synced.get(s, {})) for s in SIDES
                    }
                    synced[action.side] = dict(action.synced)
                    columns = _side_columns(action.side, action.record_id, None)
                    if action.owed is not None:
                        columns |= {
                            f"{action.side}_state": "written",
                            f"{action.side}_pending": action.owed,
                        }
                    tx.update_link(action.link_id, now=now, **columns, synced=synced)
                    tx.audit(
                        "sync.create.recovered",
                        action.record_id,
                        {"side": action.side, "link": action.link_id},
                        now=now,
                        pair=self.pair,
                    )
                    report.counts["recovered"] += 1
                elif isinstance(action, Converted):
                    conversion = action.conversion
                    tx.audit(
                        "sync.person.converted",
                        action.lead_id,
                        {
                            "side": action.side,
                            "link": action.link_id,
                            "into": action.into_id,
                            "at": conversion.at.isoformat(),
                            "account": conversion.account_id,
                            "opportunity": conversion.opportunity_id,
                        },
                        now=now,
                        pair=self.pair,
                    )
                    report.counts["converted"] += 1
                elif isinstance(action, Forget):
                    tx.delete_pending_link(action.link_id)
                elif isinstance(action, Pairing):
                    self._pair(tx, plan, action, report, now)
                elif isinstance(action, LinkRefresh):
                    changes: dict[str, Any] = {"synced": _baselines(action.synced)}
                    for side, version in action.confirmed.items():
                        changes |= _confirmed(side, version)
                    tx.update_link(action.link_id, now=now, **changes)
                elif isinstance(action, Tombstone):
                    (row,) = tx.insert_links(
                        self.pair,
                        plan.obj,
                        [LinkIn(action.crm_id, action.map_id, None, None, {}, action.identity)],
                        now=now,
                    )
                    tx.mark_link(row.id, "deleted", now=now)
                    deleted = action.crm_id if action.deleted_side == "crm" else action.map_id
                    tx.audit(
                        "sync.delete.before_link",
                        deleted or "",
                        {"side": action.deleted_side, "link": row.id},
                        now=now,
                        pair=self.pair,
                    )
                elif isinstance(action, FlagDeleted):
                    tx.mark_link(action.link_id, "deleted")
                    tx.audit(
                        "sync.delete.flagged",
                        action.deleted_id,
                        {"side": action.deleted_side},
                        now=now,
                        pair=self.pair,
                    )
                    report.counts["deleted_flagged"] += 1
                elif isinstance(action, Reject):
                    self._dead_letter(
                        tx,
                        plan,
                        action.target,
                        action.source_id,
                        "plan",
                        dict(action.payload),
                        action.reason,
                        action.code,
                        False,
                        now,
                    )
                    report.failed.add((other(action.target), action.source_id))
                    report.counts["dead_lettered"] += 1
            for decision in plan.decisions:
                tx.log_decision(_with_run(decision, self.run_id))
            report.counts["conflicts"] += len(plan.decisions)
            report.counts["echoes_skipped"] += plan.echoes

    def _close_merged(
        self, tx: StoreTx, action: MarkMerged, report: ExecutionReport, now: datetime
    ) -> None:
        if action.into_link_id is None:
            tx.mark_link(action.link_id, "deleted")
        else:
            tx.mark_link(action.link_id, "merged", merged_into=action.into_link_id)
        tx.audit(
            "sync.merge.closed",
            action.loser_id,
            {"survivor": action.survivor_id, "side": action.side},
            now=now,
            pair=self.pair,
        )
        report.counts["merged"] += 1

    def _pair(
        self, tx: StoreTx, plan: Plan, action: Pairing, report: ExecutionReport, now: datetime
    ) -> None:
        pending = action.pending
        row = LinkIn(
            action.crm_id,
            action.map_id,
            action.crm_version,
            action.map_version,
            _baselines(action.synced),
            action.identity,
            crm_state="written" if "crm" in pending else "synced",
            map_state="written" if "map" in pending else "synced",
            crm_pending=pending.get("crm"),
            map_pending=pending.get("map"),
        )
        try:
            tx.insert_links(self.pair, plan.obj, [row], now=now)
            report.counts["linked"] += 1
        except StoreConflictError as exc:
            self._dead_letter(
                tx, plan, "map", action.crm_id, "pair", {}, str(exc), "ALREADY_LINKED", False, now
            )
            report.counts["dead_lettered"] += 1

    # -- remote writes --------------------------------------------------------------------------
    def _write_batch(
        self, plan: Plan, side: Side, chunk: Sequence[RemoteAction], report: ExecutionReport
    ) -> None:
        connector = self.connectors[side]
        chunk = self._announce_unlinked_removes(plan, chunk)
        chunk = self._announce_creates(plan, side, chunk, report)
        deferred = [a for a in chunk if isinstance(a, Create) and a.deferred]
        if deferred:
            report.counts["create_deferred"] += len(deferred)
            chunk = [a for a in chunk if not (isinstance(a, Create) and a.deferred)]
        if not chunk:
            return
        ops = [self._op(connector, a, i) for i, a in enumerate(chunk)]
        results = connector.write(self.objects[side], ops)
        if len(results) != len(ops):
            raise RuntimeError(
                f"{connector.name}.write returned {len(results)} results for {len(ops)} inputs"
            )
        if self.on_written is not None:
            self.on_written(side, self.objects[side], results)
        now = self.now()
        with self._store_lock, self.store.transaction() as tx:
            outcomes = _BatchOutcomes(tx, self.pair, plan.obj, side)
            outcomes.prefetch(
                a.link_id for a in chunk if isinstance(a, Update) and a.link_id is not None
            )
            for action, result in zip(chunk, results, strict=True):
                if result.ok or (
                    isinstance(action, Remove) and result.error_code in ALREADY_GONE_CODES
                ):
                    # A removal of a record that is already gone did its job (a re-run after
                    # a crash that came between the vendor's delete and our bookkeeping).
                    self._succeeded(tx, plan, side, action, result, report, now, outcomes)
                    if isinstance(action, Create | Update) and action.waiting:
                        self._still_waiting(tx, plan, side, action, report, now, outcomes)
                elif isinstance(action, Update) and result.error_code in MOVED_ON_CODES:
                    # Converted or merged away since it was read: the stream reports the move
                    # and the next cycle writes this change to the record it became.
                    report.counts["target_moved"] += 1
                else:
                    self._failed(tx, plan, side, action, result, report, now)
            for action, result in outcomes.flush(now):
                # Only when the batched write-back hit a conflict: this create matched a
                # record (by identity) that another link already holds.
                self._create_conflict(tx, plan, side, action, result, report, now)

    def _announce_rewrites(self, chunk: Sequence[RemoteAction]) -> None:
        """Record the intent of updates to sides whose earlier write is still unconfirmed.

        The side's baseline becomes what this write means it to hold and its pending write
        lists the fields with the values read this cycle as priors; should this batch fail as
        well, a person's later edit is still told apart from our unsent plan.  What this cycle's
        read settled of an earlier unconfirmed write (``Update.settled``) is forgotten first.
        """
        updates = [
            a
            for a in chunk
            if isinstance(a, Update) and (a.rewrite or a.settled) and a.link_id is not None
        ]
        if not updates:
            return
        with self._store_lock, self.store.transaction() as tx:
            stored = tx.links_by_link_ids(a.link_id for a in updates if a.link_id is not None)
            live = {k: v for k, v in stored.items() if v.active}
            changes: dict[int, dict[str, Any]] = {}
            pending: dict[tuple[int, Side], PendingWrite | None] = {}
            for action in updates:  # what this cycle's read settled goes first
                link = live.get(action.link_id or 0)
                if link is None:
                    continue
                for side, narrowed in action.settled.items():
                    pending[(link.id, side)] = narrowed
                    changes.setdefault(link.id, {})[f"{side}_pending"] = narrowed
            for action in updates:
                link = live.get(action.link_id or 0)
                if link is None or not action.rewrite:
                    continue
                side = action.target
                synced = changes.get(link.id, {}).get("synced") or {
                    s: dict(link.synced.get(s, {})) for s in SIDES
                }
                meant = action.synced.get(side, {})
                synced[side].update({n: meant[n] for n in action.written.fields if n in meant})
                old = pending.get((link.id, side), link.pending_on(side))
                fields = action.written.fields | (old.fields if old else frozenset())
                prior = {**(old.prior if old else {}), **action.written.prior}
                changes.setdefault(link.id, {}).update(
                    {
                        "synced": synced,
                        f"{side}_state": "written",
                        f"{side}_pending": PendingWrite(frozenset(fields), prior),
                    }
                )
            if changes:
                tx.update_links(changes, now=self.now())

    def _announce_unlinked_removes(
        self, plan: Plan, chunk: Sequence[RemoteAction]
    ) -> list[RemoteAction]:
        """Link the two records of a delete made before any cycle paired them (``Remove.unlinked``).

        Committed before the removal is sent: if the process dies in between, the next cycle
        re-reads the delete, finds the link and follows it, instead of taking the live record
        for a new person.
        """
        fresh = [a for a in chunk if isinstance(a, Remove) and a.unlinked and a.link_id is None]
        if not fresh:
            return list(chunk)
        now = self.now()
        ids: dict[int, int] = {}
        with self._store_lock, self.store.transaction() as tx:
            for action in fresh:
                closed = action.unlinked
                assert closed is not None
                (row,) = tx.insert_links(
                    self.pair,
                    plan.obj,
                    [LinkIn(closed.crm_id, closed.map_id, None, None, {}, closed.identity)],
                    now=now,
                )
                ids[id(action)] = row.id
                tx.audit(
                    "sync.delete.before_link",
                    action.source_id,
                    {"side": closed.deleted_side, "link": row.id},
                    now=now,
                    pair=self.pair,
                )
        return [
            replace(a, link_id=ids[id(a)]) if id(a) in ids and isinstance(a, Remove) else a
            for a in chunk
        ]

    def _announce_creates(
        self, plan: Plan, side: Side, chunk: Sequence[RemoteAction], report: ExecutionReport
    ) -> list[RemoteAction]:
        """Record a pending link for each new create *before* sending it.

        If the process dies after the vendor accepted the create, the next cycle finds that
        link and adopts the record it created instead of creating a second one.
        """
        resent = [
            a for a in chunk if isinstance(a, Create) and a.link_id is not None and not a.deferred
        ]
        if resent:
            # Held back before (or lost in a crash): mark it sent before it goes, so a record
            # found after a crash is taken for ours, not for the person's own.
            with self._store_lock, self.store.transaction() as tx:
                tx.update_links(
                    {
                        a.link_id: {f"{side}_pending": PendingWrite(a.written, {})}
                        for a in resent
                        if a.link_id is not None
                    },
                    now=self.now(),
                )
        fresh = [a for a in chunk if isinstance(a, Create) and a.link_id is None]
        if not fresh:
            return list(chunk)
        rows = [_pending_row(side, a) for a in fresh]
        now = self.now()
        ids: dict[int, int | None] = {}
        with self._store_lock, self.store.transaction() as tx:
            try:
                made = tx.insert_links(self.pair, plan.obj, rows, now=now)
                ids = {id(a): link.id for a, link in zip(fresh, made, strict=True)}
            except StoreConflictError:
                # Someone's source already has an active link (a duplicate in flight): find it
                # one by one and dead-letter only that one.
                for action, row in zip(fresh, rows, strict=True):
                    try:
                        ids[id(action)] = tx.insert_links(self.pair, plan.obj, [row], now=now)[0].id
                    except StoreConflictError as exc:
                        ids[id(action)] = None
                        self._refuse_create(tx, plan, side, action, str(exc), report, now)
        out: list[RemoteAction] = []
        for item in chunk:
            if isinstance(item, Create) and item.link_id is None:
                link_id = ids.get(id(item))
                if link_id is None:
                    continue
                item = replace(item, link_id=link_id)
            out.append(item)
        return out

    def _op(self, connector: Connector[Any], action: RemoteAction, index: int) -> WriteOp:
        key = str(index)
        if isinstance(action, Create):
            return Upsert(key=key, fields=dict(action.fields), match_on=action.match_on)
        if isinstance(action, Update):
            return Upsert(key=key, fields=dict(action.fields), id=action.target_id)
        mode: Literal["hard", "archive"] = action.mode
        if mode == "hard" and Capability.HARD_DELETE not in connector.capabilities:
            mode = "archive"
        return Delete(key=key, id=action.target_id, mode=mode)

    def _succeeded(
        self,
        tx: StoreTx,
        plan: Plan,
        side: Side,
        action: RemoteAction,
        result: WriteResult,
        report: ExecutionReport,
        now: datetime,
        outcomes: _BatchOutcomes,
    ) -> None:
        source = other(side)
        if isinstance(action, Create):
            assert result.id is not None
            ids = {side: result.id, source: action.source_id}
            # A record the upsert matched held fields we did not write: its version says
            # nothing of them, so it is not confirmed and the next read compares every field.
            confirmed = result.version if result.created else None
            versions = {side: confirmed, source: action.source_version}
            synced = {s: dict(v) for s, v in action.synced.items()}
            if confirmed is None and result.created:
                # We have not seen the record as created: what the vendor filled into fields
                # we did not write (a default status, an owner) is adopted on its first read
                # instead of being mistaken for an edit.  A record the upsert *matched* is
                # different: what it held in those fields is a person's data, which its first
                # read compares with "nothing known" (None) and so carries over.
                synced[side] = {k: v for k, v in synced[side].items() if k in action.written}
            assert action.link_id is not None  # announced before the write
            outcomes.link_changes[action.link_id] = {
                **_side_columns(side, ids[side], versions[side]),
                **_side_columns(source, ids[source], versions[source]),
                "synced": _baselines(synced),
                "identity": action.identity,
            }
            outcomes.creates[action.link_id] = (action, result)
            report.counts["matched" if not result.created else "created"] += 1
        elif isinstance(action, Update):
            link_id = action.link_id
            if link_id is None:
                found = tx.link_for(self.pair, plan.obj, side, action.target_id)
                link_id = found.id if found is not None and found.active else None
            stored = outcomes.link(link_id) if link_id is not None else None
            if stored is not None:
                merged: dict[str, dict[str, Any]] = {
                    s: dict(stored.synced.get(s, {})) for s in SIDES
                }
                for s, new in action.synced.items():
                    kept = {n: merged[s][n] for n in action.outflow if n in merged.get(s, {})}
                    merged[s] = {**new, **kept} if s == side else dict(new)
                if action.source_holds:
                    merged[source] = {**merged.get(source, {}), **action.source_holds}
                changes: dict[str, Any] = {"synced": merged}
                # The version an update returns may already cover a person's edit that landed
                # between our read and our write (a rep converting a lead into this contact):
                # it is not confirmed, so the next read compares values -- our write comes back
                # as an echo, their edit as an edit.
                changes |= _confirmed(side, None)
                if action.still_pending is not None:
                    changes[f"{side}_state"] = "written"
                    changes[f"{side}_pending"] = action.still_pending
                if action.identity is not None:
                    changes["identity"] = action.identity
                if action.source_version is not None:
                    changes |= _confirmed(source, action.source_version)
                outcomes.link_changes[stored.id] = changes
            report.counts["updated"] += 1
        else:
            if action.merge is not None:
                self._close_merged(tx, action.merge, report, now)
            elif action.link_id is not None and action.pending:
                tx.delete_pending_link(action.link_id)
            elif action.link_id is not None:
                tx.mark_link(action.link_id, "deleted")
            tx.audit(
                "sync.delete.propagated",
                action.target_id,
                {"side": side, "mode": action.mode, "source": action.source_id},
                now=now,
                pair=self.pair,
            )
            report.counts["deleted"] += 1
        outcomes.resolved.append(action.source_id)
        report.succeeded.add((source, action.source_id))

    def _create_conflict(
        self,
        tx: StoreTx,
        plan: Plan,
        side: Side,
        action: Create,
        result: WriteResult,
        report: ExecutionReport,
        now: datetime,
    ) -> None:
        """Undo a create's success: its target already belongs to another link."""
        assert action.link_id is not None
        tx.delete_pending_link(action.link_id)
        reason = (
            f"{side} record {result.id} matched by identity is already linked to another record"
        )
        self._refuse_create(tx, plan, side, action, reason, report, now)
        report.counts["matched" if not result.created else "created"] -= 1
        report.succeeded.discard((other(side), action.source_id))

    def _refuse_create(
        self,
        tx: StoreTx,
        plan: Plan,
        side: Side,
        action: Create,
        reason: str,
        report: ExecutionReport,
        now: datetime,
    ) -> None:
        """Dead-letter a create whose record would be (or was found) linked twice."""
        self._dead_letter(
            tx,
            plan,
            side,
            action.source_id,
            "create",
            dict(action.fields),
            reason,
            "ALREADY_LINKED",
            False,
            now,
        )
        report.counts["dead_lettered"] += 1
        report.failed.add((other(side), action.source_id))

    def _still_waiting(
        self,
        tx: StoreTx,
        plan: Plan,
        side: Side,
        action: Create | Update,
        report: ExecutionReport,
        now: datetime,
        outcomes: _BatchOutcomes,
    ) -> None:
        """A write that landed without some set members: its source waits for their links.

        The letter (not the write) is what is retried: a replay re-reads the source and sends
        the members that link by then.
        """
        outcomes.resolved = [k for k in outcomes.resolved if k != action.source_id]
        self._dead_letter(
            tx,
            plan,
            side,
            action.source_id,
            type(action).__name__.lower(),
            {"fields": dict(action.fields)},
            action.waiting or "",
            "REFERENCE_NOT_LINKED",
            False,
            now,
        )
        report.counts["waiting_for_links"] += 1
        report.failed.add((other(side), action.source_id))

    def _failed(
        self,
        tx: StoreTx,
        plan: Plan,
        side: Side,
        action: RemoteAction,
        result: WriteResult,
        report: ExecutionReport,
        now: datetime,
    ) -> None:
        if isinstance(action, Create) and action.link_id is not None:
            tx.delete_pending_link(action.link_id)  # refused: nothing was created
        operation = type(action).__name__.lower()
        payload: dict[str, Any] = {"target_id": getattr(action, "target_id", None)}
        if isinstance(action, Create | Update):
            payload["fields"] = dict(action.fields)
        self._dead_letter(
            tx,
            plan,
            side,
            action.source_id,
            operation,
            payload,
            result.error or "rejected",
            result.error_code or "REJECTED",
            result.retryable,
            now,
        )
        report.counts["dead_lettered"] += 1
        report.failed.add((other(side), action.source_id))

    def _dead_letter(
        self,
        tx: StoreTx,
        plan: Plan,
        side: Side,
        source_id: str,
        operation: str,
        payload: dict[str, Any],
        reason: str,
        code: str,
        retryable: bool,
        now: datetime,
    ) -> None:
        attempts = tx.dead_letter_attempts(self.pair, side, plan.obj, source_id)
        base = timedelta(seconds=30) if retryable else timedelta(minutes=5)
        retry_at = now + base * (2 ** min(attempts, 10))
        if code in _AWAITS_A_LINK and attempts < _AWAIT_LINK_CYCLES:
            # The referenced record is synced earlier in every cycle (objects run in reference
            # order) and usually links in the next one -- a lead converted mid-cycle brings its
            # Contact's link a cycle after the new Opportunity names it: retry then.
            retry_at = now
        tx.add_dead_letter(
            pair=self.pair,
            side=side,
            obj=plan.obj,
            record_key=source_id,
            operation=operation,
            payload=payload,
            reason=reason,
            error_code=code,
            next_retry_at=retry_at,
            now=now,
        )


class _BatchOutcomes:
    """The store writes one batch's successes need, gathered and sent as a few statements.

    Recording outcomes record by record cost two or three statements each (read the link, write
    it back, close any dead letter): about 2 ms per record, more than the API call it followed.
    Gathered, a batch of 200 costs a handful of ``executemany`` round trips.
    """

    def __init__(self, tx: StoreTx, pair: str, obj: str, side: Side) -> None:
        self.tx, self.pair, self.obj, self.side = tx, pair, obj, side
        self.stored: dict[int, Link] = {}
        self.link_changes: dict[int, dict[str, Any]] = {}
        self.creates: dict[int, tuple[Create, WriteResult]] = {}
        self.resolved: list[str] = []

    def prefetch(self, link_ids: Iterable[int | None]) -> None:
        """Read the links the batch's updates will merge their baselines into, in one query."""
        self.stored.update(self.tx.links_by_link_ids(i for i in link_ids if i is not None))

    def link(self, link_id: int) -> Link | None:
        """A link as stored before this batch (prefetched, or read now for the odd one)."""
        if link_id not in self.stored:
            found = self.tx.link(link_id)
            if found is None:
                return None
            self.stored[link_id] = found
        return self.stored[link_id]

    def flush(self, now: datetime) -> list[tuple[Create, WriteResult]]:
        """Write everything gathered; returns the creates whose target another link holds.

        The batched write is all-or-nothing, so one conflict (a create that matched a record
        already linked elsewhere) sends the batch again record by record to find the culprit.
        """
        conflicts: list[tuple[Create, WriteResult]] = []
        try:
            self.tx.update_links(self.link_changes, now=now)
        except StoreConflictError:
            for link_id, changes in self.link_changes.items():
                try:
                    self.tx.update_link(link_id, now=now, **changes)
                except StoreConflictError:
                    conflicts.append(self.creates[link_id])
        failed = {action.source_id for action, _ in conflicts}
        self.tx.resolve_dead_letters_for(
            self.pair, self.side, self.obj, (k for k in self.resolved if k not in failed), now=now
        )
        return conflicts


def _pending_row(target: Side, action: Create) -> LinkIn:
    """The link row announcing ``action``: the source's id and version, no target yet."""
    source = other(target)
    ids: dict[Side, str | None] = {target: None, source: action.source_id}
    versions: dict[Side, str | None] = {target: None, source: action.source_version}
    creating = PendingWrite(action.written, {}, sent=not action.deferred)
    return LinkIn(
        ids["crm"],
        ids["map"],
        versions["crm"],
        versions["map"],
        _baselines(action.synced),
        action.identity,
        crm_state="creating" if target == "crm" else "synced",
        map_state="creating" if target == "map" else "synced",
        crm_pending=creating if target == "crm" else None,
        map_pending=creating if target == "map" else None,
    )


def _baselines(synced: Mapping[Any, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-side baselines as the link's ``synced`` column holds them."""
    return {s: dict(synced.get(s, {})) for s in SIDES}


def _confirmed(side: Side, version: str | None) -> dict[str, Any]:
    """Link columns for a side whose baseline is now confirmed (``version``: if known)."""
    return {f"{side}_version": version, f"{side}_state": "synced", f"{side}_pending": None}


def _side_columns(side: Side, record_id: str | None, version: str | None) -> dict[str, Any]:
    """Link columns for a side whose record is known and whose baseline is confirmed."""
    return {f"{side}_id": record_id, **_confirmed(side, version)}


def _with_run(decision: DecisionIn, run_id: int | None) -> DecisionIn:
    return replace(decision, run_id=run_id)
