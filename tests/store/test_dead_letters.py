"""Dead letters: upsert per open record, retry scheduling, status changes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from crm_bridge.store import DeadLetter, Store, StoreConflictError, StoreNotFoundError, StoreTx

from .conftest import T0, FakeClock


def _dl(tx: StoreTx, key: str = "501", **kw: object) -> DeadLetter:
    args: dict[str, object] = dict(
        pair="p",
        side="crm",
        obj="contact",
        record_key=key,
        operation="update",
        payload={"Email": "x@example.com"},
        reason="FIELD_CUSTOM_VALIDATION_EXCEPTION",
        error_code="400",
    )
    args.update(kw)
    return tx.add_dead_letter(**args)  # type: ignore[arg-type]


def test_same_open_record_increments_attempts(store: Store, clock: FakeClock) -> None:
    with store.transaction() as tx:
        first = _dl(tx)
        assert (first.attempts, first.first_seen, first.last_seen) == (1, T0, T0)
    later = clock.advance(minutes=10)
    retry_at = later + timedelta(minutes=5)
    with store.transaction() as tx:
        second = _dl(
            tx,
            reason="UNABLE_TO_LOCK_ROW",
            error_code=None,
            payload={"v": 2},
            next_retry_at=retry_at,
        )
        assert second.id == first.id
        assert second.attempts == 2
        assert (second.reason, second.error_code, dict(second.payload)) == (
            "UNABLE_TO_LOCK_ROW",
            None,
            {"v": 2},
        )
        assert (second.first_seen, second.last_seen, second.next_retry_at) == (T0, later, retry_at)
        assert len(tx.dead_letters()) == 1
        # a different side or object is a different item
        assert _dl(tx, side="map").id != first.id
        assert _dl(tx, obj="deal").id != first.id
        assert len(tx.dead_letters(pair="p")) == 3


def test_closed_items_do_not_absorb_new_failures(store: Store) -> None:
    with store.transaction() as tx:
        first = _dl(tx)
        tx.set_dead_letter_status(first.id, "replayed")
        again = _dl(tx)
        assert again.id != first.id and again.attempts == 1
        assert [d.id for d in tx.dead_letters(status=None)] == [first.id, again.id]
        assert tx.dead_letters(status="replayed")[0].id == first.id
        got = tx.dead_letter(first.id)
        assert got is not None and got.status == "replayed"
        assert tx.dead_letter(first.id + 999) is None
        with pytest.raises(StoreConflictError):
            tx.set_dead_letter_status(first.id, "open")  # would be a second open item
        tx.set_dead_letter_status(again.id, "dismissed")  # transaction still usable
        with pytest.raises(StoreNotFoundError):
            tx.set_dead_letter_status(first.id + 999, "dismissed")


def test_due_respects_next_retry_at_and_max_attempts(store: Store) -> None:
    now = T0 + timedelta(hours=1)
    with store.transaction() as tx:
        due_late = _dl(tx, "a", next_retry_at=now - timedelta(minutes=1))
        due_early = _dl(tx, "b", next_retry_at=now - timedelta(minutes=30))
        due_exact = _dl(tx, "c", next_retry_at=now)
        _dl(tx, "future", next_retry_at=now + timedelta(seconds=1))
        _dl(tx, "manual")  # no next_retry_at: never auto-retried
        _dl(tx, "other-pair", pair="q", next_retry_at=now - timedelta(hours=1))
        dismissed = _dl(tx, "dismissed", next_retry_at=now - timedelta(hours=1))
        tx.set_dead_letter_status(dismissed.id, "dismissed")
        for _ in range(2):  # "tired" has failed 3 times
            _dl(tx, "tired", next_retry_at=now - timedelta(hours=1))
        tired = _dl(tx, "tired", next_retry_at=now - timedelta(hours=1))
        assert tired.attempts == 3

        due = tx.due_dead_letters("p", now, max_attempts=3)
        assert [d.id for d in due] == [due_early.id, due_late.id, due_exact.id]
        assert tired.id in [d.id for d in tx.due_dead_letters("p", now, max_attempts=4)]
        assert len(tx.due_dead_letters("p", now, max_attempts=3, limit=1)) == 1


def test_listing_limit_and_order(store: Store) -> None:
    with store.transaction() as tx:
        ids = [_dl(tx, f"r{i}").id for i in range(5)]
        assert [d.id for d in tx.dead_letters(limit=3)] == ids[:3]
        assert tx.dead_letters(pair="nope") == []


def test_resolve_and_attempts_for_the_engine(store: Store, clock: FakeClock) -> None:
    with store.transaction() as tx:
        assert tx.dead_letter_attempts("p", "crm", "contact", "501") == 0
        _dl(tx)
        _dl(tx)
        other_side = _dl(tx, side="map")
        assert tx.dead_letter_attempts("p", "crm", "contact", "501") == 2
        later = clock.advance(hours=1)
        assert tx.resolve_dead_letters("p", "crm", "contact", "501") == 1
        assert tx.resolve_dead_letters("p", "crm", "contact", "501") == 0  # nothing open now
        assert tx.dead_letter_attempts("p", "crm", "contact", "501") == 0
        (closed,) = tx.dead_letters(status="replayed")
        assert closed.resolved_at == later and closed.attempts == 2
        assert [d.id for d in tx.dead_letters()] == [other_side.id]  # other side untouched
        assert other_side.resolved_at is None
        tx.set_dead_letter_status(closed.id, "open")  # re-open clears resolved_at
        reopened = tx.dead_letter(closed.id)
        assert reopened is not None and reopened.resolved_at is None


def test_resolve_for_a_batch_closes_only_that_sides_open_items(
    store: Store, clock: FakeClock
) -> None:
    with store.transaction() as tx:
        open_ = [_dl(tx, f"r{i}") for i in range(3)]
        other_side = _dl(tx, "r0", side="map")
        keys = [f"r{i}" for i in range(1_200)]  # more than one IN chunk
        assert tx.resolve_dead_letters_for("p", "crm", "contact", keys) == 3
        assert tx.resolve_dead_letters_for("p", "crm", "contact", keys) == 0
        assert {d.id for d in tx.dead_letters(status="replayed")} == {d.id for d in open_}
        assert [d.id for d in tx.dead_letters(status="open")] == [other_side.id]
