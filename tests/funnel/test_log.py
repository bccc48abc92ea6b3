"""The person event log on both backends: append-only, idempotent, derived from engine records."""

from __future__ import annotations

from datetime import timedelta

from crm_bridge.funnel.derive import derive_events
from crm_bridge.funnel.events import PersonEvent
from crm_bridge.funnel.model import build_funnel
from crm_bridge.funnel.people import PersonDirectory
from crm_bridge.funnel.repository import EventRepository
from crm_bridge.reasons.repository import ReasonRepository
from crm_bridge.sla.repository import SlaRepository
from crm_bridge.store import Store

from ..store.conftest import T0


def _event(key: str, stage: str, days: float, **kw: object) -> PersonEvent:
    return PersonEvent(
        key=key,
        person="ada@example.com",
        stage=stage,
        at=T0 + timedelta(days=days),
        origin="t",
        **kw,  # type: ignore[arg-type]
    )


def test_append_is_idempotent_and_round_trips(store: Store) -> None:
    events = [
        _event("a", "mql", 0, source="Web", engagement=3, segments={"industry": "Banking"}),
        _event("b", "opportunity", 5, deal_id="006A", amount=12500.5),
    ]
    with store.transaction() as tx:
        assert EventRepository(tx).append(events, now=T0) == 2
    with store.transaction() as tx:
        assert (
            EventRepository(tx).append([*events, _event("c", "won", 9, deal_id="006A")], now=T0)
            == 1
        )
    with store.transaction(readonly=True) as tx:
        back = EventRepository(tx).events()
    assert [e.key for e in back] == ["a", "b", "c"]
    assert back[0] == events[0]
    assert back[1].amount == 12500.5
    assert back[0].at.tzinfo is not None


def test_derived_from_audit_sla_and_reasons(store: Store) -> None:
    with store.transaction() as tx:
        link = tx.insert_link(
            "main",
            "leads",
            crm_id="00Q1",
            map_id="501",
            crm_version=None,
            map_version=None,
            identity="ada@example.com",
            now=T0,
        )
        tx.audit(
            "sync.person.converted",
            "00Q1",
            {
                "side": "crm",
                "link": link.id,
                "into": "003X",
                "at": (T0 + timedelta(days=4)).isoformat(),
                "account": "001A",
                "opportunity": "006A",
            },
            now=T0 + timedelta(days=4),
            pair="main",
        )
        sla = SlaRepository(tx)
        clock = sla.open_clock(
            now=T0,
            crm="sf",
            lead_id="00Q1",
            policy="p",
            team="t",
            rep="rick",
            owner_id="005R",
            assigned_at=T0,
            mql_at=T0,
            source="Web",
        )
        sla.update_clock(clock.id, now=T0, accepted_at=T0 + timedelta(days=1), accept_minutes=30)
        reasons = ReasonRepository(tx)
        for record, outcome, days in (("006A", "won", 20), ("00Q9", "lead_rejected", 2)):
            reasons.save_outcome(
                {
                    "source": "sf",
                    "object": "Opportunity" if outcome == "won" else "Lead",
                    "record_id": record,
                    "outcome": outcome,
                    "raw_code": "price",
                    "code": "price",
                    "has_note": False,
                    "status": "valid",
                    "owner_id": "005R",
                    "owner_name": "Rick",
                    "closed_at": T0 + timedelta(days=days),
                    "segments": {"industry": "Banking"},
                    "version": "1",
                },
                now=T0,
            )
    pairs = {"main": ("sf", "hs", ("leads",))}
    with store.transaction() as tx:
        events = derive_events(tx, pairs, PersonDirectory())
        assert EventRepository(tx).append(events, now=T0) == len(events) == 6
    with store.transaction() as tx:  # deriving again adds nothing
        assert EventRepository(tx).append(derive_events(tx, pairs, PersonDirectory()), now=T0) == 0
    by_stage = {e.stage: e for e in events}
    assert by_stage["sql"].person == by_stage["mql"].person == "ada@example.com"
    assert by_stage["won"].person == "ada@example.com"  # the deal the conversion created
    assert by_stage["rejected"].person == "sf:00Q9"
    with store.transaction(readonly=True) as tx:
        model = build_funnel(
            EventRepository(tx).events(),
            generated_at=T0 + timedelta(days=30),
            clocks=SlaRepository(tx).all_clocks("sf"),
        )
    assert [s.count for s in model.stages] == [2, 1, 1, 1, 1]
    assert model.stage("sal").median_days == 1
    assert model.stage("sql").median_days == 3
    assert model.breakdowns["industry"][0].value == "Banking"
    assert model.reps[0].rep == "rick" and model.reps[0].attainment == 1.0
