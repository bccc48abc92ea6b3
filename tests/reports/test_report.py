"""Report numbers against a hand-computed fixture, and the three renderings of them.

The fixture (seven outcomes) and the expected numbers are worked out by hand in the comments;
every rendering is checked to carry the same numbers as the model.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_bridge.reasons.repository import OutcomeRow, ReasonRepository
from crm_bridge.reports.model import NO_REASON, ReportModel, build_report, report_from_store
from crm_bridge.reports.render_csv import render_csv
from crm_bridge.reports.render_html import render_html
from crm_bridge.reports.render_text import render_lines
from crm_bridge.store import Store
from tests.reasons.conftest import reasons_settings

GENERATED = datetime(2026, 4, 1, tzinfo=UTC)


def _row(
    n: int,
    outcome: str,
    code: str | None,
    status: str,
    first: str,
    rep: str,
    day: str,
    industry: str,
    flagged: str | None = None,
    raw: str | None = None,
) -> OutcomeRow:
    return OutcomeRow(
        id=n,
        source="sf",
        object="Opportunity" if outcome in ("won", "lost") else "Lead",
        record_id=f"r{n}",
        outcome=outcome,
        raw_code=raw or code,
        code=code,
        has_note=False,
        status=status,
        owner_id=f"id-{rep}",
        owner_name=rep,
        closed_at=datetime.fromisoformat(day).replace(tzinfo=UTC),
        segments={"industry": industry},
        version="v1",
        first_status=first,
        flagged_status=flagged,
        task_id="t" if flagged else None,
        pushed_code=code,
    )


FIXTURE = [
    _row(1, "won", "product_fit", "valid", "valid", "Ann", "2026-01-15", "Banking"),
    _row(2, "won", "relationship", "valid", "valid", "Ann", "2026-01-20", "Banking"),
    _row(3, "lost", "price", "valid", "valid", "Ann", "2026-02-03", "Banking"),
    # Bob closed without a reason, was nagged, then picked "price".
    _row(4, "lost", "price", "valid", "missing", "Bob", "2026-02-10", "Retail", flagged="missing"),
    _row(5, "lost", None, "missing", "missing", "Bob", "2026-02-11", "Retail", flagged="missing"),
    _row(6, "lead_rejected", "not_icp", "valid", "valid", "Bob", "2026-02-12", "Retail"),
    # A retired code, mapped to "price" (counts as price, not as first-time valid).
    _row(
        7,
        "lost",
        "price",
        "deprecated",
        "deprecated",
        "Ann",
        "2026-03-01",
        "Banking",
        flagged="deprecated",
        raw="no_budget",
    ),
]


@pytest.fixture
def model() -> ReportModel:
    settings = reasons_settings(segments={"industry": {"sources": ["Industry"]}})
    return build_report(FIXTURE, settings, generated_at=GENERATED)


def test_totals_rates_and_completeness(model: ReportModel) -> None:
    # won: rows 1, 2; lost: 3, 4, 5, 7; rejected: 6.
    assert model.total == 7
    assert model.counts == {"won": 2, "lost": 4, "lead_rejected": 1, "disqualified": 0}
    assert model.win_rate == pytest.approx(2 / 6)
    # valid the first time: rows 1, 2, 3, 6.
    assert model.completeness == pytest.approx(4 / 7)


def test_reasons_overall(model: ReportModel) -> None:
    got = {(c.category, c.reason): (c.count, c.share, c.label) for c in model.reasons}
    assert got == {
        ("won", "product_fit"): (1, 0.5, "Product fit"),
        ("won", "relationship"): (1, 0.5, "Relationship"),
        ("lost", "price"): (3, 0.75, "Price"),  # rows 3, 4, 7
        ("lost", NO_REASON): (1, 0.25, NO_REASON),  # row 5
        ("lead_rejected", "not_icp"): (1, 1.0, "Not our ICP"),
    }
    assert [c.reason for c in model.reasons][:4] == [
        "product_fit",
        "relationship",
        "price",
        NO_REASON,
    ]


def test_reason_by_segment(model: ReportModel) -> None:
    banking, retail = model.segments["industry"]
    assert (banking.value, retail.value) == ("Banking", "Retail")  # 4 outcomes before 3
    assert banking.counts["won"] == 2 and banking.counts["lost"] == 2
    assert banking.win_rate == pytest.approx(0.5)
    assert {(c.category, c.reason): (c.count, c.share) for c in banking.reasons} == {
        ("won", "product_fit"): (1, 0.5),
        ("won", "relationship"): (1, 0.5),
        ("lost", "price"): (2, 1.0),
    }
    assert retail.win_rate == 0.0 and retail.rejections == 1
    assert {(c.category, c.reason): (c.count, c.share) for c in retail.reasons} == {
        ("lost", "price"): (1, 0.5),
        ("lost", NO_REASON): (1, 0.5),
        ("lead_rejected", "not_icp"): (1, 1.0),
    }


def test_completeness_per_rep_and_months(model: ReportModel) -> None:
    ann, bob = model.reps
    assert (ann.rep, ann.total, ann.first_time_valid, ann.flagged, ann.valid_now) == (
        "Ann",
        4,
        3,
        1,
        4,
    )
    assert ann.completeness == pytest.approx(0.75)
    assert (bob.rep, bob.total, bob.first_time_valid, bob.flagged, bob.valid_now) == (
        "Bob",
        3,
        1,
        2,
        2,
    )
    assert bob.completeness == pytest.approx(1 / 3)
    months = {m.month: m for m in model.months}
    assert list(months) == ["2026-01", "2026-02", "2026-03"]
    assert months["2026-01"].counts["won"] == 2 and months["2026-01"].win_rate == 1.0
    assert months["2026-02"].counts["lost"] == 3 and months["2026-02"].counts["lead_rejected"] == 1
    assert months["2026-02"].win_rate == 0.0 and months["2026-02"].without_reason == 1
    assert months["2026-03"].counts["lost"] == 1 and months["2026-03"].without_reason == 0


def test_csv_carries_the_same_numbers(model: ReportModel) -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv(model))))
    price = next(r for r in rows if r["section"] == "reason" and r["reason"] == "price")
    assert (price["count"], price["rate"], price["label"]) == ("3", "0.7500", "Price")
    retail_none = next(
        r
        for r in rows
        if r["section"] == "segment_reason"
        and r["segment"] == "Retail"
        and r["reason"] == NO_REASON
    )
    assert (retail_none["count"], retail_none["rate"]) == ("1", "0.5000")
    bob = next(r for r in rows if r["section"] == "rep" and r["segment"] == "Bob")
    assert (bob["count"], bob["won"], bob["lost"], bob["rate"]) == ("3", "1", "2", "0.3333")
    feb = next(r for r in rows if r["section"] == "month" and r["segment"] == "2026-02")
    assert (feb["lost"], feb["rejected"], feb["rate"]) == ("3", "1", "0.0000")


def test_terminal_table_shows_the_numbers(model: ReportModel) -> None:
    text = "\n".join(render_lines(model))
    assert re.search(r"\b7\s.*\b2\s.*\b4\s.*\b1\s.*\b0\s.*33%\s.*57%", text)
    assert re.search(r"Bob\s.*\b3\s.*\b1\s.*\b2\s.*\b2\s.*33%", text)
    assert "2026-02" in text and "Not our ICP" in text


def test_html_is_self_contained_and_escaped() -> None:
    rows = [
        _row(
            1,
            "won",
            "product_fit",
            "valid",
            "valid",
            "<script>alert(1)</script>",
            "2026-01-15",
            "A&B <Corp>",
        ),
        *FIXTURE[1:],
    ]
    html = render_html(build_report(rows, reasons_settings(), generated_at=GENERATED))
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "A&amp;B &lt;Corp&gt;" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html
    assert html.count('<svg class="chart"') >= 5


def test_report_from_store_reads_captured_outcomes() -> None:
    with Store.open("sqlite://") as store:
        now = GENERATED
        with store.transaction() as tx:
            repo = ReasonRepository(tx)
            for row in FIXTURE:
                values: dict[str, Any] = {
                    k: getattr(row, k)
                    for k in (
                        "source",
                        "object",
                        "record_id",
                        "outcome",
                        "raw_code",
                        "code",
                        "has_note",
                        "status",
                        "owner_id",
                        "owner_name",
                        "closed_at",
                        "version",
                    )
                }
                values["segments"] = dict(row.segments)
                values["status"] = row.first_status
                outcome_id = repo.save_outcome(values, now=now)
                if row.status != row.first_status:  # the rep fixed it later
                    repo.save_outcome({**values, "status": row.status}, now=now)
                if row.flagged_status:
                    repo.mark_flagged(outcome_id, row.flagged_status, "t", now)
        model = report_from_store(store, reasons_settings(), generated_at=GENERATED)
    assert model.counts == {"won": 2, "lost": 4, "lead_rejected": 1, "disqualified": 0}
    assert model.completeness == pytest.approx(4 / 7)
    assert {r.rep: r.flagged for r in model.reps} == {"Ann": 1, "Bob": 2}


def test_every_segment_row_top_reasons_by_size_and_rejected_apart() -> None:
    """Seven industries (no cut at five); a segment's top reason is its largest of any category;
    disqualified leads are not counted as rejected."""
    rows = [
        _row(1, "won", "product_fit", "valid", "valid", "Ann", "2026-01-15", "Banking"),
        *(
            _row(10 + i, "lost", "price", "valid", "valid", "Ann", "2026-01-16", "Banking")
            for i in range(3)
        ),
        _row(20, "disqualified", "student", "valid", "valid", "Bob", "2026-01-17", "Banking"),
        *(
            _row(30 + i, "lead_rejected", "not_icp", "valid", "valid", "Bob", "2026-01-18", f"I{i}")
            for i in range(6)
        ),
        _row(40, "won", "product_fit", "valid", "valid", "Ann", "2026-03-05", "Zed"),
    ]
    model = build_report(rows, reasons_settings(), generated_at=datetime(2026, 2, 1, tzinfo=UTC))
    banking = next(r for r in model.segments["industry"] if r.value == "Banking")
    assert [c.reason for c in banking.top_reasons(2)] == ["price", "product_fit"]
    text = "\n".join(render_lines(model, width=160))
    assert all(f"I{i}" in text for i in range(6))
    assert "2026-03 (ahead)" in text and "2026-01 (ahead)" not in text
    assert re.search(
        r"Banking\s+│\s+5\s+│\s+1\s+│\s+3\s+│\s+0\s+│\s+1\s+│\s+25%\s+│\s+Price 3", text
    )
    csv_rows = list(csv.DictReader(io.StringIO(render_csv(model))))
    seg = next(r for r in csv_rows if r["section"] == "segment" and r["segment"] == "Banking")
    assert (seg["rejected"], seg["disqualified"]) == ("0", "1")


def test_first_run_completeness_is_explained_not_shown_as_zero() -> None:
    """Outcomes closed before the first capture are a backlog, not a rep's failure."""
    from dataclasses import replace

    first_capture = max(r.closed_at for r in FIXTURE) + timedelta(days=1)
    backlog = [replace(r, first_status="missing", first_seen=first_capture) for r in FIXTURE]
    model = build_report(backlog, reasons_settings(), generated_at=GENERATED)
    assert model.completeness == 0.0
    assert model.backlog == len(FIXTURE) and model.completeness_after_backlog is None
    html = render_html(model)
    assert "not yet" in html and f"All {len(FIXTURE)} outcomes closed before" in html
    later = replace(FIXTURE[0], closed_at=first_capture, first_seen=first_capture)
    model = build_report([*backlog, later], reasons_settings(), generated_at=GENERATED)
    assert model.completeness_after_backlog == 1.0
