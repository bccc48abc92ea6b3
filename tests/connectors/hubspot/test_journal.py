"""HubSpotJournalFeed against the emulator's webhooks journal, over the socket.

People edit through hubspot-api-client with a portal user's token; crm-bridge writes through the
connector (a private-app token).  The connector's clock is a FakeClock linked to the emulator's,
so the feed's idle wait and a three-day expiry pass without sleeping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInputForCreate,
    PublicMergeInput,
    SimplePublicObjectBatchInputForCreate,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.deals import SimplePublicObjectInputForCreate as DealInput
from pydantic import SecretStr

from crm_bridge.config import load_config
from crm_bridge.connector import Capability, FeedBatch, Upsert
from crm_bridge.connectors.hubspot import HubSpotConnector, HubSpotSettings
from crm_bridge.connectors.hubspot.emulator import RunningHubSpot
from crm_bridge.connectors.hubspot.journal import START, HubSpotJournalFeed
from crm_bridge.errors import ConfigError
from tests.connectors.hubspot.conftest import (
    MakeConnector,
    assert_counts_match,
    oauth_refresh_token,
)

MARKETER = "mark.marketer@example.com"
WAIT = 15.0  # longer than journal_poll_seconds (10): every poll below really asks the journal


def journal_settings(hubspot: RunningHubSpot, **extra: Any) -> dict[str, Any]:
    return {
        "portal_id": hubspot.portal_id,
        "app_id": hubspot.app_id,
        "private_app_id": hubspot.private_app_id,
        "journal_client_id": hubspot.client_id,
        "journal_client_secret": SecretStr(hubspot.client_secret),
        **extra,
    }


@pytest.fixture
def conn(make_connector: MakeConnector, hubspot: RunningHubSpot) -> HubSpotConnector:
    return make_connector(**journal_settings(hubspot))


def opened(conn: HubSpotConnector, *objects: str) -> tuple[HubSpotJournalFeed, str]:
    feed = conn.change_feed(list(objects or ("contacts",)))
    assert isinstance(feed, HubSpotJournalFeed)
    start = feed.poll(None, timeout=0.0)
    assert start.position is not None and not start.hints and not start.lost
    return feed, start.position


def person(hubspot: RunningHubSpot) -> Any:
    return hubspot.client(access_token=hubspot.emulator.as_user(MARKETER))


def kinds(batch: FeedBatch) -> list[tuple[str, str, str, bool]]:
    return [(h.object, h.record_id, h.kind, h.ours) for h in batch.hints]


def test_the_connector_announces_the_feed_and_refuses_it_unconfigured(
    make_connector: MakeConnector,
) -> None:
    plain = make_connector()

    assert Capability.CHANGE_FEED in plain.capabilities
    with pytest.raises(ConfigError) as refused:
        plain.change_feed(["contacts"])
    for name in ("portal_id", "app_id", "journal_client_id", "journal_client_secret"):
        assert name in str(refused.value)
    assert sum(plain.calls.values()) == 0


def test_peoples_creates_updates_deletes_and_merges_become_hints(
    conn: HubSpotConnector, hubspot: RunningHubSpot
) -> None:
    feed, position = opened(conn, "contacts", "deals")
    api = person(hubspot).crm.contacts.basic_api
    keep = api.create(SimplePublicObjectInputForCreate(properties={"email": "k@x.io"})).id
    lose = api.create(SimplePublicObjectInputForCreate(properties={"email": "l@x.io"})).id
    api.update(keep, SimplePublicObjectInput(properties={"firstname": "Kim"}))
    api.merge(PublicMergeInput(primary_object_id=keep, object_id_to_merge=lose))
    gone = api.create(SimplePublicObjectInputForCreate(properties={"email": "g@x.io"})).id
    api.archive(gone)
    deal = person(hubspot).crm.deals.basic_api.create(DealInput(properties={"dealname": "D"})).id

    batch = feed.poll(position, timeout=WAIT)

    assert kinds(batch) == [
        ("contacts", keep, "upsert", False),
        ("contacts", lose, "upsert", False),
        ("contacts", keep, "upsert", False),
        ("contacts", keep, "merge", False),
        ("contacts", lose, "merge", False),
        ("contacts", gone, "upsert", False),
        ("contacts", gone, "delete", False),
        ("deals", deal, "upsert", False),
    ]
    assert not batch.lost and batch.position not in (None, position)
    assert len({h.event_id for h in batch.hints}) == len(batch.hints)
    assert feed.poll(batch.position, timeout=WAIT).hints == ()


def test_a_restore_from_the_recycle_bin_is_an_upsert_hint(
    conn: HubSpotConnector, hubspot: RunningHubSpot
) -> None:
    rid = (
        person(hubspot)
        .crm.contacts.basic_api.create(
            SimplePublicObjectInputForCreate(properties={"email": "r@x.io"})
        )
        .id
    )
    person(hubspot).crm.contacts.basic_api.archive(rid)
    feed, position = opened(conn)
    hubspot.control("POST", "restore", {"objectType": "contacts", "id": rid})

    assert kinds(feed.poll(position, timeout=WAIT)) == [("contacts", rid, "upsert", False)]


def test_our_own_writes_come_back_as_ours_and_a_batch_is_one_entry(
    conn: HubSpotConnector, hubspot: RunningHubSpot
) -> None:
    feed, position = opened(conn)
    results = conn.write(
        "contacts", [Upsert(key=str(i), fields={"email": f"o{i}@x.io"}) for i in range(3)]
    )
    before = dict(conn.calls)

    batch = feed.poll(position, timeout=WAIT)

    assert [h.record_id for h in batch.hints] == [str(r.id) for r in results]
    assert all(h.ours and h.kind == "upsert" for h in batch.hints)
    spent = {k: v - before.get(k, 0) for k, v in conn.calls.items() if v != before.get(k, 0)}
    # one entry: its "next" and its file, then the "next" that says nothing newer
    assert spent == {"journal": 2, "journal_files": 1}
    assert_counts_match(conn, hubspot)


def test_an_idle_poll_costs_one_call_per_interval(
    conn: HubSpotConnector, hubspot: RunningHubSpot
) -> None:
    feed, position = opened(conn)
    before = conn.calls["journal"]

    quick = [feed.poll(position, timeout=0.5) for _ in range(19)]  # 9.5 s: inside the interval
    assert conn.calls["journal"] == before
    late = feed.poll(position, timeout=0.5)  # 10 s since the last check: one call

    assert all(b.position == position and not b.hints for b in [*quick, late])
    assert conn.calls["journal"] == before + 1
    assert_counts_match(conn, hubspot)


def test_repeated_entries_and_reordered_events_give_each_hint_once_oldest_first(
    conn: HubSpotConnector, hubspot: RunningHubSpot
) -> None:
    feed, position = opened(conn)
    hubspot.control("POST", "journal", {"duplicate_next": 1, "reorder_next": 1})
    api = person(hubspot).crm.contacts
    made = api.batch_api.create(
        BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[
                SimplePublicObjectBatchInputForCreate(properties={"email": f"d{i}@x.io"})
                for i in range(3)
            ]
        )
    )

    batch = feed.poll(position, timeout=WAIT)

    assert sorted(h.record_id for h in batch.hints) == sorted(str(r.id) for r in made.results)
    ids = [int(h.event_id) for h in batch.hints]
    assert ids == sorted(ids)  # the entry held them newest first
    assert conn.calls["journal_files"] == 2  # both copies were read; the second added nothing


def test_an_expired_offset_is_lost_then_the_feed_resumes_from_the_newest_entry(
    conn: HubSpotConnector, hubspot: RunningHubSpot
) -> None:
    api = person(hubspot).crm.contacts.basic_api
    feed = conn.change_feed(["contacts"])
    feed.poll(None, timeout=0.0)  # subscribes
    api.create(SimplePublicObjectInputForCreate(properties={"email": "e0@x.io"}))
    position = feed.poll(None, timeout=0.0).position  # the offset of that entry
    assert position not in (None, START)
    api.create(SimplePublicObjectInputForCreate(properties={"email": "e1@x.io"}))
    hubspot.emulator.clock.advance(3 * 86400 + 60)  # the app token expired too: one refresh
    later = api.create(SimplePublicObjectInputForCreate(properties={"email": "e2@x.io"})).id

    lost = feed.poll(str(position), timeout=WAIT)
    assert lost.lost and not lost.hints
    assert lost.position not in (None, START, position)
    newest = api.create(SimplePublicObjectInputForCreate(properties={"email": "e3@x.io"})).id
    resumed = feed.poll(lost.position, timeout=WAIT)

    assert [h.record_id for h in resumed.hints] == [newest] and not resumed.lost
    assert later not in [h.record_id for h in resumed.hints]  # the poll carries that one
    assert conn.calls["auth"] == 2
    assert_counts_match_families(conn, hubspot)


def test_an_emptied_journal_resumes_from_its_earliest_entry(
    conn: HubSpotConnector, hubspot: RunningHubSpot
) -> None:
    feed, position = opened(conn)
    assert position == START  # nothing journaled yet
    api = person(hubspot).crm.contacts.basic_api
    first = api.create(SimplePublicObjectInputForCreate(properties={"email": "s1@x.io"})).id
    batch = feed.poll(position, timeout=WAIT)
    assert [h.record_id for h in batch.hints] == [first]
    hubspot.control("POST", "journal", {"expire_all": True})

    lost = feed.poll(batch.position, timeout=WAIT)
    second = api.create(SimplePublicObjectInputForCreate(properties={"email": "s2@x.io"})).id
    resumed = feed.poll(lost.position, timeout=WAIT)

    assert lost.lost and lost.position == START
    assert [h.record_id for h in resumed.hints] == [second]


def test_subscriptions_are_made_once_and_kept_across_restarts(
    make_connector: MakeConnector, hubspot: RunningHubSpot
) -> None:
    first = make_connector(**journal_settings(hubspot))
    opened(first, "contacts", "deals")
    again = make_connector(**journal_settings(hubspot))
    opened(again, "contacts", "deals")

    subs = hubspot.control("GET", "journal")["subscriptions"]
    assert sorted(s["objectTypeId"] for s in subs) == ["0-1", "0-3"]
    assert all(
        set(s["actions"]) == {"CREATE", "UPDATE", "DELETE", "MERGE", "RESTORE"} for s in subs
    )
    # list + two creates + latest, then list + latest: a restart writes nothing
    assert first.calls["journal"] == 4 and again.calls["journal"] == 2
    assert first.calls["auth"] == again.calls["auth"] == 1


def test_the_app_secret_never_shows(conn: HubSpotConnector, hubspot: RunningHubSpot) -> None:
    feed, _ = opened(conn)

    for shown in (repr(conn.settings), str(conn.settings), repr(feed.tokens), repr(feed)):
        assert hubspot.client_secret not in shown


def test_in_oauth_mode_the_app_reads_its_journal_and_knows_its_own_writes(
    make_connector: MakeConnector, hubspot: RunningHubSpot
) -> None:
    conn = make_connector(
        access_token=None,
        client_id=hubspot.client_id,
        client_secret=SecretStr(hubspot.client_secret),
        refresh_token=SecretStr(oauth_refresh_token(hubspot)),
        portal_id=hubspot.portal_id,
        app_id=hubspot.app_id,  # no journal_client_*: the OAuth app's credentials are used
    )
    feed, position = opened(conn)
    (ours,) = conn.write("contacts", [Upsert(key="a", fields={"email": "oauth@x.io"})])
    theirs = (
        person(hubspot)
        .crm.contacts.basic_api.create(
            SimplePublicObjectInputForCreate(properties={"email": "ui@x.io"})
        )
        .id
    )

    batch = feed.poll(position, timeout=WAIT)

    assert [(h.record_id, h.ours) for h in batch.hints] == [(ours.id, True), (theirs, False)]
    assert conn.calls["auth"] == 2  # the install's token and the app's own


def test_an_expired_file_url_is_asked_for_again_and_a_503_is_retried(
    conn: HubSpotConnector, hubspot: RunningHubSpot
) -> None:
    feed, position = opened(conn)
    rid = (
        person(hubspot)
        .crm.contacts.basic_api.create(
            SimplePublicObjectInputForCreate(properties={"email": "u@x.io"})
        )
        .id
    )
    hubspot.control("POST", "faults", {"path": "/webhooks-journal/files/.*", "status": 403})
    hubspot.control(
        "POST", "faults", {"path": "/webhooks-journal/journal/", "status": 503, "skip": 1}
    )
    before = dict(conn.calls)

    batch = feed.poll(position, timeout=WAIT)

    assert [h.record_id for h in batch.hints] == [rid] and not batch.lost
    spent = {k: v - before.get(k, 0) for k, v in conn.calls.items() if v != before.get(k, 0)}
    # earliest (the journal was empty at the start), file (403), earliest again for a fresh URL
    # (503, then resent), file, next (204)
    assert spent == {"journal": 4, "journal_files": 2}
    assert_counts_match_families(conn, hubspot)


def test_a_journal_429_waits_for_the_window_and_counts_every_send(
    conn: HubSpotConnector, hubspot: RunningHubSpot
) -> None:
    feed, position = opened(conn)
    hubspot.control("POST", "faults", {"path": "/webhooks-journal/journal/.*", "status": 429})
    slept = conn.client.clock.slept  # type: ignore[attr-defined]

    batch = feed.poll(position, timeout=WAIT)

    assert batch.hints == () and not batch.lost
    assert conn.client.clock.slept - slept >= 10.0  # type: ignore[attr-defined]
    assert_counts_match_families(conn, hubspot)


def assert_counts_match_families(conn: HubSpotConnector, hubspot: RunningHubSpot) -> None:
    server = hubspot.emulator.calls.snapshot()  # people's writes count there too: compare ours
    assert (conn.calls["journal"], conn.calls["journal_files"], conn.calls["auth"]) == (
        server.get("journal", 0),
        server.get("journal_files", 0),
        server.get("oauth", 0),
    )


def test_a_backlog_past_max_entries_skips_to_the_newest_and_asks_for_a_full_cycle(
    make_connector: MakeConnector, hubspot: RunningHubSpot
) -> None:
    conn = make_connector(**journal_settings(hubspot, journal_max_entries=2))
    api = person(hubspot).crm.contacts.basic_api
    feed = conn.change_feed(["contacts"])
    feed.poll(None, timeout=0.0)
    api.create(SimplePublicObjectInputForCreate(properties={"email": "b0@x.io"}))
    position = str(feed.poll(None, timeout=0.0).position)
    made = [
        api.create(SimplePublicObjectInputForCreate(properties={"email": f"b{i}@x.io"})).id
        for i in range(1, 6)
    ]
    before = conn.calls["journal"] + conn.calls["journal_files"]

    batch = feed.poll(position, timeout=WAIT)

    assert batch.lost and [h.record_id for h in batch.hints] == made[:2]
    # two entries (next + file each), then one "latest" instead of three more entries
    assert conn.calls["journal"] + conn.calls["journal_files"] - before == 5
    after = feed.poll(str(batch.position), timeout=WAIT)
    assert after.hints == () and not after.lost and after.position == batch.position


def test_a_dropped_entry_is_a_gap_the_feed_cannot_see_and_later_ones_still_come(
    conn: HubSpotConnector, hubspot: RunningHubSpot
) -> None:
    feed, position = opened(conn)
    hubspot.control("POST", "journal", {"drop_next": 1})
    api = person(hubspot).crm.contacts.basic_api
    api.create(SimplePublicObjectInputForCreate(properties={"email": "lost@x.io"}))
    kept = api.create(SimplePublicObjectInputForCreate(properties={"email": "kept@x.io"})).id

    batch = feed.poll(position, timeout=WAIT)

    # no offset shows the gap: only the safety poll brings the dropped create
    assert [h.record_id for h in batch.hints] == [kept] and not batch.lost


def test_the_journal_secret_comes_from_the_environment_never_the_toml(tmp_path: Path) -> None:
    toml = (
        '[connectors.hubspot]\ntype = "hubspot"\nportal_id = 1\napp_id = 2\n'
        'journal_client_id = "app"\n'
    )
    plain = tmp_path / "plain.toml"
    plain.write_text(toml + 'journal_client_secret = "SENTINEL-journal"\n')
    with pytest.raises(ConfigError) as refused:
        load_config(plain)
    (problem,) = [p for p in refused.value.problems if p.key.endswith("journal_client_secret")]
    assert problem.env_var == "CRM_BRIDGE_CONNECTORS__HUBSPOT__JOURNAL_CLIENT_SECRET"
    assert "SENTINEL-journal" not in str(refused.value)

    good = tmp_path / "good.toml"
    good.write_text(toml)
    secrets = tmp_path / "secrets.env"
    secrets.write_text(
        "CRM_BRIDGE_CONNECTORS__HUBSPOT__ACCESS_TOKEN=pat-x\n"
        "CRM_BRIDGE_CONNECTORS__HUBSPOT__JOURNAL_CLIENT_SECRET=SENTINEL-journal\n"
    )
    loaded = load_config(good, secrets_file=secrets)
    settings = loaded.connectors["hubspot"].settings
    assert isinstance(settings, HubSpotSettings) and settings.journal_missing() == []
    assert "SENTINEL-journal" in loaded.secret_values()
    assert "SENTINEL-journal" not in repr(settings)
