"""Clock arithmetic: from one assignment, a calendar and "now" to status, time left and due steps.

Pure functions, no I/O and no clock reads: the engine passes everything in, so the same inputs
always give the same answer (replayable in tests, explainable to a rep who disputes a breach).

Semantics (docs/sla.md has the long form):

* Both clocks of an assignment start at ``assigned_at`` and tick in the **owner's** business time
  (the team calendar with the rep's overrides).
* ``accept`` stops at the first accepted/rejected status; ``first_touch`` at the first logged
  call/email/meeting **by the owner** at or after the assignment.
* A clock is *breached* once its elapsed business minutes reach the target; a reminder is due at
  ``remind_at`` x target; breach step *k* is due at target + ``after_hours_k``.
* Whole minutes, floored (:meth:`BusinessCalendar.business_minutes_between`), so "4 h target"
  means breached from the 240th business minute on -- exact, no float drift.

The hot path (:func:`due_steps`) makes **one** calendar call per assignment: both clocks share
the start and the calendar, and thresholds are precomputed integers in :class:`PolicyPlan`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from crm_bridge.sla.calendar import BusinessCalendar
from crm_bridge.sla.policy import ClockName, PolicySettings

__all__ = [
    "ClockPlan",
    "ClockState",
    "ClockView",
    "DueStep",
    "PolicyPlan",
    "due_steps",
    "plan_policy",
    "view_clock",
]

ClockState = Literal["running", "breached", "met", "missed", "stopped"]
"""running/breached: still ticking (before/after the target); met/missed: stopped in time/late;
stopped: the assignment ended (reassigned, recycled, closed) before the clock stopped."""

StepAction = Literal["remind", "escalate", "reassign", "recycle"]
TERMINAL: frozenset[str] = frozenset({"reassign", "recycle"})


@dataclass(frozen=True, slots=True)
class StepPlan:
    """One chain step of one clock, as a business-minute threshold."""

    action: StepAction
    at_minutes: int


@dataclass(frozen=True, slots=True)
class ClockPlan:
    """One clock of a policy: target and every step, in business minutes."""

    name: ClockName
    target_minutes: int
    steps: tuple[StepPlan, ...]


@dataclass(frozen=True, slots=True)
class PolicyPlan:
    """A policy compiled to integer thresholds (computed once per engine)."""

    name: str
    clocks: tuple[ClockPlan, ...]
    max_reassignments: int

    def clock(self, name: str) -> ClockPlan | None:
        """The plan of clock ``name`` if the policy has it."""
        for plan in self.clocks:
            if plan.name == name:
                return plan
        return None


def plan_policy(name: str, policy: PolicySettings) -> PolicyPlan:
    """Compile a policy's clocks and breach chain to minute thresholds."""
    plans: list[ClockPlan] = []
    for clock_name, clock in policy.clocks().items():
        target = round(clock.target_hours * 60)
        steps: list[StepPlan] = []
        if clock.remind_at is not None:
            steps.append(StepPlan("remind", int(clock.remind_at * target)))
        steps.extend(
            StepPlan(step.action, target + round(step.after_hours * 60)) for step in policy.breach
        )
        plans.append(ClockPlan(clock_name, target, tuple(steps)))
    return PolicyPlan(name, tuple(plans), policy.max_reassignments)


@dataclass(frozen=True, slots=True)
class DueStep:
    """A step whose threshold has passed and that the ledger does not show as taken.

    ``clock`` is ``accept`` / ``first_touch``, or ``reject`` for the reject path (whose
    ``action`` is then ``recycle`` or ``disqualify``).
    """

    clock: str
    action: str
    at_minutes: int
    elapsed_minutes: int
    target_minutes: int


def due_steps(
    plan: PolicyPlan,
    calendar: BusinessCalendar,
    *,
    assigned_at: datetime,
    stopped: Mapping[str, bool],
    reassignments: int,
    taken: Iterable[tuple[str, str]],
    now: datetime,
) -> tuple[int, list[DueStep]]:
    """Elapsed business minutes and the steps now due for one assignment.

    ``stopped[name]`` tells whether clock ``name`` has stopped (accepted / touched).  ``taken`` is
    the ledger's ``(clock, action)`` pairs.  Reminders are dropped once the target has passed
    (a cycle catching up after downtime).  Steps come in threshold order; at most **one**
    terminal step (reassign or recycle) is returned for the whole assignment, since it ends it.
    A reassign beyond ``max_reassignments`` is returned as due but the engine records it as
    skipped, so the chain moves on to recycle.
    """
    elapsed = calendar.business_minutes_between(assigned_at, now)
    done = set(taken)
    due: list[DueStep] = []
    terminal: DueStep | None = None
    for clock in plan.clocks:
        if stopped.get(clock.name, False):
            continue
        for step in clock.steps:
            if step.at_minutes > elapsed:
                break
            if (clock.name, step.action) in done:
                continue
            if step.action == "remind" and elapsed >= clock.target_minutes:
                continue  # a reminder after the deadline is noise: escalation speaks now
            item = DueStep(clock.name, step.action, step.at_minutes, elapsed, clock.target_minutes)
            if step.action in TERMINAL:
                if step.action == "reassign" and reassignments >= plan.max_reassignments:
                    due.append(item)  # recorded as skipped; later steps may follow
                    continue
                if terminal is None or step.at_minutes < terminal.at_minutes:
                    terminal = item
                break
            due.append(item)
    if terminal is not None:
        due.append(terminal)
    return elapsed, due


@dataclass(frozen=True, slots=True)
class ClockView:
    """What ``sla status`` / ``sla explain`` show for one clock."""

    name: ClockName
    state: ClockState
    started_at: datetime
    deadline: datetime
    target_minutes: int
    elapsed_minutes: int
    stopped_at: datetime | None

    @property
    def left_minutes(self) -> int:
        """Business minutes until the deadline (negative once breached)."""
        return self.target_minutes - self.elapsed_minutes


def view_clock(
    plan: ClockPlan,
    calendar: BusinessCalendar,
    *,
    assigned_at: datetime,
    stopped_at: datetime | None,
    ended_at: datetime | None,
    now: datetime,
) -> ClockView:
    """The full picture of one clock (deadline instant included; slower than :func:`due_steps`).

    ``ended_at`` is when the assignment ended without the clock stopping (reassigned, recycled).
    """
    until = stopped_at or ended_at or now
    elapsed = calendar.business_minutes_between(assigned_at, until)
    deadline = calendar.add_business_time(assigned_at, timedelta(minutes=plan.target_minutes))
    state: ClockState
    if stopped_at is not None:
        state = "met" if elapsed < plan.target_minutes else "missed"
    elif ended_at is not None:
        state = "stopped"
    else:
        state = "running" if elapsed < plan.target_minutes else "breached"
    return ClockView(
        name=plan.name,
        state=state,
        started_at=assigned_at,
        deadline=deadline,
        target_minutes=plan.target_minutes,
        elapsed_minutes=elapsed,
        stopped_at=stopped_at,
    )
