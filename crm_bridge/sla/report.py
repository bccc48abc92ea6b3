"""What the SLA CLI shows: open clocks, one lead's history, attainment and the delay split.

Read-only and network-free: everything comes from the store (clock rows, the action ledger, the
audit log) and the calendars in the config, so ``crm-bridge sla status`` works while the CRM is
down and shows exactly what the engine decided.

Definitions (docs/sla.md repeats them for report readers):

* **Attainment** of a clock = met / (met + missed).  *Met*: stopped before the target.  *Missed*:
  stopped at/after the target, or breached while the assignment ended (reassigned, recycled) or
  is still open.  Clocks still running inside their target are not counted yet.
* **Time to accept / first touch**: business minutes from assignment, median per group.
* **SAL rate by source**: leads accepted under any assignment / leads that entered an SLA.
* **Delay split**: *systems* = MQL in the marketing platform -> lead visible in the CRM
  (wall-clock minutes: systems do not keep office hours); *human* = assignment -> accept and
  assignment -> first touch (business minutes).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from statistics import median
from typing import Any

from crm_bridge.sla.clock import ClockView, PolicyPlan, plan_policy, view_clock
from crm_bridge.sla.policy import SlaSettings
from crm_bridge.sla.repository import ClockRow, SlaRepository
from crm_bridge.store import Store

__all__ = [
    "GroupStats",
    "SlaSummary",
    "StatusLine",
    "build_summary",
    "explain_lines",
    "open_status",
    "report_lines",
]


def _plans(settings: SlaSettings) -> dict[str, PolicyPlan]:
    return {name: plan_policy(name, p) for name, p in settings.policies.items()}


def _calendar(settings: SlaSettings, row: ClockRow) -> Any:
    found = settings.rep_calendars.get(row.rep)
    if found is not None:
        return found
    team = settings.teams.get(row.team)
    return settings.calendars[team.calendar if team else next(iter(settings.calendars))]


def views(settings: SlaSettings, row: ClockRow, now: datetime) -> list[ClockView]:
    """Every configured clock of one assignment, as of ``now``."""
    plan = _plans(settings).get(row.policy)
    if plan is None:
        return []
    cal = _calendar(settings, row)
    ended = row.closed_at if not row.open else None
    found: list[ClockView] = []
    for clock in plan.clocks:
        stopped = (
            (row.accepted_at or row.rejected_at) if clock.name == "accept" else row.first_touch_at
        )
        found.append(
            view_clock(
                clock,
                cal,
                assigned_at=row.assigned_at,
                stopped_at=stopped,
                ended_at=ended,
                now=now,
            )
        )
    return found


# -- status ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusLine:
    """One open clock for ``sla status``."""

    lead_id: str
    policy: str
    rep: str
    clock: str
    state: str
    left_minutes: int
    deadline: datetime
    actions: tuple[str, ...]


def open_status(settings: SlaSettings, store: Store, now: datetime) -> list[StatusLine]:
    """Running clocks of open assignments, soonest deadline first."""
    crm = settings.crm.connector
    with store.transaction(readonly=True) as tx:
        repo = SlaRepository(tx)
        rows = list(repo.open_clocks(crm))
        ledger = repo.all_actions(crm)
    lines: list[StatusLine] = []
    for row in rows:
        taken = ledger.get(row.id, set())
        for view in views(settings, row, now):
            if view.state not in ("running", "breached"):
                continue
            acts = tuple(sorted(a for c, a in taken if c == view.name))
            lines.append(
                StatusLine(
                    row.lead_id,
                    row.policy,
                    row.rep,
                    view.name,
                    view.state,
                    view.left_minutes,
                    view.deadline,
                    acts,
                )
            )
    lines.sort(key=lambda s: (s.deadline, s.lead_id, s.clock))
    return lines


# -- explain ---------------------------------------------------------------------------------


def explain_lines(settings: SlaSettings, store: Store, lead_id: str, now: datetime) -> list[str]:
    """A lead's SLA history: each assignment, its clocks in business minutes, every action."""
    crm = settings.crm.connector
    with store.transaction(readonly=True) as tx:
        repo = SlaRepository(tx)
        rows = repo.history(crm, lead_id)
        actions = repo.action_log([r.id for r in rows])
    if not rows:
        return [f"lead {lead_id}: no SLA clock (never assigned to a rep under a policy)"]
    lines = [f"lead {lead_id}: {len(rows)} assignment(s)"]
    by_clock: dict[int, list[tuple[str, str, datetime, Any]]] = defaultdict(list)
    for cid, clock, action, at, data in actions:
        by_clock[cid].append((clock, action, at, data))
    for row in rows:
        cal = _calendar(settings, row)
        team = settings.teams.get(row.team)
        lines.append(
            f"#{row.seq} policy={row.policy} rep={row.rep} (owner {row.owner_id}) "
            f"team={row.team} calendar={team.calendar if team else '?'} tz={cal.timezone} "
            f"assigned {row.assigned_at.isoformat()} status={row.status}"
            + (f" ({row.close_reason})" if row.close_reason else "")
        )
        if row.mql_at is not None and row.crm_visible_at is not None:
            lag = (row.crm_visible_at - row.mql_at).total_seconds() / 60
            lines.append(
                f"   systems: MQL {row.mql_at.isoformat()} -> in CRM "
                f"{row.crm_visible_at.isoformat()} ({lag:.0f} min)"
            )
        for view in views(settings, row, now):
            stop = f", stopped {view.stopped_at.isoformat()}" if view.stopped_at else ""
            lines.append(
                f"   {view.name}: {view.state}, {view.elapsed_minutes} of "
                f"{view.target_minutes} business min, deadline {view.deadline.isoformat()}{stop}"
            )
        if row.rejected_at is not None:
            lines.append(f"   rejected {row.rejected_at.isoformat()} reason={row.reject_reason}")
        for clock, action, at, data in by_clock.get(row.id, []):
            detail = _action_detail(action, data)
            lines.append(f"   {at.isoformat()} {action} ({clock}){detail}")
    return lines


