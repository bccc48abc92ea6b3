"""The breach chain and the reject path: remind, escalate, reassign, recycle, disqualify.

Why three phases (effects, webhooks, commit) instead of "do a step, record it":

* **Batched.**  CRM and marketing writes of the same kind go out together (``Connector.write``
  takes up to ``max_batch`` records per call), reminder tasks go out in one
  ``Connector.create_tasks`` call and each webhook gets one POST per cycle, so a cycle's API calls
  grow with the *actions taken*, not with the open clocks.
* **Recorded only when done.**  A step enters the ledger (``sla_actions``) and the audit log only
  if every effect it needs succeeded; a failed write or an undelivered webhook leaves it due, and
  the next cycle tries again.  Recording a step and its clock changes happens in one transaction.

Recycle is one coordinated operation: CRM status and owner (the step is recorded once that part
succeeds, since it is what takes the lead off the rep's desk), then the marketing lifecycle,
lead status and reason, then the nurture list.  Marketing failures are kept in the step's audit
data (``marketing_error``) and reported, not retried: re-running the CRM part would be a no-op
but the audit trail would lie about when the lead was recycled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from crm_bridge.connector import Capability, Connector, NewTask, Upsert, WriteResult
from crm_bridge.errors import CrmBridgeError
from crm_bridge.sla.repository import ClockRow, SlaRepository
from crm_bridge.sla.webhooks import WebhookEvent

if TYPE_CHECKING:
    from crm_bridge.sla.engine import Due, SlaEngine, SlaReport

__all__ = ["ActionRunner", "Pending"]


@dataclass
class Pending:
    """One step being executed: its clock, what it did (``data``) and whether it failed."""

    row: ClockRow
    clock: str
    action: str
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    new_owner: str | None = None
    new_rep: str | None = None

    def fail(self, message: str) -> None:
        """Keep the first failure (the step stays due)."""
        if self.error is None:
            self.error = message


class ActionRunner:
    """Executes one cycle's due steps for an :class:`~crm_bridge.sla.engine.SlaEngine`."""

    def __init__(self, engine: SlaEngine, now: datetime, report: SlaReport) -> None:
        self.engine = engine
        self.settings = engine.settings
        self.now = now
        self.report = report
        self.hooks: dict[str, list[Pending]] = {}

    # -- entry point -----------------------------------------------------------------------------

    def run(self, due: Sequence[Due]) -> None:
        """Effects (batched per kind), then webhooks, then one commit of what succeeded."""
        pendings: list[Pending] = []
        by_action: dict[str, list[Pending]] = {}
        for item in due:
            step = item.step
            p = Pending(item.row, step.clock, step.action, data=self._math(item))
            pendings.append(p)
            by_action.setdefault(step.action, []).append(p)
        self._remind(by_action.get("remind", []))
        self._escalate(by_action.get("escalate", []))
        self._reassign(by_action.get("reassign", []))
        self._recycle(by_action.get("recycle", []))
        self._disqualify(by_action.get("disqualify", []))
        self._flush_webhooks()
        self._commit(pendings)

    # -- remind / escalate -----------------------------------------------------------------------

    def _remind(self, items: list[Pending]) -> None:
        crm = self.engine.crm
        can_task = Capability.TASKS in crm.capabilities
        wanting = [
            p for p in items if can_task and self.settings.policies[p.row.policy].remind.task
        ]
        # One create_tasks call for the cycle's reminders: the connector batches them (see
        # Connector.create_tasks), so the API cost grows with batches, not with reminders.
        tasks: list[NewTask] = [
            {
                "record_id": p.row.lead_id,
                "owner_id": p.row.owner_id,
                "subject": f"SLA: {_label(p.clock)} lead before {p.data['deadline']}",
                "body": _describe(p),
                "due": datetime.fromisoformat(p.data["deadline"]),
            }
            for p in wanting
        ]
        if tasks:
            failure = "task: refused by the CRM"
            try:
                ids = crm.create_tasks(self.settings.crm.object, tasks)
            except CrmBridgeError as exc:
                ids = [None] * len(tasks)
                failure = f"task: {exc}"
                self.report.errors.append(f"tasks: {exc}")
            for p, task_id in zip(wanting, ids, strict=True):
                if task_id is None:
                    p.fail(failure)
                else:
                    p.data["task_id"] = task_id
        for p in items:
            policy = self.settings.policies[p.row.policy]
            if policy.remind.webhook:
                rep = self.settings.reps.get(p.row.rep)
                self._queue(
                    policy.remind.webhook,
                    p,
                    WebhookEvent(
                        kind="sla.reminder",
                        lead_id=p.row.lead_id,
                        text=f"Reminder: {_describe(p)}",
                        data=_event_data(p),
                        mention=rep.slack if rep else None,
                    ),
                )

    def _escalate(self, items: list[Pending]) -> None:
        for p in items:
            policy = self.settings.policies[p.row.policy]
            team = self.settings.teams.get(p.row.team)
            p.data["manager_email"] = team.manager_email if team else None
            if not policy.escalate_webhooks:
                p.data["note"] = "no escalation webhook configured"
            for hook in policy.escalate_webhooks:
                self._queue(
                    hook,
                    p,
                    WebhookEvent(
                        kind="sla.escalation",
                        lead_id=p.row.lead_id,
                        text=f"SLA breach: {_describe(p)}",
                        data={**_event_data(p), "manager_email": p.data["manager_email"]},
                        mention=team.manager_slack if team else None,
                    ),
                )

    def _queue(self, hook: str, p: Pending, event: WebhookEvent) -> None:
        self.engine.webhooks.queue(hook, event)
        self.hooks.setdefault(hook, []).append(p)
        p.data.setdefault("webhooks", []).append(hook)

    def _flush_webhooks(self) -> None:
        for hook, waiting in self.hooks.items():
            delivered, error = self.engine.webhooks.flush(hook)
            for p in waiting[len(delivered) :]:
                p.fail(error or f"webhook {hook!r} not delivered")
            if error:
                self.report.errors.append(error)

    # -- reassign --------------------------------------------------------------------------------

    def _reassign(self, items: list[Pending]) -> None:
        if not items:
            return
        _, rep_owner = self.engine.owner_maps()
        crm_name = self.engine.crm.name
        writes: list[Pending] = []
        with self.engine.store.transaction(readonly=True) as tx:
            repo = SlaRepository(tx)
            counts = repo.open_counts_by_owner(crm_name)
            rotation: dict[str, str | None] = {}
            for p in items:
                plan = self.engine.plans[p.row.policy]
                if p.row.reassignments >= plan.max_reassignments:
                    p.data["skipped"] = f"max_reassignments ({plan.max_reassignments}) reached"
                    continue
                team = p.row.team
                if team not in rotation:
                    rotation[team] = repo.last_rep(crm_name, team)
                exclude = repo.prior_owners(crm_name, p.row.lead_id)
                rep, skipped = self._next_rep(team, rotation[team], exclude, counts)
                p.data["candidates_skipped"] = skipped
                if rep is None:
                    p.data["skipped"] = "no eligible rep (caps, availability, time off)"
                    continue
                rotation[team] = rep
                p.new_rep, p.new_owner = rep, rep_owner[rep]
                counts[p.new_owner] = counts.get(p.new_owner, 0) + 1
                counts[p.row.owner_id] = max(0, counts.get(p.row.owner_id, 0) - 1)
                p.data.update(new_rep=rep, new_owner_id=p.new_owner)
                writes.append(p)
        crm = self.settings.crm
        extra = {crm.status_field: crm.reassign_status} if crm.reassign_status else {}
        self._write(
            self.engine.crm,
            crm.object,
            writes,
            lambda p: {crm.owner_field: p.new_owner, **extra},
        )

    def _next_rep(
        self, team: str, last: str | None, exclude: set[str], counts: dict[str, int]
    ) -> tuple[str | None, dict[str, str]]:
        """Round robin after ``last``: skip prior owners, unavailable, on time off, at cap."""
        _, rep_owner = self.engine.owner_maps()
        members = self.settings.teams[team].members
        team_cal = self.settings.calendars[self.settings.teams[team].calendar]
        team_next = team_cal.next_working_instant(self.now)
        start = members.index(last) + 1 if last in members else 0
        skipped: dict[str, str] = {}
        for k in range(len(members)):
            rep = members[(start + k) % len(members)]
            owner = rep_owner.get(rep)
            cap = self.settings.cap_of(rep)
            if owner is None:
                skipped[rep] = "no CRM user with this e-mail"
            elif owner in exclude:
                skipped[rep] = "previous owner of this lead"
            elif not self.settings.reps[rep].available:
                skipped[rep] = "marked unavailable"
            elif self.settings.rep_calendars[rep].next_working_instant(self.now) > team_next:
                skipped[rep] = "off (time off or not working while the team is)"
            elif cap is not None and counts.get(owner, 0) >= cap:
                skipped[rep] = f"at cap ({counts.get(owner, 0)}/{cap} open)"
            else:
                return rep, skipped
        return None, skipped

    # -- recycle / disqualify --------------------------------------------------------------------

    def _recycle(self, items: list[Pending]) -> None:
        if not items:
            return
        recycle = self.settings.recycle
        crm = self.settings.crm
        try:
            nurture = self.engine.nurture_owner
        except CrmBridgeError as exc:
            for p in items:
                p.fail(str(exc))
            self.report.errors.append(str(exc))
            return

        def crm_fields(p: Pending) -> dict[str, Any]:
            fields: dict[str, Any] = {
                crm.status_field: recycle.crm_status,
                crm.owner_field: nurture,
            }
            if recycle.crm_reason_field:
                fields[recycle.crm_reason_field] = recycle.reason
            return fields

        for p in items:
            reason = recycle.reason if p.clock != "reject" else f"rejected: {p.row.reject_reason}"
            p.data.update(reason=reason, new_owner_id=nurture, status=recycle.crm_status)
        done = self._write(self.engine.crm, crm.object, items, crm_fields)
        self._marketing_recycle(done)

    def _marketing_recycle(self, items: list[Pending]) -> None:
        side = self.settings.marketing
        marketing = self.engine.marketing
        recycle = self.settings.recycle
        linked = [p for p in items if p.row.marketing_id]
        if side is None or marketing is None or not linked:
            return
        final: dict[str, Any] = {}
        if side.lifecycle_field and recycle.marketing_lifecycle:
            final[side.lifecycle_field] = recycle.marketing_lifecycle
        if recycle.marketing_status_field and recycle.marketing_lead_status:
            final[recycle.marketing_status_field] = recycle.marketing_lead_status
        if recycle.marketing_reason_field:
            final[recycle.marketing_reason_field] = recycle.reason
        if final:
            if recycle.clear_lifecycle_first and side.lifecycle_field in final:
                cleared = {side.lifecycle_field: ""}
                self._write(
                    marketing, side.object, linked, lambda p: cleared, soft=True, use_mid=True
                )
            self._write(marketing, side.object, linked, lambda p: final, soft=True, use_mid=True)
            for p in linked:
                if "marketing_error" not in p.data:
                    p.data["marketing"] = dict(final)
        if recycle.nurture_list:
            if Capability.LISTS not in marketing.capabilities:
                for p in linked:
                    p.data["nurture_list"] = "skipped: the marketing connector has no lists"
                return
            try:
                list_id = marketing.ensure_list(recycle.nurture_list, side.object)
                marketing.add_to_list(list_id, [str(p.row.marketing_id) for p in linked])
                for p in linked:
                    p.data["nurture_list"] = recycle.nurture_list
            except CrmBridgeError as exc:
                for p in linked:
                    p.data["marketing_error"] = f"nurture list: {exc}"
                self.report.errors.append(f"nurture list: {exc}")

    def _disqualify(self, items: list[Pending]) -> None:
        disqualify = self.settings.disqualify
        if not items:
            return
        if disqualify is None:  # validation prevents this; keep the step due and say why
            for p in items:
                p.fail("no [sla.disqualify] section")
            return
        status_field = self.settings.crm.status_field
        for p in items:
            p.data.update(status=disqualify.crm_status, reason=p.row.reject_reason)
        done = self._write(
            self.engine.crm,
            self.settings.crm.object,
            items,
            lambda p: {status_field: disqualify.crm_status},
        )
        side, marketing = self.settings.marketing, self.engine.marketing
        linked = [p for p in done if p.row.marketing_id]
        lifecycle = side.lifecycle_field if side else None
        if side and marketing and lifecycle and disqualify.marketing_lifecycle and linked:
            cleared = {lifecycle: ""}
            values = {lifecycle: disqualify.marketing_lifecycle}
            for fields in (cleared, values):
                self._write(
                    marketing, side.object, linked, lambda p, f=fields: f, soft=True, use_mid=True
                )

    # -- batched writes --------------------------------------------------------------------------

    def _write(
        self,
        connector: Connector[Any],
        obj: str,
        items: list[Pending],
        fields: Any,
        *,
        soft: bool = False,
        use_mid: bool = False,
    ) -> list[Pending]:
        """Write ``fields(p)`` for each item in ``max_batch`` chunks; returns those that worked.

        ``soft``: a failure is noted (``marketing_error``) but does not fail the step.
        """
        if not items:
            return []
        size = max(1, connector.object_spec(obj).max_batch)
        ok: list[Pending] = []
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            ops = [
                Upsert(
                    key=str(i),
                    id=str(p.row.marketing_id if use_mid else p.row.lead_id),
                    fields=fields(p),
                )
                for i, p in enumerate(chunk)
            ]
            try:
                results: list[WriteResult] = connector.write(obj, ops)
            except CrmBridgeError as exc:
                results = [WriteResult.failure(op.key, str(exc)) for op in ops]
                self.report.errors.append(f"{connector.name}: {exc}")
            for p, result in zip(chunk, results, strict=True):
                if result.ok:
                    ok.append(p)
                elif soft:
                    p.data["marketing_error"] = f"{connector.name}: {result.error}"
                else:
                    p.fail(f"{connector.name}: {result.error_code or ''} {result.error}".strip())
        return ok

    # -- commit ----------------------------------------------------------------------------------

    def _commit(self, pendings: list[Pending]) -> None:
        engine = self.engine
        now = self.now
        with engine.store.transaction() as tx:
            repo = SlaRepository(tx)
            for p in pendings:
                if p.error is not None:
                    self.report.counts[f"{p.action}_failed"] += 1
                    self.report.errors.append(f"lead {p.row.lead_id} {p.action}: {p.error}")
                    continue
                if not repo.record_action(p.row.id, p.clock, p.action, now=now, data=p.data):
                    continue  # another run recorded it first
                kind = f"sla.{p.action}" + ("_skipped" if "skipped" in p.data else "")
                tx.audit(
                    kind,
                    p.row.lead_id,
                    {"seq": p.row.seq, **p.data},
                    now=now,
                    pair=engine.cursor_pair,
                )
                self.report.counts[kind.removeprefix("sla.")] += 1
                if "skipped" in p.data:
                    continue
                breach = {}
                if p.clock == "accept":
                    breach["accept_breached"] = True
                elif p.clock == "first_touch":
                    breach["first_touch_breached"] = True
                if p.action in ("escalate",) and breach:
                    repo.update_clock(p.row.id, now=now, **breach)
                if p.action == "reassign" and p.new_owner and p.new_rep:
                    repo.update_clock(
                        p.row.id,
                        now=now,
                        status="reassigned",
                        closed_at=now,
                        close_reason="SLA breach: reassigned",
                        **breach,
                    )
                    new = repo.open_clock(
                        now=now,
                        crm=p.row.crm,
                        lead_id=p.row.lead_id,
                        policy=p.row.policy,
                        team=p.row.team,
                        rep=p.new_rep,
                        owner_id=p.new_owner,
                        source=p.row.source,
                        marketing_id=p.row.marketing_id,
                        mql_at=p.row.mql_at,
                        crm_visible_at=p.row.crm_visible_at,
                        assigned_at=now,
                        reassignments=p.row.reassignments + 1,
                    )
                    repo.set_last_rep(p.row.crm, p.row.team, p.new_rep, now=now)
                    tx.audit(
                        "sla.assigned",
                        p.row.lead_id,
                        {"seq": new.seq, "clock_id": new.id, "by": "sla reassignment"},
                        now=now,
                        pair=engine.cursor_pair,
                    )
                elif p.action in ("recycle", "disqualify"):
                    status = "recycled" if p.action == "recycle" else "disqualified"
                    reason = (
                        self.settings.recycle.reason
                        if p.clock != "reject"
                        else f"rejected: {p.row.reject_reason or 'no reason'}"
                    )
                    repo.update_clock(
                        p.row.id,
                        now=now,
                        status=status,
                        closed_at=now,
                        close_reason=reason,
                        **breach,
                    )

    # -- text ------------------------------------------------------------------------------------

    def _math(self, item: Due) -> dict[str, Any]:
        row, step = item.row, item.step
        cal = self.engine.calendar_for(row.rep, row.team)
        team = self.settings.teams.get(row.team)
        data: dict[str, Any] = {
            "policy": row.policy,
            "clock": step.clock,
            "rep": row.rep,
            "owner_id": row.owner_id,
            "assigned_at": row.assigned_at.isoformat(),
            "calendar": team.calendar if team else None,
            "timezone": cal.timezone,
        }
        if step.clock != "reject":
            deadline = cal.add_business_time(
                row.assigned_at, timedelta(minutes=step.target_minutes)
            )
            data.update(
                elapsed_business_minutes=step.elapsed_minutes,
                target_business_minutes=step.target_minutes,
                step_at_business_minutes=step.at_minutes,
                deadline=deadline.isoformat(),
            )
        else:
            data["reason"] = row.reject_reason
        return data


def _label(clock: str) -> str:
    return {"accept": "accept", "first_touch": "make first touch on"}.get(clock, clock)


def _describe(p: Pending) -> str:
    d = p.data
    elapsed, target = d.get("elapsed_business_minutes"), d.get("target_business_minutes")
    return (
        f"lead {p.row.lead_id} ({p.row.policy}, rep {p.row.rep}): {p.clock} clock at "
        f"{_hm(elapsed)} of {_hm(target)} business time, deadline {d.get('deadline')}"
    )


def _hm(minutes: Any) -> str:
    if not isinstance(minutes, int):
        return "?"
    return f"{minutes // 60}h{minutes % 60:02d}"


def _event_data(p: Pending) -> dict[str, Any]:
    keys = (
        "policy",
        "clock",
        "rep",
        "owner_id",
        "assigned_at",
        "deadline",
        "elapsed_business_minutes",
        "target_business_minutes",
        "timezone",
    )
    return {k: p.data.get(k) for k in keys}
