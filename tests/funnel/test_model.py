"""The funnel model against a brute-force count over random event logs, plus named edge cases."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_bridge.funnel.events import MAIN_PATH, PersonEvent
from crm_bridge.funnel.model import FunnelModel, build_funnel, engagement_bucket

from .brute import brute_funnel

NOW = datetime(2026, 6, 30, tzinfo=UTC)
SOURCES = ["Web", "Partner Referral", "Phone Inquiry", None]
REASONS = {
    "rejected": ["not_icp", "no_contact", None],
    "disqualified": ["student", None],
    "lost": ["price", "competitor", None],
}


def random_log(seed: int, people: int = 120) -> list[PersonEvent]:
    """People who go part of the way, skip stages, leave with reasons, own deals (some shared)."""
    rng = random.Random(seed)
    events: list[PersonEvent] = []
    n = 0

    def add(person: str, stage: str, at: datetime, **kw: Any) -> None:
        nonlocal n
        n += 1
        events.append(
            PersonEvent(key=f"k{n}", person=person, stage=stage, at=at, origin="test", **kw)
        )

    for i in range(people):
        person = f"p{i}@example.com"
        at = NOW - timedelta(days=rng.randint(1, 300), hours=rng.randint(0, 23))
        depth = rng.randint(0, len(MAIN_PATH) - 1)
        source = rng.choice(SOURCES)
        engagement = rng.choice([None, 0, 1, 2, 3, 5, 6, 12])
        deal = f"d{i}" if depth >= 3 else None
        amount = float(rng.randrange(1, 50) * 1000)
        for stage in MAIN_PATH[: depth + 1]:
            if rng.random() < 0.2 and stage != MAIN_PATH[depth]:
                continue  # an implied stage: no event of it
            at += timedelta(days=rng.uniform(0, 40))
            add(
                person,
                stage,
                at,
                source=source if rng.random() < 0.7 else None,
                engagement=engagement,
                deal_id=deal if stage in ("opportunity", "won") else None,
                amount=amount if stage == "opportunity" else None,
            )
        leave = {0: "rejected", 1: "disqualified", 3: "lost"}.get(depth)
        if leave and rng.random() < 0.6:
            for _ in range(rng.randint(1, 2)):  # a reason corrected later: the latest counts
                at += timedelta(days=1)
                add(person, leave, at, reason=rng.choice(REASONS[leave]), deal_id=deal)
        if deal and rng.random() < 0.3:  # the same deal logged under its id before its person
            add(
                f"deal:sf:{deal}",
                "won" if depth == 4 else "opportunity",
                at,
                deal_id=deal,
                amount=amount * 2,
            )
    for i in range(people // 10):  # known only by how they left: the stage left from is implied
        leave = rng.choice(["rejected", "disqualified", "lost"])
        deal = f"x{i}" if leave == "lost" else None
        at = NOW - timedelta(days=rng.randint(1, 200))
        add(f"q{i}@example.com", leave, at, reason=rng.choice(REASONS[leave]), deal_id=deal)
    # a few in the future (a close date ahead) and one recycled-only person
    add("future@example.com", "mql", NOW + timedelta(days=3))
    add("recycled@example.com", "recycled", NOW - timedelta(days=2))
    add("deal:sf:orphan", "opportunity", NOW - timedelta(days=5), deal_id="orphan", amount=7.0)
    rng.shuffle(events)
    return events


def flatten(model: FunnelModel) -> dict[str, Any]:
    out: dict[str, Any] = {"people": model.people}
    for row in model.stages:
        out[f"count.{row.stage}"] = row.count
        if row.stage != "mql":
            out[f"conv.{row.stage}"] = row.conversion
            out[f"days.{row.stage}"] = row.median_days
    for loss in model.losses:
        out[f"loss.{loss.stage}"] = loss.count
        out[f"loss_rate.{loss.stage}"] = loss.rate
        out[f"top.{loss.stage}"] = loss.reasons[0][1] if loss.reasons else 0
    out["pipeline"] = model.pipeline
    out["won_amount"] = model.won_amount
    for row in model.breakdowns["source"]:
        out[f"source.{row.value}.mql"] = row.counts["mql"]
        out[f"source.{row.value}.won"] = row.counts["won"]
    for row in model.breakdowns["engagement"]:
        out[f"bucket.{row.value}.sal_rate"] = row.sal_rate
        out[f"bucket.{row.value}.win_rate"] = row.win_rate
    return out


@pytest.mark.parametrize("seed", range(8))
def test_model_matches_brute_force(seed: int) -> None:
    events = random_log(seed)
    model = build_funnel(events, generated_at=NOW)
    expected = brute_funnel(events, NOW)
    got = flatten(model)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value), key
        else:
            assert got[key] == value, key
    assert model.future_events == sum(1 for e in events if e.at > NOW) >= 1
    assert model.unattributed_deals == 1


def test_top_reasons_are_largest_first() -> None:
    events = [
        PersonEvent(
            key=f"r{i}",
            person=f"p{i}",
            stage="rejected",
            at=NOW - timedelta(days=1),
            origin="t",
            reason=r,
        )
        for i, r in enumerate(["a", "b", "b", "b", None, None])
    ]
    loss = next(x for x in build_funnel(events, generated_at=NOW).losses if x.stage == "rejected")
    assert loss.reasons == (("b", 3), ("(no valid reason)", 2), ("a", 1))
    assert loss.rate == 1.0


def test_period_selects_people_by_cohort() -> None:
    march = datetime(2026, 3, 10, tzinfo=UTC)
    events = [
        PersonEvent(key="1", person="a", stage="mql", at=march, origin="t"),
        PersonEvent(key="2", person="a", stage="won", at=march + timedelta(days=60), origin="t"),
        PersonEvent(key="3", person="b", stage="mql", at=march + timedelta(days=40), origin="t"),
    ]
    model = build_funnel(
        events,
        generated_at=NOW,
        since=datetime(2026, 3, 1, tzinfo=UTC),
        until=datetime(2026, 4, 1, tzinfo=UTC),
    )
    assert model.people == 1
    assert model.stage("won").count == 1  # won in May, counted in March's cohort
    assert model.stage("won").median_days is None  # no dated sal/sql/opportunity on the way
    assert model.mql_to_won_days == pytest.approx(60)
    assert [c.value for c in model.cohorts] == ["2026-03"]


@pytest.mark.parametrize(
    ("count", "bucket"),
    [(None, "(unknown)"), (0, "0"), (1, "1-2"), (2, "1-2"), (3, "3-5"), (5, "3-5"), (6, "6+")],
)
def test_engagement_buckets(count: int | None, bucket: str) -> None:
    assert engagement_bucket(count) == bucket


def test_reason_segments_do_not_replace_funnel_dimensions() -> None:
    """The reason capture's own "engagement" segment ("<1") must not hide the funnel's buckets."""
    at = NOW - timedelta(days=3)
    events = [
        PersonEvent(key="1", person="a", stage="mql", at=at, origin="t", engagement=4),
        PersonEvent(
            key="2",
            person="a",
            stage="rejected",
            at=at,
            origin="t",
            segments={"engagement": "<1", "industry": "Banking"},
        ),
    ]
    model = build_funnel(events, generated_at=NOW)
    assert [r.value for r in model.breakdowns["engagement"]] == ["3-5"]
    assert [r.value for r in model.breakdowns["industry"]] == ["Banking"]
