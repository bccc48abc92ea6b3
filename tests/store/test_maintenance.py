"""reset_pair and summary (``crm-bridge state reset`` / ``state show``)."""

from __future__ import annotations

from crm_bridge.store import DecisionIn, LinkIn, Store

from .conftest import T0


def _fill(store: Store, pair: str) -> int:
    with store.transaction() as tx:
        made = tx.insert_links(pair, "contact", [LinkIn("A", "a"), LinkIn("B", "b")])
        tx.mark_link(made[0].id, "merged", merged_into=made[1].id)
        tx.set_cursor(pair, "crm", "contact", "c")
        tx.set_cursor(pair, "map", "contact", "m")
        tx.add_dead_letter(
            pair=pair,
            side="crm",
            obj="contact",
            record_key="x",
            operation="create",
            payload={},
            reason="r",
            error_code=None,
        )
        run_id = tx.start_run(pair, T0)
        tx.log_decision(
            DecisionIn(
                pair=pair,
                obj="contact",
                field="f",
                crm_value=1,
                map_value=2,
                rule="r",
                winner="crm",
                at=T0,
                run_id=run_id,
                link_id=made[1].id,
            )
        )
        tx.audit("sla.reminder", "lead", {}, now=T0, pair=pair)
        return made[1].id


def test_reset_pair_forgets_state_but_keeps_history(store: Store) -> None:
    _fill(store, "p")
    _fill(store, "q")
    with store.transaction() as tx:
        assert tx.reset_pair("p") == {"links": 2, "cursors": 2, "dead_letters": 1}
    with store.transaction() as tx:
        assert tx.count_links("p", "contact", status=None) == 0
        assert tx.get_cursor("p", "crm", "contact") is None
        assert tx.dead_letters(pair="p") == []
        (decision,) = tx.decisions(pair="p")
        assert decision.link_id is None  # history survives, pointer cleared
        assert len(tx.last_runs("p")) == 1 and len(tx.audit_entries(pair="p")) == 1
        # the other pair is untouched
        assert tx.count_links("q", "contact", status=None) == 2
        assert tx.get_cursor("q", "crm", "contact") == "c"
        assert tx.decisions(pair="q")[0].link_id is not None
        assert tx.reset_pair("nope") == {"links": 0, "cursors": 0, "dead_letters": 0}


def test_summary_counts_per_pair(store: Store) -> None:
    _fill(store, "p")
    with store.transaction() as tx:
        tx.audit("system.start", "crm-bridge", {}, now=T0)
    with store.transaction(readonly=True) as tx:
        summary = tx.summary()
    assert summary["revision"] == store.schema_revision()
    assert summary["pairs"] == {
        "p": {
            "links": {"active": 1, "merged": 1},
            "cursors": 2,
            "dead_letters": {"open": 1},
            "runs": 1,
            "decisions": 1,
            "audit_log": 1,
        }
    }
    assert summary["audit_log_without_pair"] == 1