def _action_detail(action: str, data: Mapping[str, Any]) -> str:
    parts: list[str] = []
    if "elapsed_business_minutes" in data:
        parts.append(
            f"at {data['elapsed_business_minutes']}/{data.get('target_business_minutes')} min"
        )
    for key in ("skipped", "new_rep", "reason", "task_id", "nurture_list", "marketing_error"):
        if data.get(key):
            parts.append(f"{key}={data[key]}")
    if data.get("webhooks"):
        parts.append("webhooks=" + ",".join(data["webhooks"]))
    if data.get("candidates_skipped"):
        parts.append(
            "passed over: "
            + "; ".join(f"{k}: {v}" for k, v in dict(data["candidates_skipped"]).items())
        )
    return (": " + ", ".join(parts)) if parts else ""


# -- report ----------------------------------------------------------------------------------


@dataclass
class GroupStats:
    """Attainment and medians for one rep, team or source."""

    accept_met: int = 0
    accept_missed: int = 0
    touch_met: int = 0
    touch_missed: int = 0
    accept_minutes: list[int] = field(default_factory=list)
    touch_minutes: list[int] = field(default_factory=list)

    @property
    def attainment(self) -> float | None:
        """Met / decided over both clocks, in percent (None when nothing is decided yet)."""
        decided = self.accept_met + self.accept_missed + self.touch_met + self.touch_missed
        if not decided:
            return None
        return 100.0 * (self.accept_met + self.touch_met) / decided

    @property
    def median_accept(self) -> float | None:
        """Median business minutes to accept/reject."""
        return median(self.accept_minutes) if self.accept_minutes else None

    @property
    def median_touch(self) -> float | None:
        """Median business minutes to first touch."""
        return median(self.touch_minutes) if self.touch_minutes else None


@dataclass
class SlaSummary:
    """The whole report."""

    by_rep: dict[str, GroupStats] = field(default_factory=dict)
    by_team: dict[str, GroupStats] = field(default_factory=dict)
    by_source: dict[str, GroupStats] = field(default_factory=dict)
    sal_rate: dict[str, tuple[int, int]] = field(default_factory=dict)
    """source -> (accepted leads, leads that entered an SLA)."""
    systems_minutes: list[float] = field(default_factory=list)
    human_accept_minutes: list[int] = field(default_factory=list)
    human_touch_minutes: list[int] = field(default_factory=list)


