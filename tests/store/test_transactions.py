"""Cursors and transaction semantics: outcomes and the cursor that covers them are one unit."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from crm_bridge.store import Store, StoreError

from .conftest import T0, FakeClock


class Boom(Exception):
    pass


def test_cursor_round_trip(store: Store, clock: FakeClock) -> None:
    with store.transaction() as tx:
        assert tx.get_cursor("p", "crm", "contact") is None
        tx.set_cursor("p", "crm", "contact", "2025-03-01T00:00:00Z")
        tx.set_cursor("p", "map", "contact", "offset:17")
    clock.advance(minutes=1)
    with store.transaction() as tx:
        tx.set_cursor("p", "crm", "contact", "2025-03-01T00:05:00Z")  # overwrite, not insert
        assert tx.get_cursor("p", "crm", "contact") == "2025-03-01T00:05:00Z"
        assert tx.get_cursor("p", "map", "contact") == "offset:17"
        assert tx.get_cursor("p", "crm", "deal") is None
        assert tx.summary()["pairs"]["p"]["cursors"] == 2
        with pytest.raises(ValueError):
            tx.set_cursor("p", "erp", "contact", "x")  # type: ignore[arg-type]


def test_rollback_discards_cursor_and_outcomes_together(store: Store) -> None:
    with store.transaction() as tx:
        tx.set_cursor("p", "crm", "contact", "old")
    with pytest.raises(Boom), store.transaction() as tx:
        tx.insert_link(
            "p",
            "contact",
            crm_id="A",
            map_id="a",
            crm_version=None,
            map_version=None,
        )
        tx.add_dead_letter(
            pair="p",
            side="map",
            obj="contact",
            record_key="B",
            operation="create",
            payload={},
            reason="400",
            error_code=None,
        )
        tx.set_cursor("p", "crm", "contact", "new")
        raise Boom
    with store.transaction() as tx:
        assert tx.get_cursor("p", "crm", "contact") == "old"
        assert tx.link_for("p", "contact", "crm", "A") is None
        assert tx.dead_letters() == []


def test_commit_is_visible_to_another_store(open_store: Callable[..., Store]) -> None:
    writer, reader = open_store(), open_store()
    with writer.transaction() as tx:
        tx.set_cursor("p", "crm", "contact", "c1")
        tx.insert_link(
            "p",
            "contact",
            crm_id="A",
            map_id="a",
            crm_version=None,
            map_version=None,
        )
    with reader.transaction(readonly=True) as tx:
        assert tx.get_cursor("p", "crm", "contact") == "c1"
        assert tx.count_links("p", "contact") == 1


def test_readonly_transaction_refuses_writes(store: Store) -> None:
    with pytest.raises(Exception, match=r"(?i)read.?only"), store.transaction(readonly=True) as tx:
        tx.set_cursor("p", "crm", "contact", "x")
    with store.transaction() as tx:  # the pooled connection is writable again
        tx.set_cursor("p", "crm", "contact", "y")
        assert tx.get_cursor("p", "crm", "contact") == "y"


def test_transactions_do_not_nest(store: Store) -> None:
    with store.transaction(), pytest.raises(StoreError, match="nest"), store.transaction():
        pass
    with store.transaction() as tx:  # and the guard resets afterwards
        assert tx.get_cursor("p", "crm", "contact") is None


def test_now_defaults_to_injected_clock(store: Store, clock: FakeClock) -> None:
    with store.transaction() as tx:
        link = tx.insert_link(
            "p",
            "contact",
            crm_id="A",
            map_id="a",
            crm_version=None,
            map_version=None,
        )
    assert link.created_at == T0
    assert clock.calls >= 1
