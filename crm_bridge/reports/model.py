"""The report's numbers, computed once from captured outcomes.

Definitions (docs/reasons.md repeats them for readers of the report):

* **outcome** -- won, lost, lead_rejected or disqualified; "rejections" are the last two.
* **reason** -- the (mapped) code of a valid or deprecated outcome; anything else counts under
  ``(no valid reason)`` so totals always add up: nothing is dropped from a report.
* **share** -- a reason's count divided by all outcomes of the same category in the same segment.
* **win rate** -- won / (won + lost); ``None`` when there is no closed deal to divide by.
* **completeness** (per rep) -- outcomes whose reason was valid the *first* time crm-bridge saw
  them, divided by all of the rep's outcomes; a reason entered after a nag does not count.
* **month** -- the close date's calendar month (UTC); for leads, when the rejection was seen.
  Months after the report's date (close dates ahead) are marked ``future``.
* **backlog** -- outcomes closed before crm-bridge first captured any: completeness leaves them
  out in ``completeness_after_backlog`` (a first run is 0 % by construction, not a failure).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from crm_bridge.reasons.repository import OutcomeRow, ReasonRepository
from crm_bridge.reasons.taxonomy import CATEGORIES, CATEGORY_LABELS, ReasonsSettings
from crm_bridge.store import Store

__all__ = [
    "NO_REASON",
    "MonthRow",
    "ReasonCell",
    "RepRow",
    "ReportModel",
    "SegmentRow",
    "build_report",
    "report_from_store",
]

NO_REASON = "(no valid reason)"
UNKNOWN_REP = "(unassigned)"


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True, slots=True)
class ReasonCell:
    """One reason inside one segment value and category."""

    category: str
    reason: str
    label: str
    count: int
    share: float | None


@dataclass(frozen=True, slots=True)
class SegmentRow:
    """Counts and rates of one value of one dimension (e.g. industry = Banking)."""

    dimension: str
    value: str
    counts: dict[str, int]
    win_rate: float | None
    reasons: tuple[ReasonCell, ...]

    @property
    def rejections(self) -> int:
        """lead_rejected + disqualified (shown apart everywhere; kept for callers' totals)."""
        return self.counts.get("lead_rejected", 0) + self.counts.get("disqualified", 0)

    def top_reasons(self, n: int = 3) -> tuple[ReasonCell, ...]:
        """The ``n`` largest reasons of any category (``reasons`` is in category order)."""
        ranked = sorted(self.reasons, key=lambda c: (-c.count, c.reason == NO_REASON, c.reason))
        return tuple(ranked[:n])


@dataclass(frozen=True, slots=True)
class RepRow:
    """Reason-capture completeness of one rep."""

    rep: str
    total: int
    first_time_valid: int
    flagged: int
    valid_now: int
    completeness: float | None


@dataclass(frozen=True, slots=True)
class MonthRow:
    """One calendar month of outcomes."""

    month: str
    counts: dict[str, int]
    win_rate: float | None
    without_reason: int
    future: bool = False
    """A month after the report was generated: deals whose close date is still ahead."""


@dataclass(frozen=True)
class ReportModel:
    """Everything the renderers show."""

    generated_at: datetime
    total: int
    counts: dict[str, int]
    win_rate: float | None
    completeness: float | None
    reasons: tuple[ReasonCell, ...]
    segments: dict[str, tuple[SegmentRow, ...]] = field(default_factory=dict)
    reps: tuple[RepRow, ...] = ()
    months: tuple[MonthRow, ...] = ()
    backlog: int = 0
    """Outcomes closed before crm-bridge first captured reasons: they could not carry a valid
    reason when first seen, so on a first run completeness is 0 % by construction."""
    completeness_after_backlog: float | None = None
    """Completeness of the outcomes closed since the first capture (the number to watch)."""

    def flat_rows(self) -> list[dict[str, str]]:
        """Long-format rows (CSV): one per overall reason, segment x reason, rep and month."""
        rows: list[dict[str, str]] = []

        def pct(x: float | None) -> str:
            return "" if x is None else f"{x:.4f}"

        def add(**values: object) -> None:
            base = dict.fromkeys(COLUMNS, "")
            base.update({k: "" if v is None else str(v) for k, v in values.items()})
            rows.append(base)

        for cell in self.reasons:
            add(
                section="reason",
                category=cell.category,
                reason=cell.reason,
                label=cell.label,
                count=cell.count,
                rate=pct(cell.share),
            )
        for dimension, seg_rows in self.segments.items():
            for seg in seg_rows:
                add(
                    section="segment",
                    dimension=dimension,
                    segment=seg.value,
                    count=sum(seg.counts.values()),
                    won=seg.counts.get("won", 0),
                    lost=seg.counts.get("lost", 0),
                    rejected=seg.counts.get("lead_rejected", 0),
                    disqualified=seg.counts.get("disqualified", 0),
                    rate=pct(seg.win_rate),
                )
                for cell in seg.reasons:
                    add(
                        section="segment_reason",
                        dimension=dimension,
                        segment=seg.value,
                        category=cell.category,
                        reason=cell.reason,
                        label=cell.label,
                        count=cell.count,
                        rate=pct(cell.share),
                    )
        for rep in self.reps:
            add(
                section="rep",
                segment=rep.rep,
                count=rep.total,
                won=rep.first_time_valid,
                lost=rep.flagged,
                rate=pct(rep.completeness),
            )
        for month in self.months:
            add(
                section="month",
                segment=month.month,
                count=sum(month.counts.values()),
                won=month.counts.get("won", 0),
                lost=month.counts.get("lost", 0),
                rejected=month.counts.get("lead_rejected", 0),
                disqualified=month.counts.get("disqualified", 0),
                rate=pct(month.win_rate),
            )
        return rows


COLUMNS = (
    "section",
    "dimension",
    "segment",
    "category",
    "reason",
    "label",
    "count",
    "won",
    "lost",
    "rejected",
    "disqualified",
    "rate",
)
"""CSV columns.  For ``rep`` rows ``won`` is first-time-valid, ``lost`` flagged and ``rate``
completeness; for ``segment``/``month`` rows ``rate`` is the win rate; for reason rows the share.
``rejected`` counts rejected leads only; disqualified ones have their own column."""


def _reason_of(row: OutcomeRow) -> str:
    return row.code if row.status in ("valid", "deprecated") and row.code else NO_REASON


def _counts(rows: Iterable[OutcomeRow]) -> dict[str, int]:
    found = Counter(r.outcome for r in rows)
    return {c: found.get(c, 0) for c in CATEGORIES}


def _win_rate(counts: dict[str, int]) -> float | None:
    return _rate(counts["won"], counts["won"] + counts["lost"])


def _cells(rows: Sequence[OutcomeRow], settings: ReasonsSettings | None) -> tuple[ReasonCell, ...]:
    per_category = Counter(r.outcome for r in rows)
    per_reason = Counter((r.outcome, _reason_of(r)) for r in rows)

    def label(code: str) -> str:
        if code == NO_REASON or settings is None:
            return code
        return settings.label(code)

    order: dict[str, int] = {c: i for i, c in enumerate(CATEGORIES)}
    cells = [
        ReasonCell(cat, reason, label(reason), n, _rate(n, per_category[cat]))
        for (cat, reason), n in per_reason.items()
    ]
    cells.sort(key=lambda c: (order[c.category], -c.count, c.reason == NO_REASON, c.reason))
    return tuple(cells)


def build_report(
    outcomes: Sequence[OutcomeRow],
    settings: ReasonsSettings | None,
    *,
    generated_at: datetime,
) -> ReportModel:
    """The report of ``outcomes`` (labels and segment dimensions from ``settings`` when given)."""
    counts = _counts(outcomes)
    dimensions = list(settings.segments) if settings is not None else []
    for row in outcomes:
        for name in row.segments:
            if name not in dimensions:
                dimensions.append(name)
    segments: dict[str, tuple[SegmentRow, ...]] = {}
    for dimension in dimensions:
        groups: dict[str, list[OutcomeRow]] = defaultdict(list)
        for row in outcomes:
            groups[str(row.segments.get(dimension, "(none)"))].append(row)
        seg_rows = []
        for value in sorted(groups, key=lambda v: (-len(groups[v]), v)):
            group = groups[value]
            seg_counts = _counts(group)
            seg_rows.append(
                SegmentRow(
                    dimension, value, seg_counts, _win_rate(seg_counts), _cells(group, settings)
                )
            )
        segments[dimension] = tuple(seg_rows)
    reps: dict[str, list[OutcomeRow]] = defaultdict(list)
    for row in outcomes:
        reps[row.owner_name or row.owner_id or UNKNOWN_REP].append(row)
    rep_rows = []
    for rep in sorted(reps):
        group = reps[rep]
        first = sum(1 for r in group if r.first_status == "valid")
        rep_rows.append(
            RepRow(
                rep=rep,
                total=len(group),
                first_time_valid=first,
                flagged=sum(1 for r in group if r.flagged_status is not None),
                valid_now=sum(1 for r in group if r.status in ("valid", "deprecated")),
                completeness=_rate(first, len(group)),
            )
        )
    months: dict[str, list[OutcomeRow]] = defaultdict(list)
    for row in outcomes:
        months[row.closed_at.strftime("%Y-%m")].append(row)
    month_rows = []
    for month in sorted(months):
        group = months[month]
        m_counts = _counts(group)
        month_rows.append(
            MonthRow(
                month,
                m_counts,
                _win_rate(m_counts),
                sum(1 for r in group if _reason_of(r) == NO_REASON),
                future=month > generated_at.strftime("%Y-%m"),
            )
        )
    first_valid = sum(1 for r in outcomes if r.first_status == "valid")
    seen = [r.first_seen for r in outcomes if r.first_seen is not None]
    started = min(seen) if seen else None
    later = [r for r in outcomes if started is None or r.closed_at >= started]
    later_valid = sum(1 for r in later if r.first_status == "valid")
    return ReportModel(
        generated_at=generated_at,
        total=len(outcomes),
        counts=counts,
        win_rate=_win_rate(counts),
        completeness=_rate(first_valid, len(outcomes)),
        reasons=_cells(outcomes, settings),
        segments=segments,
        reps=tuple(rep_rows),
        months=tuple(month_rows),
        backlog=len(outcomes) - len(later),
        completeness_after_backlog=_rate(later_valid, len(later)),
    )


def category_label(category: str) -> str:
    """``lead_rejected`` -> ``Rejected``."""
    return CATEGORY_LABELS.get(category, category)


def report_from_store(
    store: Store, settings: ReasonsSettings | None, *, generated_at: datetime
) -> ReportModel:
    """Build the report from the store's captured outcomes (one read-only transaction)."""
    with store.transaction(readonly=True) as tx:
        outcomes = ReasonRepository(tx).all_outcomes()
    return build_report(outcomes, settings, generated_at=generated_at)
