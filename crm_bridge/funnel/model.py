"""The funnel's numbers, computed once from the person event log.

Definitions (docs/funnel.md repeats them for readers):

* **journey** -- one person's events.  A person *reached* a stage of :data:`MAIN_PATH` if they
  have an event of it or of any later stage (a lead converted straight to an opportunity was
  accepted and qualified on the way), so every conversion % is at most 100 %.
* **cohort** -- when a person entered the funnel: their first MQL, else their first event of
  the main path.  The period (``since``/``until``) selects people by cohort date, and the cohort
  table groups them by its month: "of March's MQLs, how many were won, whenever that happened".
* **conversion %** of a transition -- reached the next stage / reached this one.
* **median days** of a transition -- between the first event of each stage, over the people with
  both dated (implied stages have no date); ``None`` with no such person.
* **loss %** -- rejected / reached MQL, disqualified / reached SAL, lost / reached opportunity;
  top reasons are the largest first, ``(no valid reason)`` when none was captured.
* **amounts** -- pipeline is the sum over distinct deals of their (largest known) amount; won is
  the same over won deals.  Deals no person could be found for are counted apart
  (``unattributed_deals``) rather than invented into an MQL.
* **breakdowns** -- first-touch lead source and campaign (the earliest event that names one),
  latest owner, segments captured with reasons, and content-engagement bucket (largest count
  seen: 0, 1-2, 3-5, 6+; people whose count is unknown fall under ``(unknown)``).
* Events after ``generated_at`` (a close date in the future) are left out and counted in
  ``future_events``, so no future month appears unlabelled.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from statistics import median

from crm_bridge.funnel.events import LOSS_STAGES, MAIN_PATH, PersonEvent
from crm_bridge.sla.repository import ClockRow

__all__ = [
    "ENGAGEMENT_BUCKETS",
    "NO_REASON",
    "BreakdownRow",
    "FunnelModel",
    "Journey",
    "LossRow",
    "RepSla",
    "StageRow",
    "build_funnel",
    "engagement_bucket",
    "journeys",
    "rep_sla",
]

NO_REASON = "(no valid reason)"
NONE = "(none)"
UNKNOWN = "(unknown)"
ENGAGEMENT_BUCKETS = ("0", "1-2", "3-5", "6+")
DIMENSIONS = ("source", "campaign", "owner", "engagement")


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def engagement_bucket(count: int | None) -> str:
    """0, 1-2, 3-5 or 6+ downloads / form fills; ``(unknown)`` when never read."""
    if count is None:
        return UNKNOWN
    if count <= 0:
        return "0"
    if count <= 2:
        return "1-2"
    return "3-5" if count <= 5 else "6+"


@dataclass(frozen=True)
class Journey:
    """One person's way through the funnel."""

    person: str
    first: dict[str, datetime]
    reached: frozenset[str]
    losses: dict[str, str]
    cohort: datetime
    source: str
    campaign: str
    owner: str
    engagement: str
    segments: dict[str, str]
    pipeline: dict[str, float]
    won: dict[str, float]


def _first_named(events: Sequence[PersonEvent], attr: str) -> str:
    return next((str(v) for e in events if (v := getattr(e, attr))), NONE)


def _journey(person: str, events: Sequence[PersonEvent]) -> Journey | None:
    first: dict[str, datetime] = {}
    for e in events:
        first.setdefault(e.stage, e.at)
    # A way out implies the stage it leaves from: a disqualified lead had been accepted.
    implied = [s if s in MAIN_PATH else LOSS_STAGES.get(s) for s in first]
    deepest = max((MAIN_PATH.index(s) for s in implied if s is not None), default=-1)
    if deepest < 0:
        return None  # only "recycled": never entered the funnel proper
    reached = frozenset(MAIN_PATH[: deepest + 1])
    losses = {}
    for e in events:
        if e.stage in LOSS_STAGES:
            losses[e.stage] = e.reason or NO_REASON  # the latest reason given wins
    main_times = [t for s, t in first.items() if s in MAIN_PATH]
    cohort = first.get("mql") or min(main_times or [events[0].at])
    owner = next((str(e.owner) for e in reversed(events) if e.owner), NONE)
    counts = [e.engagement for e in events if e.engagement is not None]
    segments: dict[str, str] = {}
    for e in events:
        segments.update({k: v for k, v in e.segments.items() if v and v != NONE})
    pipeline: dict[str, float] = {}
    won: dict[str, float] = {}
    for e in events:
        if e.deal_id and e.stage in ("opportunity", "won"):
            pipeline[e.deal_id] = max(pipeline.get(e.deal_id, 0.0), e.amount or 0.0)
    for e in events:
        if e.deal_id and e.stage == "won":
            won[e.deal_id] = pipeline.get(e.deal_id, 0.0)
    return Journey(
        person=person,
        first=first,
        reached=reached,
        losses=losses,
        cohort=cohort,
        source=_first_named(events, "source"),
        campaign=_first_named(events, "campaign"),
        owner=owner,
        engagement=engagement_bucket(max(counts) if counts else None),
        segments=segments,
        pipeline=pipeline,
        won=won,
    )


