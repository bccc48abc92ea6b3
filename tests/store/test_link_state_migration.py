"""Migration 0005: links written in the old in-band encoding keep their meaning as typed state."""

from __future__ import annotations

import sqlalchemy as sa

from crm_bridge.store import PendingWrite, Store

from .conftest import T0, engine_at


def test_old_sentinels_become_states(store_url: str) -> None:
    engine = engine_at(store_url, "0004")
    rows = [
        # id, crm_id, map_id, crm_version, map_version, synced
        (1, "C1", "M1", "v1", "w1", {"crm": {"e": "a"}, "map": {"e": "a"}}),
        (2, "C2", "M2", "v2", None, {"crm": {"e": "b"}, "map": {"e": "b", "~pending": ["e"]}}),
        (3, "C3", "M3", "", "w3", {"crm": {"e": "c"}, "map": {"e": "c"}}),
        (4, "C4", None, "v4", None, {"crm": {"e": "d"}, "map": {"e": "d", "~pending": ["e"]}}),
        (5, "C5", "M5", None, "w5", {"crm": {"e": "f", "owner": None}, "map": {"e": "f"}}),
    ]
    links = sa.table(
        "links",
        *(
            sa.column(c)
            for c in ("id", "pair", "object", "crm_id", "map_id", "crm_version", "map_version")
        ),
        sa.column("synced", sa.JSON()),
        sa.column("status"),
        sa.column("created_at", sa.DateTime()),
        sa.column("updated_at", sa.DateTime()),
    )
    stamp = T0.replace(tzinfo=None) if engine.dialect.name == "sqlite" else T0
    with engine.begin() as conn:
        conn.execute(
            sa.insert(links),
            [
                {
                    "id": i,
                    "pair": "p",
                    "object": "people",
                    "crm_id": c,
                    "map_id": m,
                    "crm_version": cv,
                    "map_version": mv,
                    "synced": synced,
                    "status": "active",
                    "created_at": stamp,
                    "updated_at": stamp,
                }
                for i, c, m, cv, mv, synced in rows
            ],
        )
    engine.dispose()

    with Store.open(store_url) as store, store.transaction(readonly=True) as tx:
        got = {link.id: link for link in tx.iter_links("p", "people")}
        columns = {c["name"] for c in sa.inspect(store.engine).get_columns("links")}
    assert "crm_hash" not in columns and "map_hash" not in columns
    plain = got[1]
    assert (plain.crm_state, plain.map_state, plain.crm_pending, plain.map_pending) == (
        "synced",
        "synced",
        None,
        None,
    )
    unconfirmed = got[2]
    assert unconfirmed.map_state == "written" and unconfirmed.crm_state == "synced"
    assert unconfirmed.map_pending == PendingWrite(frozenset({"e"}), {})
    assert dict(unconfirmed.synced["map"]) == {"e": "b"}  # no sentinel key left in the JSON
    survivor = got[3]
    assert (survivor.crm_state, survivor.crm_version) == ("synced", None)
    creating = got[4]
    assert creating.map_state == "creating" and creating.map_pending is not None
    assert creating.map_pending.fields == {"e"}
    legacy = got[5]  # unconfirmed before writes listed their fields
    assert legacy.crm_state == "written" and legacy.crm_pending == PendingWrite(
        frozenset({"e"}), {}
    )
    assert dict(legacy.synced["crm"]) == {"e": "f"}  # the unwritten owner is adopted on read
