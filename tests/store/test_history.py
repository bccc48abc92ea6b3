"""Runs, conflict decisions and the audit log."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest

from crm_bridge.store import DecisionIn, Store, StoreNotFoundError

from .conftest import T0


def test_run_lifecycle_and_ordering(store: Store) -> None:
    with store.transaction() as tx:
        r1 = tx.start_run("p", T0)
        r2 = tx.start_run("q", T0 + timedelta(minutes=1))
        r3 = tx.start_run("p", T0 + timedelta(minutes=2))
        tx.finish_run(
            r1,
            status="ok",
            counts={"created": 3, "skipped_echo": 2},
            calls={"salesforce": 4, "hubspot": 2},
            error=None,
            now=T0 + timedelta(seconds=30),
        )
        tx.finish_run(
            r3,
            status="failed",
            counts={},
            calls={"hubspot": 1},
            error="HubSpot 503",
            now=T0 + timedelta(minutes=3),
        )
        with pytest.raises(ValueError):
            tx.finish_run(r2, status="running", counts={}, calls={}, error=None, now=T0)
        with pytest.raises(StoreNotFoundError):
            tx.finish_run(r3 + 100, status="ok", counts={}, calls={}, error=None, now=T0)
    with store.transaction() as tx:
        runs = tx.last_runs()
        assert [r.id for r in runs] == [r3, r2, r1]
        assert [r.id for r in tx.last_runs("p", limit=1)] == [r3]
        ok = runs[2]
        assert ok.status == "ok" and dict(ok.counts) == {"created": 3, "skipped_echo": 2}
        assert dict(ok.calls) == {"salesforce": 4, "hubspot": 2}
        assert ok.finished_at == T0 + timedelta(seconds=30)
        assert runs[0].error == "HubSpot 503"
        assert runs[1].status == "running" and runs[1].finished_at is None


def test_decisions_round_trip_json_values(store: Store) -> None:
    with store.transaction() as tx:
        run_id = tx.start_run("p", T0)
        link = tx.insert_link(
            "p",
            "contact",
            crm_id="A",
            map_id="a",
            crm_version=None,
            map_version=None,
        )
        first = DecisionIn(
            pair="p",
            obj="contact",
            field="Phone",
            crm_value="+1 555",
            map_value=None,
            rule="newest_wins",
            winner="crm",
            at=T0,
            run_id=run_id,
            link_id=link.id,
            crm_modified_at=T0,
            map_modified_at=T0 - timedelta(days=1),
        )
        tx.log_decision(first)
        tx.log_decisions(
            [
                DecisionIn(
                    pair="p",
                    obj="contact",
                    field="Tags",
                    crm_value=["a", "b"],
                    map_value={"n": 1.5},
                    rule="crm_wins",
                    winner="crm",
                    at=T0,
                ),
                DecisionIn(
                    pair="q",
                    obj="deal",
                    field="Amount",
                    crm_value=10,
                    map_value=12,
                    rule="map_wins",
                    winner="map",
                    at=T0,
                ),
            ]
        )
    with store.transaction() as tx:
        newest_first = tx.decisions()
        assert [d.field for d in newest_first] == ["Amount", "Tags", "Phone"]
        assert [d.field for d in tx.decisions(pair="p")] == ["Tags", "Phone"]
        (d,) = tx.decisions(link_id=link.id)
        assert (d.crm_value, d.map_value, d.run_id, d.rule) == (
            "+1 555",
            None,
            run_id,
            "newest_wins",
        )
        assert d.map_modified_at == T0 - timedelta(days=1)
        tags = newest_first[1]
        assert (tags.crm_value, tags.map_value, tags.link_id) == (["a", "b"], {"n": 1.5}, None)
        assert len(tx.decisions(limit=2)) == 2


def test_audit_is_time_ordered_and_filterable(store: Store) -> None:
    with store.transaction() as tx:
        # appended out of time order; same timestamp keeps insertion order
        tx.audit("sla.breach", "lead-1", {"hours": 25}, now=T0 + timedelta(hours=25), pair="p")
        tx.audit("sla.reminder", "lead-1", {"n": 1}, now=T0 + timedelta(hours=4), pair="p")
        tx.audit("sla.reminder", "lead-1", {"n": 2}, now=T0 + timedelta(hours=4), pair="p")
        tx.audit("sla_x.other", "lead-1", {}, now=T0)
        tx.audit("reason.pushed", "opp-9", {"code": "price"}, now=T0)
    with store.transaction() as tx:
        lead = tx.audit_entries(subject="lead-1")
        assert [(e.kind, dict(e.data)) for e in lead] == [
            ("sla_x.other", {}),
            ("sla.reminder", {"n": 1}),
            ("sla.reminder", {"n": 2}),
            ("sla.breach", {"hours": 25}),
        ]
        sla = tx.audit_entries(kind_prefix="sla.")  # "." and "_" are not wildcards
        assert [e.kind for e in sla] == ["sla.reminder", "sla.reminder", "sla.breach"]
        assert [e.subject for e in tx.audit_entries(kind_prefix="reason")] == ["opp-9"]
        assert len(tx.audit_entries(pair="p")) == 3
        assert len(tx.audit_entries(limit=2)) == 2
        assert lead[0].pair is None and lead[1].pair == "p"
        assert lead[1].at.tzinfo is not None and lead[1].at.utcoffset() == UTC.utcoffset(None)