def journeys(events: Iterable[PersonEvent]) -> tuple[list[Journey], int]:
    """People's journeys (in person order) and how many deals had no known person."""
    ordered = sorted(events, key=lambda e: e.at)
    # A deal logged before its person was known (``deal:...``) joins the person another event of
    # the same deal names: the log is append-only, so the correction happens here.
    owner_of = {
        e.deal_id: e.person for e in ordered if e.deal_id and not e.person.startswith("deal:")
    }
    by_person: dict[str, list[PersonEvent]] = defaultdict(list)
    for e in ordered:
        person = (
            owner_of.get(e.deal_id or "", e.person) if e.person.startswith("deal:") else e.person
        )
        by_person[person].append(e)
    unattributed = {p for p in by_person if p.startswith("deal:")}
    found = []
    for person in sorted(set(by_person) - unattributed):
        j = _journey(person, by_person[person])
        if j is not None:
            found.append(j)
    return found, len(unattributed)


@dataclass(frozen=True, slots=True)
class StageRow:
    """One stage: how many reached it and how they got there from the stage before."""

    stage: str
    count: int
    conversion: float | None
    median_days: float | None
    timed: int


@dataclass(frozen=True, slots=True)
class LossRow:
    """One way out: how many left there, of how many who reached it, and why."""

    stage: str
    at_stage: str
    count: int
    base: int
    rate: float | None
    reasons: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class BreakdownRow:
    """The funnel of one value of one dimension (source = Web, engagement = 3-5, ...)."""

    dimension: str
    value: str
    counts: dict[str, int]
    sal_rate: float | None
    win_rate: float | None
    pipeline: float
    won_amount: float


@dataclass(frozen=True, slots=True)
class RepSla:
    """SLA attainment of one rep beside the SAL stage: accepted or rejected in time or not."""

    rep: str
    assignments: int
    met: int
    missed: int
    attainment: float | None
    median_accept_minutes: float | None


@dataclass(frozen=True)
class FunnelModel:
    """Everything the renderers show."""

    generated_at: datetime
    since: datetime | None
    until: datetime | None
    people: int
    stages: tuple[StageRow, ...]
    losses: tuple[LossRow, ...]
    pipeline: float
    won_amount: float
    mql_to_won_days: float | None
    breakdowns: dict[str, tuple[BreakdownRow, ...]] = field(default_factory=dict)
    cohorts: tuple[BreakdownRow, ...] = ()
    reps: tuple[RepSla, ...] = ()
    unattributed_deals: int = 0
    future_events: int = 0

    def stage(self, name: str) -> StageRow:
        """The row of one stage of :data:`MAIN_PATH`."""
        return next(s for s in self.stages if s.stage == name)


def _days(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() / 86400


def _stages(people: Sequence[Journey]) -> tuple[StageRow, ...]:
    rows = []
    previous: str | None = None
    for stage in MAIN_PATH:
        count = sum(1 for j in people if stage in j.reached)
        if previous is None:
            rows.append(StageRow(stage, count, None, None, 0))
        else:
            before = sum(1 for j in people if previous in j.reached)
            spans = [
                _days(j.first[previous], j.first[stage])
                for j in people
                if previous in j.first and stage in j.first and j.first[stage] >= j.first[previous]
            ]
            rows.append(
                StageRow(
                    stage,
                    count,
                    _rate(count, before),
                    median(spans) if spans else None,
                    len(spans),
                )
            )
        previous = stage
    return tuple(rows)


def _losses(people: Sequence[Journey]) -> tuple[LossRow, ...]:
    rows = []
    for stage, at_stage in LOSS_STAGES.items():
        base = sum(1 for j in people if at_stage in j.reached)
        reasons = Counter(j.losses[stage] for j in people if stage in j.losses)
        ordered = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0] == NO_REASON, kv[0]))
        count = sum(reasons.values())
        rows.append(LossRow(stage, at_stage, count, base, _rate(count, base), tuple(ordered)))
    return tuple(rows)


