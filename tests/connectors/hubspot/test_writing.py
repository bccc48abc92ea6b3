from __future__ import annotations

from datetime import UTC, datetime

from crm_bridge.connector import Delete, Upsert, WriteOp, WriteResult
from crm_bridge.connectors.hubspot import HubSpotConnector
from crm_bridge.emulators.hubspot.emulator import RunningHubSpot
from tests.connectors.hubspot.conftest import add_contacts, assert_counts_match, server_calls

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _live_by_email(hubspot: RunningHubSpot) -> dict[str, dict[str, str]]:
    store = hubspot.emulator.portal.store("contacts")
    return {
        r.props["email"].lower(): dict(r.props) for r in store.live.values() if "email" in r.props
    }


def test_mixed_batch_results_in_input_order_and_good_records_land(
    hubspot: RunningHubSpot, connector: HubSpotConnector
) -> None:
    existing, doomed = add_contacts(hubspot.emulator, 2, start=T0, prefix="old")
    hubspot.emulator.calls.reset()
    ops: list[WriteOp] = [
        Upsert(key="u1", id=existing, fields={"firstname": "Renamed", "lastname": None}),
        Upsert(key="c1", fields={"email": "new1@example.com", "lifecyclestage": "lead"}),
        Upsert(
            key="bad-upsert",
            match_on="email",
            fields={"email": "bad@example.com", "lifecyclestage": "bogus"},
        ),
        Delete(key="d1", id=doomed),
        Upsert(key="m1", match_on="email", fields={"email": "m1@example.com", "firstname": "M"}),
        Upsert(key="bad-create", fields={"email": "new2@example.com", "lifecyclestage": "nope"}),
        Upsert(key="m2", match_on="email", fields={"email": "M2@example.com", "firstname": "N"}),
        Upsert(key="hard", id=existing, fields={}),
        Delete(key="hard-delete", id=existing, mode="hard"),
    ]

    results = connector.write("contacts", ops)

    assert [r.key for r in results] == [op.key for op in ops]
    by_key = {r.key: r for r in results}
    assert by_key["bad-upsert"].ok is False
    assert by_key["bad-upsert"].error_code == "INVALID_OPTION"
    assert "bogus" in (by_key["bad-upsert"].error or "")
    assert by_key["bad-create"].ok is False
    assert by_key["bad-create"].error_code == "INVALID_OPTION"
    assert by_key["hard-delete"].error_code == "UNSUPPORTED_DELETE_MODE"
    for key in ("u1", "c1", "d1", "m1", "m2", "hard"):
        assert by_key[key].ok, by_key[key]
    assert by_key["u1"].id == existing and by_key["u1"].created is False
    assert by_key["c1"].created is True and by_key["m1"].created is True
    live = _live_by_email(hubspot)
    assert live["old0@example.com"]["firstname"] == "Renamed"
    assert "lastname" not in live["old0@example.com"]  # None -> "" clears
    assert live["new1@example.com"]["lifecyclestage"] == "lead"
    assert live["m1@example.com"]["firstname"] == "M"
    assert live["m2@example.com"]["firstname"] == "N"
    assert "bad@example.com" not in live and "new2@example.com" not in live
    assert "old1@example.com" not in live
    assert by_key["c1"].id == str(
        hubspot.emulator.portal.store("contacts").by_email["new1@example.com"]
    )
    # update twice (the same id may not repeat in one batch), create (a 207 names the bad input),
    # upsert twice (a 400 names the bad value; the good two are resent), archive.
    assert server_calls(hubspot)["batch"] == 6
    assert_counts_match(connector, hubspot)


def test_upsert_by_email_creates_then_updates_and_never_duplicates(
    hubspot: RunningHubSpot, connector: HubSpotConnector
) -> None:
    first = connector.write(
        "contacts", [Upsert(key="a", match_on="email", fields={"email": "Ann@Example.com"})]
    )
    second = connector.write(
        "contacts",
        [Upsert(key="b", match_on="email", fields={"email": "ann@example.com", "firstname": "A"})],
    )

    assert first[0].ok and first[0].created is True
    assert second[0].ok and second[0].created is False
    assert second[0].id == first[0].id
    emails = [
        r.props["email"].lower() for r in hubspot.emulator.portal.store("contacts").live.values()
    ]
    assert emails.count("ann@example.com") == 1