def build_summary(rows: Iterable[ClockRow], settings: SlaSettings, now: datetime) -> SlaSummary:
    """Aggregate clock rows (pure: the tests feed a hand-built fixture)."""
    plans = _plans(settings)
    out = SlaSummary()
    leads: dict[str, list[ClockRow]] = defaultdict(list)
    for row in rows:
        leads[row.lead_id].append(row)
        plan = plans.get(row.policy)
        if plan is None:
            continue
        source = row.source or "(unknown)"
        groups = [
            out.by_rep.setdefault(row.rep, GroupStats()),
            out.by_team.setdefault(row.team, GroupStats()),
            out.by_source.setdefault(source, GroupStats()),
        ]
        accept = plan.clock("accept")
        touch = plan.clock("first_touch")
        cal = _calendar(settings, row)
        if accept is not None:
            outcome = _outcome(
                row.accept_minutes,
                row.accept_breached,
                accept.target_minutes,
                row,
                cal,
                now,
                stopped=row.accepted_at is not None or row.rejected_at is not None,
            )
            for g in groups:
                if outcome == "met":
                    g.accept_met += 1
                elif outcome == "missed":
                    g.accept_missed += 1
                if row.accept_minutes is not None:
                    g.accept_minutes.append(row.accept_minutes)
        if touch is not None and row.rejected_at is None:
            outcome = _outcome(
                row.first_touch_minutes,
                row.first_touch_breached,
                touch.target_minutes,
                row,
                cal,
                now,
                stopped=row.first_touch_at is not None,
            )
            for g in groups:
                if outcome == "met":
                    g.touch_met += 1
                elif outcome == "missed":
                    g.touch_missed += 1
                if row.first_touch_minutes is not None:
                    g.touch_minutes.append(row.first_touch_minutes)
        if row.accepted_at is not None and row.accept_minutes is not None:
            out.human_accept_minutes.append(row.accept_minutes)
        if row.first_touch_minutes is not None:
            out.human_touch_minutes.append(row.first_touch_minutes)
    for assignments in leads.values():
        first = min(assignments, key=lambda r: r.seq)
        source = first.source or "(unknown)"
        accepted, total = out.sal_rate.get(source, (0, 0))
        is_sal = any(r.accepted_at is not None for r in assignments)
        out.sal_rate[source] = (accepted + int(is_sal), total + 1)
        if first.mql_at is not None and first.crm_visible_at is not None:
            out.systems_minutes.append((first.crm_visible_at - first.mql_at).total_seconds() / 60)
    return out


def _outcome(
    minutes: int | None,
    breached: bool,
    target: int,
    row: ClockRow,
    cal: Any,
    now: datetime,
    *,
    stopped: bool,
) -> str | None:
    if stopped and minutes is not None:
        return "met" if minutes < target else "missed"
    if breached:
        return "missed"
    if row.open and cal.business_minutes_between(row.assigned_at, now) >= target:
        return "missed"
    if not row.open:
        return "missed" if row.status in ("reassigned", "recycled") else None
    return None


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.0f}{unit}"


def report_lines(summary: SlaSummary) -> list[str]:
    """The report as aligned text lines."""
    lines: list[str] = []
    header = f"{'':<24} {'attain':>7} {'n':>4} {'med accept':>11} {'med touch':>10}"
    for title, groups in (
        ("per rep", summary.by_rep),
        ("per team", summary.by_team),
        ("per lead source", summary.by_source),
    ):
        lines.append(f"{title}:")
        lines.append(header)
        for name, g in sorted(groups.items()):
            n = g.accept_met + g.accept_missed + g.touch_met + g.touch_missed
            lines.append(
                f"{name[:24]:<24} {_fmt(g.attainment, '%'):>7} {n:>4} "
                f"{_fmt(g.median_accept, ' min'):>11} {_fmt(g.median_touch, ' min'):>10}"
            )
    lines.append("SAL rate by source:")
    for source, (accepted, total) in sorted(summary.sal_rate.items()):
        pct = 100.0 * accepted / total if total else 0.0
        lines.append(f"  {source}: {accepted}/{total} = {pct:.0f}%")
    sys_med = median(summary.systems_minutes) if summary.systems_minutes else None
    acc_med = median(summary.human_accept_minutes) if summary.human_accept_minutes else None
    touch_med = median(summary.human_touch_minutes) if summary.human_touch_minutes else None
    lines.append(
        "delay split (medians): systems MQL->CRM "
        f"{_fmt(sys_med, ' min')} (wall clock); human assignment->accept "
        f"{_fmt(acc_med, ' business min')}, assignment->first touch "
        f"{_fmt(touch_med, ' business min')}"
    )
    return lines