def _amount(people: Sequence[Journey], which: str) -> float:
    """Sum over distinct deals (a deal two people share counts once)."""
    deals: dict[str, float] = {}
    for j in people:
        deals.update(getattr(j, which))
    return sum(deals.values())


def _row(dimension: str, value: str, people: Sequence[Journey]) -> BreakdownRow:
    counts = {s: sum(1 for j in people if s in j.reached) for s in MAIN_PATH}
    for stage in LOSS_STAGES:
        counts[stage] = sum(1 for j in people if stage in j.losses)
    return BreakdownRow(
        dimension=dimension,
        value=value,
        counts=counts,
        sal_rate=_rate(counts["sal"], counts["mql"]),
        win_rate=_rate(counts["won"], counts["won"] + counts["lost"]),
        pipeline=_amount(people, "pipeline"),
        won_amount=_amount(people, "won"),
    )


def _grouped(
    dimension: str, people: Sequence[Journey], value_of: dict[str, str]
) -> tuple[BreakdownRow, ...]:
    groups: dict[str, list[Journey]] = defaultdict(list)
    for j in people:
        groups[value_of[j.person]].append(j)
    if dimension == "engagement":
        known = (*ENGAGEMENT_BUCKETS, UNKNOWN)
        order = [b for b in known if b in groups] + sorted(set(groups) - set(known))
    else:
        order = sorted(groups, key=lambda v: (-len(groups[v]), v == NONE, v))
    return tuple(_row(dimension, v, groups[v]) for v in order)


def rep_sla(clocks: Iterable[ClockRow]) -> tuple[RepSla, ...]:
    """Accept-clock attainment per rep from the stored SLA clocks (met / (met + missed))."""
    by_rep: dict[str, list[ClockRow]] = defaultdict(list)
    for row in clocks:
        by_rep[row.rep].append(row)
    out = []
    for rep in sorted(by_rep):
        rows = by_rep[rep]
        missed = sum(1 for r in rows if r.accept_breached)
        met = sum(
            1
            for r in rows
            if not r.accept_breached and (r.accepted_at is not None or r.rejected_at is not None)
        )
        minutes = [r.accept_minutes for r in rows if r.accept_minutes is not None]
        out.append(
            RepSla(
                rep,
                len(rows),
                met,
                missed,
                _rate(met, met + missed),
                float(median(minutes)) if minutes else None,
            )
        )
    return tuple(out)


def build_funnel(
    events: Iterable[PersonEvent],
    *,
    generated_at: datetime,
    since: datetime | None = None,
    until: datetime | None = None,
    clocks: Iterable[ClockRow] = (),
) -> FunnelModel:
    """The funnel of the people whose cohort date lies in ``[since, until)``."""
    all_events = list(events)
    past = [e for e in all_events if e.at <= generated_at]
    everyone, unattributed = journeys(past)
    people = [
        j
        for j in everyone
        if (since is None or j.cohort >= since) and (until is None or j.cohort < until)
    ]
    breakdowns: dict[str, tuple[BreakdownRow, ...]] = {}
    for dimension in DIMENSIONS:
        breakdowns[dimension] = _grouped(
            dimension, people, {j.person: str(getattr(j, dimension)) for j in people}
        )
    # Segments captured with reasons may share a name with a funnel dimension (the reasons'
    # own "engagement" and "campaign"); the funnel's own reading of those wins.
    segment_names = sorted({k for j in people for k in j.segments} - set(DIMENSIONS))
    for name in segment_names:
        breakdowns[name] = _grouped(
            name, people, {j.person: j.segments.get(name, NONE) for j in people}
        )
    cohort_of = {j.person: j.cohort.strftime("%Y-%m") for j in people}
    cohorts = tuple(sorted(_grouped("cohort", people, cohort_of), key=lambda r: r.value))
    spans = [
        _days(j.first["mql"], j.first["won"])
        for j in people
        if "mql" in j.first and "won" in j.first and j.first["won"] >= j.first["mql"]
    ]
    return FunnelModel(
        generated_at=generated_at,
        since=since,
        until=until,
        people=len(people),
        stages=_stages(people),
        losses=_losses(people),
        pipeline=_amount(people, "pipeline"),
        won_amount=_amount(people, "won"),
        mql_to_won_days=median(spans) if spans else None,
        breakdowns=breakdowns,
        cohorts=cohorts,
        reps=rep_sla(clocks),
        unattributed_deals=unattributed,
        future_events=len(all_events) - len(past),
    )
