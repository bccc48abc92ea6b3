"""One SLA evaluation cycle: read events, move clocks, take due breach steps, audit everything.

``SlaEngine(settings, crm=..., marketing=..., store=..., now=...).run_cycle()`` is what the
daemon calls every cycle (and ``crm-bridge demo`` through :mod:`crm_bridge.sla.demo`).

A cycle, and why in this order:

1. **Lead changes** since the stored cursor (``Connector.changes``): assignments open clocks
   (after the MQL criteria, read on the linked marketing record), status changes stop the accept
   clock or start the reject path, owner changes by humans close the old assignment.
2. **First touches** (``Connector.activities``) for open first-touch clocks only.
3. **Evaluation** of every open clock: pure arithmetic (:mod:`crm_bridge.sla.clock`), one
   calendar call per clock, against the ledger of steps already taken.
4. **Actions**, batched per kind (:mod:`crm_bridge.sla.actions`); each step is written to the
   ledger and the audit log in one transaction with its clock changes, so re-running a cycle
   repeats nothing.

Idempotence and crash safety follow the store's rules: events and the cursor that covers them are
committed together (re-reading a change is harmless: it finds the clock already moved); a step is
executed only if its ledger row is absent.  The one window is "remote effect done, crash before
commit": that step is repeated once on the next cycle (at-least-once, like sync).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from crm_bridge.connector import Capability, Connector
from crm_bridge.errors import ConfigError, ConfigProblem
from crm_bridge.sla.calendar import BusinessCalendar
from crm_bridge.sla.clock import DueStep, PolicyPlan, due_steps, plan_policy
from crm_bridge.sla.events import (
    LeadEvent,
    MarketingFacts,
    lead_event,
    marketing_facts,
    mql_matches,
    parse_instant,
)
from crm_bridge.sla.policy import SlaSettings
from crm_bridge.sla.repository import ClockRow, SlaRepository
from crm_bridge.sla.webhooks import WebhookSender
from crm_bridge.store import Store, StoreTx

__all__ = ["CURSOR_PAIR_PREFIX", "SlaEngine", "SlaReport", "build_engine"]

CURSOR_PAIR_PREFIX = "sla:"
"""The engine keeps its cursors under the pair ``sla:<crm connector>`` (config refuses ``:`` in
pair names, so no sync pair can share them)."""
_BATCH = 500
_ACTIVITY_CURSOR = "sla_activities"


@dataclass
class SlaReport:
    """What one cycle did: counts per event/step, open clocks, breaches, API calls, CPU time."""

    started_at: datetime
    counts: Counter[str] = field(default_factory=Counter)
    open_clocks: int = 0
    breached: int = 0
    evaluation_cpu_seconds: float = 0.0
    calls: dict[str, dict[str, int]] = field(default_factory=dict)
    webhook_posts: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the daemon's log."""
        counts = " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()) if v)
        calls = " ".join(
            f"{name}:{sum(c.values())}" for name, c in self.calls.items() if sum(c.values())
        )
        return (
            f"sla open={self.open_clocks} breached={self.breached} {counts or 'no events'} "
            f"calls[{calls}] webhooks={self.webhook_posts} errors={len(self.errors)}"
        )


@dataclass(frozen=True, slots=True)
class Due:
    """A due step bound to its clock row."""

    row: ClockRow
    step: DueStep


