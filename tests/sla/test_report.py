"""Report numbers against a hand-computed fixture of clock rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_bridge.sla.policy import SlaSettings
from crm_bridge.sla.report import build_summary, report_lines
from crm_bridge.sla.repository import ClockRow

from .conftest import sla_config

MON = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SETTINGS = SlaSettings.model_validate(sla_config())  # accept 240 min, first touch 480 min


def row(n: int, rep: str, source: str, **kw: object) -> ClockRow:
    values: dict[str, object] = {
        "id": n,
        "crm": "salesforce",
        "lead_id": f"L{n}",
        "seq": 1,
        "policy": "inbound",
        "team": "inside",
        "rep": rep,
        "owner_id": f"O-{rep}",
        "assigned_at": MON,
        "status": "done",
        "source": source,
    }
    values.update(kw)
    return ClockRow(**values)  # type: ignore[arg-type]


def at(minutes: int) -> datetime:
    return MON + timedelta(minutes=minutes)  # same day, inside 09:00-17:00


ROWS = [
    # ann: accepted in 60 (met), touched in 120 (met); MQL 10 min before the lead was created
    row(
        1,
        "ann",
        "ORGANIC_SEARCH",
        accepted_at=at(60),
        accept_minutes=60,
        first_touch_at=at(120),
        first_touch_minutes=120,
        mql_at=MON - timedelta(minutes=10),
        crm_visible_at=MON,
    ),
    # ann: accepted in 300 (missed), touched in 400 (met); MQL 30 min before
    row(
        2,
        "ann",
        "PAID_SEARCH",
        accepted_at=at(300),
        accept_minutes=300,
        accept_breached=True,
        first_touch_at=at(400),
        first_touch_minutes=400,
        mql_at=MON - timedelta(minutes=30),
        crm_visible_at=MON,
    ),
    # bob: rejected in 30 (accept met), no first touch counted (rejected)
    row(
        3,
        "bob",
        "ORGANIC_SEARCH",
        rejected_at=at(30),
        accept_minutes=30,
        reject_reason="no_budget",
        status="recycled",
    ),
    # bob: never accepted, reassigned with both clocks breached (2 misses) ...
    row(
        4,
        "bob",
        "PAID_SEARCH",
        status="reassigned",
        accept_breached=True,
        first_touch_breached=True,
        closed_at=at(540),
    ),
    # ... then cat accepted it in 90 and touched it in 200 (both met)
    row(
        5,
        "cat",
        "PAID_SEARCH",
        lead_id="L4",
        seq=2,
        accepted_at=at(630),
        accept_minutes=90,
        first_touch_at=at(740),
        first_touch_minutes=200,
    ),
]


def test_attainment_medians_and_rates_match_the_hand_computation() -> None:
    s = build_summary(ROWS, SETTINGS, now=MON + timedelta(days=7))
    ann, bob, cat = s.by_rep["ann"], s.by_rep["bob"], s.by_rep["cat"]
    assert (ann.accept_met, ann.accept_missed, ann.touch_met, ann.touch_missed) == (1, 1, 2, 0)
    assert ann.attainment == 75.0
    assert ann.median_accept == 180  # median(60, 300)
    assert ann.median_touch == 260  # median(120, 400)
    assert (bob.accept_met, bob.accept_missed, bob.touch_met, bob.touch_missed) == (1, 1, 0, 1)
    assert round(bob.attainment or 0, 2) == 33.33
    assert cat.attainment == 100.0
    team = s.by_team["inside"]
    assert (team.accept_met + team.touch_met, team.accept_missed + team.touch_missed) == (6, 3)
    assert team.median_accept == 75  # median(60, 300, 30, 90)
    paid = s.by_source["PAID_SEARCH"]
    assert (paid.accept_met, paid.accept_missed) == (1, 2)
    # SAL rate: ORGANIC L1 accepted, L3 rejected -> 1/2; PAID L2 accepted, L4 accepted by cat -> 2/2
    assert s.sal_rate == {"ORGANIC_SEARCH": (1, 2), "PAID_SEARCH": (2, 2)}
    # Delay split: systems 10 and 30 min; human accept 60, 300, 90 (rejections excluded)
    assert sorted(s.systems_minutes) == [10.0, 30.0]
    assert sorted(s.human_accept_minutes) == [60, 90, 300]
    text = "\n".join(report_lines(s))
    assert "ann" in text and "75%" in text
    assert "PAID_SEARCH: 2/2 = 100%" in text
    assert "systems MQL->CRM 20 min" in text
    assert "assignment->accept 90 business min" in text


def test_a_running_clock_inside_its_target_is_not_counted_yet() -> None:
    running = row(9, "ann", "ORGANIC_SEARCH", status="open")
    s = build_summary([running], SETTINGS, now=at(60))
    assert s.by_rep["ann"].attainment is None
    late = build_summary([running], SETTINGS, now=at(300))
    assert late.by_rep["ann"].accept_missed == 1
