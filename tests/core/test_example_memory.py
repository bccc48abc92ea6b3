"""The worked example honours the connector contract the engine relies on."""

from __future__ import annotations

from datetime import timedelta

from crm_bridge.connector import Capability, Delete, Upsert
from crm_bridge.connectors.example_memory import MemoryBackend, MemoryConnector, MemorySettings


def make(page_size: int = 2) -> MemoryConnector:
    return MemoryConnector(MemorySettings(page_size=page_size, max_batch=10), name="mem")


def test_changes_stream_in_pages_oldest_first_and_respect_since() -> None:
    conn = make(page_size=2)
    ids = [conn.backend.create("contacts", {"email": f"p{i}@x.io"}) for i in range(5)]
    records = list(conn.changes("contacts", None))
    assert [r.id for r in records] == ids
    assert conn.calls["changes"] == 3  # 5 records in pages of 2
    since = records[2].modified_at
    assert [r.id for r in conn.changes("contacts", since)] == ids[2:]


def test_write_returns_one_result_per_input_in_order_with_rejects() -> None:
    conn = make()
    conn.backend.reject_when(lambda obj, f: "no students" if f.get("title") == "student" else None)
    results = conn.write(
        "contacts",
        [
            Upsert(key="a", fields={"email": "a@x.io"}),
            Upsert(key="b", fields={"email": "not-an-email"}),
            Upsert(key="c", fields={"email": "c@x.io", "title": "student"}),
            Upsert(key="d", fields={"email": "A@X.IO", "title": "cto"}, match_on="email"),
        ],
    )
    assert [r.key for r in results] == ["a", "b", "c", "d"]
    assert [r.ok for r in results] == [True, False, False, True]
    assert results[1].error is not None and "invalid email" in results[1].error
    assert results[2].error == "no students"
    assert results[3].id == results[0].id and not results[3].created  # matched by email
    assert conn.calls["write"] == 1


def test_deletes_and_merges_appear_in_the_change_stream() -> None:
    conn = make(page_size=50)
    keep = conn.backend.create("contacts", {"email": "k@x.io"})
    lose = conn.backend.create("contacts", {"email": "k2@x.io"})
    gone = conn.backend.create("contacts", {"email": "g@x.io"})
    conn.backend.merge("contacts", keep, lose)
    assert conn.write("contacts", [Delete(key="g", id=gone)])[0].ok
    by_id = {r.id: r for r in conn.changes("contacts", None)}
    assert by_id[lose].deleted and by_id[lose].merged_into == keep
    assert by_id[keep].merged_from == (lose,)
    assert by_id[gone].deleted and by_id[gone].modified_by == "integration"


def test_versions_and_timestamps_move_with_every_edit() -> None:
    backend = MemoryBackend()
    conn = MemoryConnector(MemorySettings(), name="mem", backend=backend)
    rid = backend.create("contacts", {"email": "v@x.io"})
    (first,) = conn.fetch("contacts", [rid, "missing"])
    backend.human_edit("contacts", rid, {"title": "VP"})
    (second,) = conn.fetch("contacts", [rid])
    assert int(second.version) > int(first.version)
    assert second.modified_at > first.modified_at


def test_capabilities_and_clock() -> None:
    assert Capability.MERGE_FEED in MemoryConnector.capabilities
    backend = MemoryBackend()
    a = backend.create("deals", {})
    backend.clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
    b = backend.create("deals", {})
    ra, rb = backend.to_record("deals", a), backend.to_record("deals", b)
    assert rb.modified_at - ra.modified_at > timedelta(minutes=59)
