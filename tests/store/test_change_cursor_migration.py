"""Migration 0006: timestamp sync cursors become keyset cursors; SLA and reason cursors stay."""

from __future__ import annotations

import sqlalchemy as sa

from crm_bridge.store import ChangeCursor, Store

from .conftest import T0, engine_at


def test_old_cursors_move_to_typed_rows(store_url: str) -> None:
    engine = engine_at(store_url, "0005")
    cursors = sa.table(
        "cursors", *(sa.column(c) for c in ("pair", "side", "object", "value", "updated_at"))
    )
    stamp = T0.replace(tzinfo=None) if engine.dialect.name == "sqlite" else T0
    rows = [
        ("main", "crm", "leads", "2026-01-02T03:04:05+00:00"),
        ("main", "map", "leads", "2026-01-02T03:04:06.500000+00:00#settled"),
        ("sla:main", "crm", "Lead", "2026-01-01T00:00:00+00:00"),
        ("reasons", "crm", "Opportunity", "2026-01-01T00:00:00+00:00"),
    ]
    with engine.begin() as conn:
        conn.execute(
            sa.insert(cursors),
            [
                {"pair": p, "side": s, "object": o, "value": v, "updated_at": stamp}
                for p, s, o, v in rows
            ],
        )
    engine.dispose()

    with Store.open(store_url) as store, store.transaction(readonly=True) as tx:
        crm = tx.get_change_cursor("main", "crm", "leads")
        hub = tx.get_change_cursor("main", "map", "leads")
        assert tx.get_cursor("main", "crm", "leads") is None  # moved, not copied
        assert tx.get_cursor("sla:main", "crm", "Lead") == "2026-01-01T00:00:00+00:00"
        assert tx.get_cursor("reasons", "crm", "Opportunity") is not None
        assert tx.get_change_cursor("sla:main", "crm", "Lead") is None
    assert crm is not None and crm.phase == "overlap"
    assert crm.newest[0].isoformat() == "2026-01-02T03:04:05+00:00"
    # Both old phases re-read the overlap once: it costs reads, and the suffix carried no id.
    assert hub == ChangeCursor((crm.newest[0].replace(second=6, microsecond=500000), ""), "overlap")


def test_keyset_cursor_round_trips(store: Store) -> None:
    scanning = ChangeCursor((T0, "00Q1"), "scanning", position=(T0, "00Q0"), found_newer=True)
    with store.transaction() as tx:
        tx.set_change_cursor("p", "crm", "people", scanning)
        assert tx.get_change_cursor("p", "crm", "people") == scanning
        settled = ChangeCursor((T0, "00Q9"), "settled")
        tx.set_change_cursor("p", "crm", "people", settled)  # an update, not a second row
        assert tx.get_change_cursor("p", "crm", "people") == settled
        assert tx.summary()["pairs"]["p"]["cursors"] == 1
        assert tx.reset_pair("p")["cursors"] == 1
        assert tx.get_change_cursor("p", "crm", "people") is None