def test_duplicate_keys_in_one_write_go_to_separate_batches_in_order(
    hubspot: RunningHubSpot, connector: HubSpotConnector
) -> None:
    (cid,) = add_contacts(hubspot.emulator, 1, start=T0)
    ops = [
        Upsert(key="1", id=cid, fields={"firstname": "First"}),
        Upsert(key="2", id=cid, fields={"firstname": "Second"}),
    ]

    results = connector.write("contacts", ops)

    assert all(r.ok for r in results)
    assert hubspot.emulator.portal.store("contacts").live[int(cid)].props["firstname"] == "Second"
    assert connector.calls["batch"] == 2


def test_150_writes_take_two_batch_calls(
    hubspot: RunningHubSpot, connector: HubSpotConnector
) -> None:
    ops = [
        Upsert(key=f"k{i}", match_on="email", fields={"email": f"w{i}@example.com"})
        for i in range(150)
    ]

    results = connector.write("contacts", ops)

    assert [r.key for r in results] == [op.key for op in ops]
    assert all(r.ok and r.created for r in results)
    ids = {r.id for r in results}
    assert len(ids) == 150
    store = hubspot.emulator.portal.store("contacts")
    assert all(
        store.live[int(r.id or 0)].props["email"] == f"w{i}@example.com"
        for i, r in enumerate(results)
    )
    assert server_calls(hubspot) == {"batch": 2, "total": 2}
    assert connector.calls["batch"] == 2


def test_creates_without_identity_map_back_by_content(
    hubspot: RunningHubSpot, connector: HubSpotConnector
) -> None:
    ops = [
        Upsert(key=f"d{i}", fields={"dealname": f"Deal {i}", "amount": i * 10}) for i in range(5)
    ]

    results = connector.write("deals", ops)

    store = hubspot.emulator.portal.store("deals")
    for i, result in enumerate(results):
        assert result.ok
        assert store.live[int(result.id or 0)].props["dealname"] == f"Deal {i}"


def test_unknown_update_ids_fail_alone_via_207(
    hubspot: RunningHubSpot, connector: HubSpotConnector
) -> None:
    (cid,) = add_contacts(hubspot.emulator, 1, start=T0)

    results = connector.write(
        "contacts",
        [
            Upsert(key="gone", id="424242", fields={"firstname": "X"}),
            Upsert(key="here", id=cid, fields={"firstname": "Y"}),
        ],
    )

    assert results[0] == WriteResult(
        key="gone",
        ok=False,
        error=results[0].error,
        error_code="OBJECT_NOT_FOUND",
    )
    assert results[1].ok and results[1].id == cid
    assert connector.calls["batch"] == 1


def test_a_property_that_does_not_exist_fails_its_records_without_halving(
    hubspot: RunningHubSpot, connector: HubSpotConnector
) -> None:
    ops = [
        Upsert(key=f"k{i}", match_on="email", fields={"email": f"x{i}@example.com", "nope": "1"})
        for i in range(8)
    ]
    ops.append(Upsert(key="fine", match_on="email", fields={"email": "fine@example.com"}))

    results = connector.write("contacts", ops)

    assert [r.error_code for r in results[:8]] == ["PROPERTY_DOESNT_EXIST"] * 8
    assert results[8].ok
    assert connector.calls["batch"] == 2


def test_expected_version_guards_updates(
    hubspot: RunningHubSpot, connector: HubSpotConnector
) -> None:
    (cid,) = add_contacts(hubspot.emulator, 1, start=T0)
    (record,) = list(connector.fetch("contacts", [cid]))

    ok = connector.write(
        "contacts",
        [Upsert(key="a", id=cid, fields={"firstname": "A"}, expected_version=record.version)],
    )
    stale = connector.write(
        "contacts",
        [Upsert(key="b", id=cid, fields={"firstname": "B"}, expected_version=record.version)],
    )

    assert ok[0].ok
    assert stale[0].ok is False and stale[0].error_code == "STALE"
    assert hubspot.emulator.portal.store("contacts").live[int(cid)].props["firstname"] == "A"
