"""The connector against the Marketo emulator: feeds, deletes, merges, lists, activities, limits.

The kit (test_conformance.py) checks the contract; these pin down Marketo specifics: what an
idle or incremental cycle costs, that the three feeds interleave in time order, that the
instance's own 606 and 607 are handled as documented, and that our call counts are the
server's.
"""

from __future__ import annotations

import itertools

import pytest

from crm_bridge.connector import Delete, Upsert
from crm_bridge.connectors.marketo.emulator import RunningMarketo
from crm_bridge.errors import RateLimitedError
from tests.connectors.marketo.conftest import LinkedClock, MakeConnector, server_calls


def seed(marketo: RunningMarketo, n: int, prefix: str = "p") -> list[str]:
    rows = [{"email": f"{prefix}{i}@example.com", "firstName": f"F{i}"} for i in range(n)]
    return [str(i) for i in marketo.emulator.add_leads(rows)]


def test_an_idle_cycle_costs_three_calls_and_counts_match_the_server(
    marketo: RunningMarketo, make_connector: MakeConnector
) -> None:
    conn = make_connector()
    seed(marketo, 3)
    assert len(list(conn.changes("leads", None))) == 3
    marketo.emulator.clock.advance(60)
    since = marketo.emulator.clock.now()
    before = sum(conn.calls.values())
    assert list(conn.changes("leads", since)) == []
    # paging token + one page of lead changes + one page of deletions and merges
    assert sum(conn.calls.values()) - before == 3
    ours = {k: v for k, v in conn.calls.items() if v}
    assert ours == server_calls(marketo)


def test_an_incremental_cycle_reads_each_changed_lead_once_by_id(
    marketo: RunningMarketo, make_connector: MakeConnector
) -> None:
    conn = make_connector(page_size=300)
    ids = seed(marketo, 20)
    list(conn.changes("leads", None))
    marketo.emulator.clock.advance(30)
    since = marketo.emulator.clock.now()
    for rid in ids[:5]:
        for n in range(3):  # three edits each: 15 feed rows, 5 leads
            marketo.control("POST", f"leads/{rid}/edit", {"changes": {"firstName": f"E{n}"}})
    before = conn.calls.copy()
    got = list(conn.changes("leads", since))
    assert sorted(r.id for r in got) == sorted(ids[:5])
    assert all(r.fields["firstName"] == "E2" for r in got)
    spent = conn.calls - before
    assert spent["leads"] == 1 and spent["activities"] == 3


def test_deletes_and_merges_interleave_with_changes_in_time_order(
    marketo: RunningMarketo, make_connector: MakeConnector
) -> None:
    conn = make_connector(page_size=2)
    clock = marketo.emulator.clock
    ids = seed(marketo, 4)
    clock.advance(10)
    since = clock.now()
    inst = marketo.emulator.instance
    marketo.control("POST", f"leads/{ids[0]}/edit", {"changes": {"firstName": "A"}})
    clock.advance(5)
    with inst.lock:
        inst.delete_lead(inst.leads[int(ids[1])])
    clock.advance(5)
    with inst.lock:
        inst.merge(inst.leads[int(ids[2])], [inst.leads[int(ids[3])]])
    clock.advance(5)
    marketo.control("POST", f"leads/{ids[0]}/edit", {"changes": {"firstName": "B"}})
    got = list(conn.changes("leads", since))
    stamps = [r.modified_at for r in got]
    assert stamps == sorted(stamps)
    by_id = {r.id: r for r in got}
    assert by_id[ids[1]].deleted and by_id[ids[1]].merged_into is None
    assert by_id[ids[3]].deleted and by_id[ids[3]].merged_into == ids[2]
    assert by_id[ids[2]].merged_from == (ids[3],) and not by_id[ids[2]].deleted
    assert by_id[ids[0]].fields["firstName"] == "B"
    order = [r.id for r in got]
    assert order[0] == ids[1] and order[-1] == ids[0]
    assert set(order[1:3]) == {ids[2], ids[3]}  # one merge activity: the same instant


def test_only_watched_fields_make_a_lead_changed(
    marketo: RunningMarketo, make_connector: MakeConnector
) -> None:
    conn = make_connector(fields=["email", "firstName"])
    ids = seed(marketo, 2)
    marketo.emulator.clock.advance(10)
    since = marketo.emulator.clock.now()
    marketo.control("POST", f"leads/{ids[0]}/edit", {"changes": {"title": "CEO"}})
    marketo.control("POST", f"leads/{ids[1]}/edit", {"changes": {"firstName": "Z"}})
    assert [r.id for r in conn.changes("leads", since)] == [ids[1]]


