"""Timestamps: aware in, aware UTC out, naive refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from crm_bridge.store import Store

BERLIN_SUMMER = timezone(timedelta(hours=2))


def test_aware_datetimes_round_trip_as_utc(store: Store) -> None:
    local = datetime(2025, 7, 1, 9, 30, 15, 123456, tzinfo=BERLIN_SUMMER)
    with store.transaction() as tx:
        run_id = tx.start_run("p", local)
        tx.audit("k", "s", {}, now=local)
        tx.add_dead_letter(
            pair="p",
            side="crm",
            obj="contact",
            record_key="r",
            operation="update",
            payload={},
            reason="r",
            error_code=None,
            next_retry_at=local,
            now=local,
        )
    with store.transaction() as tx:
        (run,) = tx.last_runs()
        (entry,) = tx.audit_entries()
        (dl,) = tx.dead_letters()
    for value in (run.started_at, entry.at, dl.first_seen, dl.next_retry_at):
        assert value == local  # same instant, microseconds kept
        assert value is not None and value.tzinfo is not None
        assert value.utcoffset() == timedelta(0)
        assert value.hour == 7
    assert run.id == run_id


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(sa.exc.StatementError) as err, store.transaction() as tx:
        tx.start_run("p", datetime(2025, 1, 1))
    assert isinstance(err.value.orig, ValueError)
    assert "naive" in str(err.value)


def test_ordering_across_offsets(store: Store) -> None:
    """Stored values compare as instants, not as local wall times."""
    early_in_tokyo = datetime(2025, 1, 1, 8, 0, tzinfo=timezone(timedelta(hours=9)))  # 23:00Z
    late_in_utc = datetime(2024, 12, 31, 23, 30, tzinfo=UTC)
    with store.transaction() as tx:
        tx.audit("k", "later", {}, now=late_in_utc)
        tx.audit("k", "earlier", {}, now=early_in_tokyo)
        assert [e.subject for e in tx.audit_entries()] == ["earlier", "later"]