class SlaEngine:
    """Evaluates SAL clocks for one CRM connector and executes the breach chain."""

    def __init__(
        self,
        settings: SlaSettings,
        *,
        crm: Connector[Any],
        marketing: Connector[Any] | None,
        store: Store,
        now: Callable[[], datetime],
        http: httpx.Client | None = None,
    ) -> None:
        """Wire the engine; nothing touches the network until :meth:`run_cycle`.

        ``now`` is the only clock the engine reads (tests and the demo inject a fake one);
        ``http`` is the client for webhooks (tests pass one mocked with respx).
        """
        self.settings = settings
        self.crm = crm
        self.marketing = marketing
        self.store = store
        self.now = now
        self.webhooks = WebhookSender(settings.webhooks, http)
        self.plans: dict[str, PolicyPlan] = {
            name: plan_policy(name, p) for name, p in settings.policies.items()
        }
        self.cursor_pair = f"{CURSOR_PAIR_PREFIX}{crm.name}"[:100]
        self._owner_rep: dict[str, str] | None = None
        self._rep_owner: dict[str, str] = {}
        self._nurture_owner: str | None = None

    def __repr__(self) -> str:
        return f"<SlaEngine crm={self.crm.name!r} policies={sorted(self.plans)}>"

    # -- owners ----------------------------------------------------------------------------------

    def owner_maps(self) -> tuple[dict[str, str], dict[str, str]]:
        """``owner id -> rep key`` and ``rep key -> owner id`` (one ``owners()`` read per engine)."""
        if self._owner_rep is None:
            by_email: dict[str, str] = {}
            for owner in self.crm.owners():
                if owner.email:
                    by_email.setdefault(owner.email.strip().lower(), owner.id)
            self._rep_owner = {
                key: by_email[rep.email]
                for key, rep in self.settings.reps.items()
                if rep.email in by_email
            }
            self._owner_rep = {oid: key for key, oid in self._rep_owner.items()}
            self._nurture_owner = by_email.get(self.settings.recycle.owner_email.strip().lower())
        return self._owner_rep, self._rep_owner

    @property
    def nurture_owner(self) -> str:
        """The CRM id of the recycle owner / queue (a config error if it does not exist)."""
        self.owner_maps()
        if self._nurture_owner is None:
            email = self.settings.recycle.owner_email
            raise ConfigError(
                [
                    ConfigProblem(
                        "sla.recycle.owner_email",
                        f"no user with e-mail {email!r} in connector {self.crm.name!r}",
                        fix="use the e-mail of the nurture queue's user",
                    )
                ]
            )
        return self._nurture_owner

    def calendar_for(self, rep: str, team: str) -> BusinessCalendar:
        """The rep's effective calendar (the team's if the rep left the config)."""
        found = self.settings.rep_calendars.get(rep)
        if found is not None:
            return found
        team_settings = self.settings.teams.get(team)
        name = team_settings.calendar if team_settings else next(iter(self.settings.calendars))
        return self.settings.calendars[name]

    # -- the cycle -------------------------------------------------------------------------------

    def run_cycle(self) -> SlaReport:
        """Read events, evaluate every open clock, take due steps; never sleeps."""
        now = self.now()
        report = SlaReport(started_at=now)
        before = {c.name: Counter(c.calls) for c in self._connectors()}
        posts_before = self.webhooks.posts
        opened: list[ClockRow] = []
        self._read_changes(now, report, opened)
        rows = self._read_touches(now, report, opened)
        due = self._evaluate(now, report, rows)
        if due:
            from crm_bridge.sla.actions import ActionRunner

            ActionRunner(self, now, report).run(due)
        report.calls = {
            c.name: {
                k: v - before[c.name].get(k, 0)
                for k, v in c.calls.items()
                if v - before[c.name].get(k, 0)
            }
            for c in self._connectors()
        }
        report.webhook_posts = self.webhooks.posts - posts_before
        return report

    def _connectors(self) -> list[Connector[Any]]:
        found = [self.crm]
        if self.marketing is not None and self.marketing is not self.crm:
            found.append(self.marketing)
        return found

    # -- 1. lead changes -------------------------------------------------------------------------

    def _read_changes(self, now: datetime, report: SlaReport, opened: list[ClockRow]) -> None:
        obj = self.settings.crm.object
        with self.store.transaction(readonly=True) as tx:
            cursor = tx.get_cursor(self.cursor_pair, "crm", obj)
        since = parse_instant(cursor) if cursor else None
        if since is None:
            since = now - timedelta(hours=self.settings.initial_lookback_hours)
        newest = since
        batch: list[LeadEvent] = []
        for record in self.crm.changes(obj, since):
            batch.append(lead_event(record, self.settings))
            newest = max(newest, record.modified_at)
            if len(batch) >= _BATCH:
                self._apply_events(batch, now, report, opened, newest)
                batch = []
        self._apply_events(batch, now, report, opened, newest)

    def _apply_events(
        self,
        events: list[LeadEvent],
        now: datetime,
        report: SlaReport,
        opened: list[ClockRow],
        cursor: datetime,
    ) -> None:
        owner_rep, _ = self.owner_maps() if events else ({}, {})
        with self.store.transaction() as tx:
            repo = SlaRepository(tx)
            latest = repo.latest_by_lead(self.crm.name, [e.lead_id for e in events])
            # Marketing facts only for leads that could enter (owned by a rep, no open clock).
            candidates = [
                e.lead_id
                for e in events
                if e.owner_id in owner_rep and not (e.lead_id in latest and latest[e.lead_id].open)
            ]
            facts = marketing_facts(tx, self.marketing, self.settings, candidates)
            for event in events:
                row = self._apply_event(repo, tx, event, latest.get(event.lead_id), facts, report)
                if row is not None:
                    latest[event.lead_id] = row
                    if row.open and row.id not in {o.id for o in opened}:
                        opened.append(row)
            tx.set_cursor(
                self.cursor_pair, "crm", self.settings.crm.object, cursor.isoformat(), now=now
            )

    def _apply_event(
        self,
        repo: SlaRepository,
        tx: StoreTx,
        event: LeadEvent,
        row: ClockRow | None,
        facts: Mapping[str, MarketingFacts],
        report: SlaReport,
    ) -> ClockRow | None:
        crm = self.settings.crm
        owner_rep, _ = self.owner_maps()
        if row is not None and row.open:
            if event.gone:
                return self._close(
                    repo, tx, row, event.at, "closed", "lead deleted or merged", report
                )
            if event.owner_id != row.owner_id:
                row = self._close(
                    repo, tx, row, event.at, "closed", "owner changed in the CRM", report
                )
            else:
                return self._apply_status(repo, tx, row, event, report)
        if event.gone or event.owner_id is None:
            return row
        rep = owner_rep.get(event.owner_id)
        if rep is None:
            return row
        blocked = {
            *crm.closed_statuses,
            *crm.rejected_statuses,
            self.settings.recycle.crm_status,
        }
        if self.settings.disqualify is not None:
            blocked.add(self.settings.disqualify.crm_status)
        if event.status in blocked:
            return row
        if row is not None and row.owner_id == event.owner_id:
            return row  # this assignment was already handled (e.g. a re-read change)
        team = self.settings.team_of_rep[rep]
        fact = facts.get(event.lead_id)
        policy_name = next(
            (
                name
                for name, p in self.settings.policies.items()
                if team in p.teams and mql_matches(p.mql, self.settings, event.fields, fact)
            ),
            None,
        )
        if policy_name is None:
            report.counts["not_mql"] += 1
            return row
        new = repo.open_clock(
            now=event.at,
            crm=self.crm.name,
            lead_id=event.lead_id,
            policy=policy_name,
            team=team,
            rep=rep,
            owner_id=event.owner_id,
            source=(fact.source if fact else None) or event.source,
            marketing_id=fact.record_id if fact else None,
            mql_at=fact.mql_at if fact else None,
            crm_visible_at=event.created_at,
            assigned_at=event.at,
        )
        report.counts["opened"] += 1
        self._audit(tx, new, "sla.assigned", event.at, {"status": event.status})
        return self._apply_status(repo, tx, new, event, report)

    def _apply_status(
        self,
        repo: SlaRepository,
        tx: StoreTx,
        row: ClockRow,
        event: LeadEvent,
        report: SlaReport,
    ) -> ClockRow:
        crm = self.settings.crm
        status = event.status
        cal = self.calendar_for(row.rep, row.team)
        plan = self.plans.get(row.policy)
        accept = plan.clock("accept") if plan else None
        decided = row.accepted_at is not None or row.rejected_at is not None
        if status in crm.accepted_statuses and not decided:
            minutes = cal.business_minutes_between(row.assigned_at, event.at)
            breached = accept is not None and minutes >= accept.target_minutes
            repo.update_clock(
                row.id,
                now=event.at,
                accepted_at=event.at,
                accept_minutes=minutes,
                accept_breached=row.accept_breached or breached,
            )
            report.counts["accepted"] += 1
            row = self._reload(repo, row)
            self._audit(tx, row, "sla.accepted", event.at, self._math(row, "accept", minutes))
            return self._maybe_done(repo, row, event.at)
        if status in crm.rejected_statuses and not decided:
            minutes = cal.business_minutes_between(row.assigned_at, event.at)
            breached = accept is not None and minutes >= accept.target_minutes
            repo.update_clock(
                row.id,
                now=event.at,
                rejected_at=event.at,
                reject_reason=event.reject_reason,
                accept_minutes=minutes,
                accept_breached=row.accept_breached or breached,
            )
            report.counts["rejected"] += 1
            row = self._reload(repo, row)
            data = {**self._math(row, "accept", minutes), "reason": event.reject_reason}
            self._audit(tx, row, "sla.rejected", event.at, data)
            return row  # the reject path runs in the action phase (and is retried until done)
        closing = {*crm.closed_statuses, self.settings.recycle.crm_status}
        if self.settings.disqualify is not None:
            closing.add(self.settings.disqualify.crm_status)
        if status in closing and row.rejected_at is None:
            return self._close(repo, tx, row, event.at, "closed", f"status {status!r}", report)
        return row

    def _maybe_done(self, repo: SlaRepository, row: ClockRow, at: datetime) -> ClockRow:
        """An assignment whose configured clocks have all stopped is done."""
        plan = self.plans.get(row.policy)
        needs_touch = plan is not None and plan.clock("first_touch") is not None
        needs_accept = plan is not None and plan.clock("accept") is not None
        if (not needs_touch or row.first_touch_at is not None) and (
            not needs_accept or row.accepted_at is not None
        ):
            repo.update_clock(row.id, now=at, status="done", closed_at=at)
            return self._reload(repo, row)
        return row

    def _close(
        self,
        repo: SlaRepository,
        tx: StoreTx,
        row: ClockRow,
        at: datetime,
        status: str,
        reason: str,
        report: SlaReport,
    ) -> ClockRow:
        repo.update_clock(row.id, now=at, status=status, closed_at=at, close_reason=reason)
        report.counts[f"closed_{status}"] += 1
        row = self._reload(repo, row)
        self._audit(tx, row, "sla.closed", at, {"reason": reason, "status": status})
        return row

    @staticmethod
    def _reload(repo: SlaRepository, row: ClockRow) -> ClockRow:
        found = repo.clock(row.id)
        assert found is not None
        return found

    # -- 2. first touches ------------------------------------------------------------------------

    def _read_touches(
        self, now: datetime, report: SlaReport, opened: list[ClockRow]
    ) -> list[ClockRow]:
        """Record first touches; returns every open clock, current (loaded once per cycle)."""
        obj = self.settings.crm.object
        with self.store.transaction(readonly=True) as tx:
            every = list(SlaRepository(tx).open_clocks(self.crm.name))
            cursor = tx.get_cursor(self.cursor_pair, "crm", _ACTIVITY_CURSOR)
        if Capability.ACTIVITIES not in self.crm.capabilities:
            return every
        rows = [
            r
            for r in every
            if r.first_touch_at is None
            and r.rejected_at is None
            and (plan := self.plans.get(r.policy)) is not None
            and plan.clock("first_touch") is not None
        ]
        if not rows:
            return every
        overlap = timedelta(seconds=self.settings.activity_overlap_seconds)
        last = parse_instant(cursor) if cursor else None
        since = last - overlap if last is not None else None
        fresh = [r.assigned_at for r in opened]
        if since is None:
            since = min(r.assigned_at for r in rows)
        elif fresh:
            since = min(since, *fresh)
        by_lead = {r.lead_id: r for r in rows}
        earliest: dict[str, Any] = {}
        for activity in self.crm.activities(obj, list(by_lead), since):
            row = by_lead.get(activity.record_id) or by_lead.get(activity.record_id[:15])
            if row is None:
                continue
            policy = self.settings.policies.get(row.policy)
            if policy is None or activity.kind not in policy.first_touch_kinds:
                continue
            if activity.owner_id != row.owner_id or activity.occurred_at < row.assigned_at:
                continue
            best = earliest.get(row.lead_id)
            if best is None or activity.occurred_at < best.occurred_at:
                earliest[row.lead_id] = activity
        changed: dict[int, ClockRow] = {}
        with self.store.transaction() as tx:
            repo = SlaRepository(tx)
            for lead_id, activity in earliest.items():
                row = by_lead[lead_id]
                cal = self.calendar_for(row.rep, row.team)
                minutes = cal.business_minutes_between(row.assigned_at, activity.occurred_at)
                plan = self.plans[row.policy]
                touch = plan.clock("first_touch")
                breached = touch is not None and minutes >= touch.target_minutes
                repo.update_clock(
                    row.id,
                    now=activity.occurred_at,
                    first_touch_at=activity.occurred_at,
                    first_touch_minutes=minutes,
                    first_touch_breached=row.first_touch_breached or breached,
                )
                report.counts["first_touch"] += 1
                fresh_row = self._reload(repo, row)
                data = {**self._math(fresh_row, "first_touch", minutes), "activity": activity.id}
                data["kind"] = activity.kind
                self._audit(tx, fresh_row, "sla.first_touch", activity.occurred_at, data)
                changed[row.id] = self._maybe_done(repo, fresh_row, activity.occurred_at)
            tx.set_cursor(self.cursor_pair, "crm", _ACTIVITY_CURSOR, now.isoformat(), now=now)
        current = [changed.get(r.id, r) for r in every]
        return [r for r in current if r.open]

    # -- 3. evaluation ---------------------------------------------------------------------------

    def _evaluate(self, now: datetime, report: SlaReport, rows: list[ClockRow]) -> list[Due]:
        with self.store.transaction(readonly=True) as tx:
            ledger = SlaRepository(tx).all_actions(self.crm.name)
        started = time.process_time()
        due = self.evaluate_rows(rows, ledger, now, report)
        report.evaluation_cpu_seconds = time.process_time() - started
        return due

    def evaluate_rows(
        self,
        rows: list[ClockRow],
        ledger: Mapping[int, set[tuple[str, str]]],
        now: datetime,
        report: SlaReport,
    ) -> list[Due]:
        """Due steps of ``rows`` at ``now`` (pure: no I/O; the benchmark's hot path)."""
        due: list[Due] = []
        report.open_clocks = len(rows)
        empty: set[tuple[str, str]] = set()
        for row in rows:
            plan = self.plans.get(row.policy)
            if plan is None:
                report.counts["unknown_policy"] += 1
                continue
            taken = ledger.get(row.id, empty)
            if row.rejected_at is not None:
                action = self.reject_action(row)
                if ("reject", action) not in taken:
                    due.append(Due(row, DueStep("reject", action, 0, 0, 0)))
                continue
            stopped = {
                "accept": row.accepted_at is not None,
                "first_touch": row.first_touch_at is not None,
            }
            elapsed, steps = due_steps(
                plan,
                self.calendar_for(row.rep, row.team),
                assigned_at=row.assigned_at,
                stopped=stopped,
                reassignments=row.reassignments,
                taken=taken,
                now=now,
            )
            if any(not stopped[c.name] and elapsed >= c.target_minutes for c in plan.clocks):
                report.breached += 1
            due.extend(Due(row, s) for s in steps)
        return due

    def reject_action(self, row: ClockRow) -> str:
        """Recycle or disqualify, from the policy's per-reason table."""
        policy = self.settings.policies.get(row.policy)
        if policy is None:
            return "recycle"
        reason = row.reject_reason or ""
        for code, action in policy.reject_reasons.items():
            if code.lower() == reason.lower():
                return action
        return policy.default_reject_action

    # -- helpers ---------------------------------------------------------------------------------

    def _math(self, row: ClockRow, clock: str, minutes: int) -> dict[str, Any]:
        plan = self.plans.get(row.policy)
        target = plan.clock(clock) if plan else None
        team = self.settings.teams.get(row.team)
        return {
            "policy": row.policy,
            "clock": clock,
            "rep": row.rep,
            "owner_id": row.owner_id,
            "assigned_at": row.assigned_at.isoformat(),
            "elapsed_business_minutes": minutes,
            "target_business_minutes": target.target_minutes if target else None,
            "calendar": team.calendar if team else None,
            "timezone": self.calendar_for(row.rep, row.team).timezone,
        }

    def _audit(
        self, tx: StoreTx, row: ClockRow, kind: str, at: datetime, data: Mapping[str, Any]
    ) -> None:
        tx.audit(
            kind,
            row.lead_id,
            {"seq": row.seq, "clock_id": row.id, **data},
            now=at,
            pair=self.cursor_pair,
        )

    def close(self) -> None:
        """Close the webhook client (connectors and store belong to the caller)."""
        self.webhooks.close()


def build_engine(
    settings: SlaSettings,
    connector: Callable[[str], Connector[Any]],
    store: Store,
    now: Callable[[], datetime],
    *,
    http: httpx.Client | None = None,
) -> SlaEngine:
    """An engine wired from config: ``connector(name)`` is e.g. ``Session.connector``."""
    marketing = connector(settings.marketing.connector) if settings.marketing else None
    return SlaEngine(
        settings,
        crm=connector(settings.crm.connector),
        marketing=marketing,
        store=store,
        now=now,
        http=http,
    )