def test_upsert_by_email_matches_case_insensitively_and_reads_back(
    marketo: RunningMarketo, make_connector: MakeConnector
) -> None:
    conn = make_connector()
    (a,) = conn.write("leads", [Upsert("a", {"email": "Mixed@Example.com"}, match_on="email")])
    (b,) = conn.write(
        "leads", [Upsert("b", {"email": "mixed@example.COM", "title": "VP"}, match_on="email")]
    )
    assert a.created and b.ok and not b.created and b.id == a.id
    assert a.id is not None
    (record,) = conn.fetch("leads", [a.id])
    assert record.fields["title"] == "VP" and record.version == record.fields["updatedAt"]
    (gone,) = conn.write("leads", [Delete("d", a.id, mode="hard")])
    (again,) = conn.write("leads", [Delete("d2", a.id, mode="hard")])
    assert gone.ok and again.error_code == "NOT_FOUND"


def test_lists_are_created_once_and_membership_round_trips(
    marketo: RunningMarketo, make_connector: MakeConnector
) -> None:
    conn = make_connector(page_size=2)
    ids = seed(marketo, 5)
    before = conn.calls["lists"]
    list_id = conn.ensure_list("Reason: price", "leads")
    assert conn.calls["lists"] - before == 2  # lookup by name, then the Asset API create
    assert conn.ensure_list("Reason: price", "leads") == list_id
    conn.add_to_list(list_id, [*ids, ids[0], "999999"])  # a repeat and an unknown lead: no error
    assert sorted(conn.list_members(list_id)) == sorted(ids)  # 3 pages of 2
    conn.remove_from_list(list_id, [ids[0], ids[0]])
    assert ids[0] not in set(conn.list_members(list_id))
    assert marketo.emulator.instance.lists[int(list_id)].name == "Reason: price"


def test_activities_are_content_engagement_only(
    marketo: RunningMarketo, make_connector: MakeConnector
) -> None:
    conn = make_connector()
    a, b = seed(marketo, 2)
    emu = marketo.emulator
    emu.record_activity(int(a), "fill_out_form", primaryAttributeValue="Demo request")
    emu.record_activity(int(a), "open_email", primaryAttributeValue="Newsletter")
    emu.record_activity(int(b), "visit_webpage", primaryAttributeValue="/pricing")
    emu.clock.advance(60)
    since = emu.clock.now()
    emu.record_activity(int(b), "click_link", primaryAttributeValue="whitepaper.pdf")
    found = list(conn.activities("leads", [a, b], None))
    assert sorted((x.record_id, x.subject) for x in found) == [
        (a, "Fill Out Form: Demo request"),
        (b, "Click Link: whitepaper.pdf"),
        (b, "Visit Webpage: /pricing"),
    ]
    assert {x.kind for x in found} == {"other"}
    later = list(conn.activities("leads", [a, b], since))
    assert [x.subject for x in later] == ["Click Link: whitepaper.pdf"]


def test_the_instance_606_is_waited_out_on_the_linked_clock(
    marketo: RunningMarketo, make_connector: MakeConnector
) -> None:
    marketo.emulator.configure(rate_limit_calls=3)  # another integration spends the rest
    clock = LinkedClock(marketo.emulator.clock)
    conn = make_connector(clock=clock)
    ids = seed(marketo, 1)
    for _ in range(4):
        list(conn.fetch("leads", ids))
    assert 20.0 in clock.sleeps


def test_our_window_keeps_us_under_the_instance_limit(
    marketo: RunningMarketo, make_connector: MakeConnector
) -> None:
    marketo.emulator.configure(rate_limit_calls=5)
    clock = LinkedClock(marketo.emulator.clock)
    conn = make_connector(clock=clock, rate_limit_calls=5)
    ids = seed(marketo, 1)
    for _ in range(12):
        list(conn.fetch("leads", ids))
    assert clock.sleeps, "12 calls in a 5-call window must have been paced"
    # never refused: a 606 would have been answered and resent, i.e. counted twice
    assert marketo.emulator.calls.snapshot()["leads"] == 13  # describe + 12 reads


def test_the_daily_quota_stops_the_cycle_without_a_retry_storm(
    marketo: RunningMarketo, make_connector: MakeConnector
) -> None:
    conn = make_connector()
    seed(marketo, 2)
    conn.check()
    marketo.emulator.configure(daily_used=50_000)
    before = marketo.emulator.calls.snapshot().get("activities", 0)
    with pytest.raises(RateLimitedError, match="daily API quota") as caught:
        list(conn.changes("leads", None))
    assert marketo.emulator.calls.snapshot().get("activities", 0) - before == 1
    assert caught.value.retry_after is not None and caught.value.retry_after > 0


@pytest.mark.parametrize("page_size", [1, 3])
def test_a_full_read_streams_every_lead_once_ascending(
    marketo: RunningMarketo, make_connector: MakeConnector, page_size: int
) -> None:
    conn = make_connector(page_size=page_size)
    ids = seed(marketo, 7)
    marketo.emulator.clock.advance(5)
    marketo.control("POST", f"leads/{ids[0]}/edit", {"changes": {"firstName": "late"}})
    got = list(conn.changes("leads", None))
    assert sorted(r.id for r in got) == sorted(ids) and got[-1].id == ids[0]
    assert all(a.modified_at <= b.modified_at for a, b in itertools.pairwise(got))
