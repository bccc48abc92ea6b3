"""Capture, validation, push and list expiry on both emulators through the real clients."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from crm_bridge.connectors.hubspot import HubSpotConnector
from crm_bridge.connectors.hubspot.emulator.emulator import RunningHubSpot
from crm_bridge.connectors.salesforce import SalesforceConnector
from crm_bridge.connectors.salesforce.emulator import RunningSalesforce
from crm_bridge.reasons import install
from crm_bridge.reasons.capture import PersonLinks, ReasonCapture, person_links
from crm_bridge.reasons.repository import ReasonRepository
from crm_bridge.store import Store

from .conftest import TAXONOMY_V2, reasons_settings

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def _contacts_by_email(hubspot: RunningHubSpot) -> dict[str, dict[str, str]]:
    store = hubspot.emulator.portal.store("contacts")
    return {
        rec.props["email"]: dict(rec.props) for rec in store.live.values() if rec.props.get("email")
    }


def _list_members(hubspot: RunningHubSpot, name: str) -> set[str]:
    lst = hubspot.emulator.portal.lists.by_name("0-1", name)
    assert lst is not None, f"no list {name!r}"
    return {str(i) for i in lst.members}


def _tasks(client: Any) -> list[dict[str, Any]]:
    return list(client.query_all("SELECT Id, WhatId, WhoId, Subject, OwnerId FROM Task")["records"])


def _opportunity(client: Any, account: str, name: str, reason: str | None, **extra: Any) -> str:
    body = {
        "Name": name,
        "AccountId": account,
        "StageName": "Closed Lost",
        "CloseDate": "2026-03-02",
        **extra,
    }
    if reason is not None:
        body["Win_Loss_Reason__c"] = reason
    return str(client.Opportunity.create(body)["id"])


def _contact(client: Any, account: str, last: str, email: str | None) -> str:
    body = {"LastName": last, "AccountId": account}
    if email:
        body["Email"] = email
    return str(client.Contact.create(body)["id"])


LINKS = PersonLinks("main", "leads")


def _link(store: Store, hubspot: RunningHubSpot, crm_id: str, email: str, **props: str) -> str:
    """What the sync does for a person: a HubSpot contact linked to the CRM record (its id)."""
    found = hubspot.emulator.portal.find("contacts", email, "email")
    if found is None:
        hub = hubspot.client().crm.contacts.basic_api.create(
            {"properties": {"email": email, "lastname": "Synced", **props}}
        )
        map_id = str(hub.id)
    else:
        map_id = str(found.id)
    with store.transaction() as tx:
        tx.insert_link(
            "main", "leads", crm_id=crm_id, map_id=map_id, crm_version=None, map_version=None
        )
    return map_id


def _capture(settings: Any, sf: Any, hs: Any, store: Store, **kwargs: Any) -> ReasonCapture:
    return ReasonCapture(
        settings, crm=sf, marketing=hs, store=store, now=lambda: T0, links=LINKS, **kwargs
    )


def _role(client: Any, opp: str, contact: str) -> None:
    client.OpportunityContactRole.create({"OpportunityId": opp, "ContactId": contact})


def test_closed_lost_pushes_to_every_contact_role_and_flags_invalid_ones(
    sf: SalesforceConnector,
    hs: HubSpotConnector,
    store: Store,
    salesforce: RunningSalesforce,
    hubspot: RunningHubSpot,
) -> None:
    client = salesforce.simple_salesforce()
    account = client.Account.create(
        {"Name": "Acme", "Industry": "Banking", "NumberOfEmployees": 120}
    )["id"]
    # Closed before the taxonomy existed: no reason at all.
    legacy = client.Opportunity.create(
        {
            "Name": "Legacy",
            "AccountId": account,
            "StageName": "Closed Lost",
            "CloseDate": "2026-01-05",
        }
    )["id"]
    settings = reasons_settings()
    install.apply(settings, crm=sf, marketing=hs)

    ann = _contact(client, account, "Ann", "ann@acme.test")
    bob = _contact(client, account, "Bob", "bob@acme.test")
    cat = _contact(client, account, "Cat", "cat@acme.test")
    zed = _contact(client, account, "Zed", "zed@acme.test")  # not synced (yet): no link
    hubspot.client().crm.contacts.basic_api.create(
        {"properties": {"email": "ann@acme.test", "lifecyclestage": "opportunity"}}
    )
    for crm_id, email in ((ann, "ann@acme.test"), (bob, "bob@acme.test"), (cat, "cat@acme.test")):
        _link(store, hubspot, crm_id, email)
    lost = _opportunity(client, account, "Lost on price", "price", LeadSource="Web")
    _role(client, lost, ann)
    _role(client, lost, bob)
    _role(client, lost, zed)
    wrong = _opportunity(client, account, "Wrong category", "relationship")
    _role(client, wrong, cat)
    lead = client.Lead.create(
        {
            "LastName": "Dee",
            "Company": "Tiny",
            "Email": "dee@tiny.test",
            "Status": "Rejected",
            "Rejection_Reason__c": "not_icp",
        }
    )["id"]
    _link(store, hubspot, lead, "dee@tiny.test")

    capture = _capture(settings, sf, hs, store)
    report = capture.run_cycle()

    assert report.counts["captured"] == 4
    assert report.counts["valid"] == 2
    assert report.counts["missing"] == 1
    assert report.counts["wrong_category"] == 1
    assert report.counts["flagged"] == 2
    assert report.counts["pushed"] == 2
    assert report.counts["dead_lettered"] == 0
    assert report.counts["not_linked"] == 1  # Zed

    people = _contacts_by_email(hubspot)
    for email in ("ann@acme.test", "bob@acme.test"):
        assert people[email]["last_loss_reason"] == "price"
        assert people[email]["last_loss_reason_date"] == "2026-03-02"
    assert people["ann@acme.test"]["lifecyclestage"] == "opportunity"  # existing contact updated
    assert people["dee@tiny.test"]["last_rejection_reason"] == "not_icp"
    assert "last_loss_reason" not in people["cat@acme.test"]  # invalid reason: nothing pushed
    assert "zed@acme.test" not in people  # never a marketing record made from an e-mail
    ids = {e: str(hubspot.emulator.portal.find("contacts", e, "email").id) for e in people}  # type: ignore[union-attr]
    assert _list_members(hubspot, "Lost \u2013 Price") == {
        ids["ann@acme.test"],
        ids["bob@acme.test"],
    }
    assert _list_members(hubspot, "Rejected \u2013 Not our ICP") == {ids["dee@tiny.test"]}

    tasks = _tasks(client)
    assert {t["WhatId"] for t in tasks} == {legacy, wrong}
    by_what = {t["WhatId"]: t["Subject"] for t in tasks}
    assert "no reason was chosen" in by_what[legacy]
    assert "explains a won outcome" in by_what[wrong]

    with store.transaction(readonly=True) as tx:
        rows = {r.record_id: r for r in ReasonRepository(tx).all_outcomes()}
    assert rows[lost].segments["industry"] == "Banking"
    assert rows[lost].segments["company_size"] == "50-249"
    assert rows[lost].segments["lead_source"] == "Web"
    assert rows[lost].segments["lifecycle_path"] == "opportunity"
    assert rows[lead].outcome == "lead_rejected"
    assert rows[legacy].status == "missing" and rows[legacy].task_id is not None

    # A second cycle re-reads nothing new: no new task, no new push.
    again = _capture(settings, sf, hs, store).run_cycle()
    assert again.counts["captured"] == 0
    assert again.counts["flagged"] == 0
    assert len(_tasks(client)) == 2

    # The rep fixes the wrong reason: the next cycle pushes it, and raises no task.
    client.Opportunity.update(wrong, {"Win_Loss_Reason__c": "competitor"})
    fixed = _capture(settings, sf, hs, store).run_cycle()
    assert fixed.counts["valid"] == 1 and fixed.counts["pushed"] == 1
    assert _contacts_by_email(hubspot)["cat@acme.test"]["last_loss_reason"] == "competitor"
    assert len(_tasks(client)) == 2


def test_deprecated_code_is_mapped_counted_flagged_and_pushed(
    sf: SalesforceConnector,
    hs: HubSpotConnector,
    store: Store,
    salesforce: RunningSalesforce,
    hubspot: RunningHubSpot,
) -> None:
    install.apply(reasons_settings(), crm=sf, marketing=hs)
    client = salesforce.simple_salesforce()
    account = client.Account.create({"Name": "Acme"})["id"]
    opp = _opportunity(client, account, "Old", "no_budget")
    ann = _contact(client, account, "Ann", "ann@acme.test")
    _link(store, hubspot, ann, "ann@acme.test")
    _role(client, opp, ann)
    v2 = reasons_settings(TAXONOMY_V2)
    install.apply(v2, crm=sf, marketing=hs)

    report = _capture(v2, sf, hs, store).run_cycle()
    assert report.counts["deprecated"] == 1
    assert report.counts["flagged"] == 1
    assert report.counts["pushed"] == 1
    assert _contacts_by_email(hubspot)["ann@acme.test"]["last_loss_reason"] == "price"
    (task,) = _tasks(client)
    assert "retired" in task["Subject"]
    with store.transaction(readonly=True) as tx:
        (row,) = ReasonRepository(tx).all_outcomes()
    assert (row.raw_code, row.code, row.status) == ("no_budget", "price", "deprecated")


def test_a_person_the_sync_has_not_linked_is_skipped_not_created(
    sf: SalesforceConnector,
    hs: HubSpotConnector,
    store: Store,
    salesforce: RunningSalesforce,
    hubspot: RunningHubSpot,
) -> None:
    """Unlinked people (with or without an e-mail) get no write and no dead letter: an upsert by
    e-mail used to create a HubSpot contact holding only the address, which the next sync then
    dead-lettered (``REQUIRED_FIELD_MISSING``)."""
    settings = reasons_settings()
    install.apply(settings, crm=sf, marketing=hs)
    client = salesforce.simple_salesforce()
    account = client.Account.create({"Name": "Acme"})["id"]
    opp = _opportunity(client, account, "Lost", "competitor")
    _role(client, opp, _contact(client, account, "NoMail", None))
    _role(client, opp, _contact(client, account, "New", "new@acme.test"))
    eve = _contact(client, account, "Eve", "eve@acme.test")
    _link(store, hubspot, eve, "eve@acme.test")
    _role(client, opp, eve)
    before = set(_contacts_by_email(hubspot))

    report = _capture(settings, sf, hs, store).run_cycle()
    assert report.counts["pushed"] == 1
    assert report.counts["people_updated"] == 1
    assert report.counts["not_linked"] == 2
    assert report.counts["dead_lettered"] == 0
    with store.transaction(readonly=True) as tx:
        assert tx.dead_letters(pair="reasons") == []
    assert set(_contacts_by_email(hubspot)) == before  # no contact created
    assert _contacts_by_email(hubspot)["eve@acme.test"]["last_loss_reason"] == "competitor"


def test_an_outcome_that_reached_nobody_is_pushed_once_its_people_are_linked(
    sf: SalesforceConnector,
    hs: HubSpotConnector,
    store: Store,
    salesforce: RunningSalesforce,
    hubspot: RunningHubSpot,
) -> None:
    settings = reasons_settings()
    install.apply(settings, crm=sf, marketing=hs)
    client = salesforce.simple_salesforce()
    account = client.Account.create({"Name": "Acme"})["id"]
    opp = _opportunity(client, account, "Lost", "price")
    fay = _contact(client, account, "Fay", "fay@acme.test")
    _role(client, opp, fay)
    first = _capture(settings, sf, hs, store).run_cycle()
    assert first.counts["reached_nobody"] == 1 and first.counts["pushed"] == 0

    _link(store, hubspot, fay, "fay@acme.test")
    client.Opportunity.update(opp, {"Description": "touched after the sync linked Fay"})
    second = _capture(settings, sf, hs, store).run_cycle()
    assert second.counts["pushed"] == 1
    assert _contacts_by_email(hubspot)["fay@acme.test"]["last_loss_reason"] == "price"


def test_marketing_deals_push_to_associated_contacts(
    sf: SalesforceConnector, hs: HubSpotConnector, store: Store, hubspot: RunningHubSpot
) -> None:
    settings = reasons_settings(
        marketing_fields={"capture_deals": True}, crm_fields={"validation_rules": False}
    )
    install.apply(settings, crm=sf, marketing=hs)
    api = hubspot.client()
    a = api.crm.contacts.basic_api.create({"properties": {"email": "a@x.test"}}).id
    b = api.crm.contacts.basic_api.create({"properties": {"email": "b@x.test"}}).id
    deal = api.crm.deals.basic_api.create(
        {
            "properties": {
                "dealname": "Won",
                "dealstage": "closedwon",
                "pipeline": "default",
                "crm_bridge_deal_reason": "product_fit",
                "closedate": "2026-03-05T00:00:00Z",
            }
        }
    ).id
    api.crm.associations.v4.batch_api.create_default(
        "deals",
        "contacts",
        {"inputs": [{"from": {"id": deal}, "to": {"id": c}} for c in (a, b)]},
    )
    report = ReasonCapture(settings, crm=sf, marketing=hs, store=store, now=lambda: T0).run_cycle()
    assert report.counts["pushed"] == 1 and report.counts["people_updated"] == 2
    people = _contacts_by_email(hubspot)
    assert people["a@x.test"]["last_win_reason"] == "product_fit"
    assert people["b@x.test"]["last_win_reason_date"] == "2026-03-05"
    assert _list_members(hubspot, "Won \u2013 Product fit") == {str(a), str(b)}


def test_list_membership_expires_after_n_days(
    sf: SalesforceConnector,
    hs: HubSpotConnector,
    store: Store,
    salesforce: RunningSalesforce,
    hubspot: RunningHubSpot,
) -> None:
    settings = reasons_settings()  # list_expiry_days = 30
    install.apply(settings, crm=sf, marketing=hs)
    client = salesforce.simple_salesforce()
    account = client.Account.create({"Name": "Acme"})["id"]
    opp = _opportunity(client, account, "Lost", "price")
    ann = _contact(client, account, "Ann", "ann@acme.test")
    _link(store, hubspot, ann, "ann@acme.test")
    _role(client, opp, ann)
    clock = {"now": T0}
    capture = ReasonCapture(
        settings, crm=sf, marketing=hs, store=store, now=lambda: clock["now"], links=LINKS
    )
    capture.run_cycle()
    assert len(_list_members(hubspot, "Lost \u2013 Price")) == 1

    clock["now"] = T0 + timedelta(days=29)
    assert capture.run_cycle().counts["list_expired"] == 0
    assert len(_list_members(hubspot, "Lost \u2013 Price")) == 1

    clock["now"] = T0 + timedelta(days=30, seconds=1)
    assert capture.run_cycle().counts["list_expired"] == 1
    assert _list_members(hubspot, "Lost \u2013 Price") == set()
    # The property stays (it is history); only the re-targeting window closed.
    assert _contacts_by_email(hubspot)["ann@acme.test"]["last_loss_reason"] == "price"
    assert capture.run_cycle().counts["list_expired"] == 0


def test_a_linked_person_is_pushed_by_the_syncs_link_not_by_e_mail(
    sf: SalesforceConnector,
    hs: HubSpotConnector,
    store: Store,
    salesforce: RunningSalesforce,
    hubspot: RunningHubSpot,
) -> None:
    """The sync linked the CRM contact to a HubSpot contact with another address: the reason
    lands on that contact (by id), not on a new or wrong record found by the CRM's e-mail."""
    settings = reasons_settings()
    install.apply(settings, crm=sf, marketing=hs)
    client = salesforce.simple_salesforce()
    account = client.Account.create({"Name": "Acme"})["id"]
    fay = _contact(client, account, "Fay", "fay@work.test")
    hub = (
        hubspot.client()
        .crm.contacts.basic_api.create({"properties": {"email": "fay@home.test"}})
        .id
    )
    with store.transaction() as tx:
        tx.insert_link(
            "main", "leads", crm_id=fay, map_id=str(hub), crm_version=None, map_version=None
        )
    opp = _opportunity(client, account, "Lost", "competitor")
    _role(client, opp, fay)

    report = ReasonCapture(
        settings,
        crm=sf,
        marketing=hs,
        store=store,
        now=lambda: T0,
        links=PersonLinks("main", "leads"),
    ).run_cycle()
    assert report.counts["people_updated"] == 1
    contacts = _contacts_by_email(hubspot)
    assert contacts["fay@home.test"]["last_loss_reason"] == "competitor"
    assert "fay@work.test" not in contacts  # no second record made from the CRM's address


def test_person_links_finds_the_pair_syncing_these_connectors_people() -> None:
    from crm_bridge.sync.mapping import PairSettings

    settings = reasons_settings()
    pairs = {
        "other": PairSettings.model_validate({"crm": "x", "map": settings.marketing}),
        "main": PairSettings.model_validate(
            {"crm": settings.crm, "map": settings.marketing, "preset": "hubspot_salesforce"}
        ),
    }
    assert person_links(pairs, settings) == PersonLinks("main", "leads")
    assert person_links({"other": pairs["other"]}, settings) is None


def test_outcomes_not_pushed_still_get_marketing_segments_through_links(
    sf: SalesforceConnector,
    hs: HubSpotConnector,
    store: Store,
    salesforce: RunningSalesforce,
    hubspot: RunningHubSpot,
) -> None:
    """A lead rejected without a reason is not pushed, yet its segments come from marketing."""
    client = salesforce.simple_salesforce()
    settings = reasons_settings()
    # Rejected before the taxonomy (and its validation rule) existed: no reason at all.
    lead = client.Lead.create(
        {"LastName": "Eve", "Company": "Late", "Email": "eve@late.test", "Status": "Rejected"}
    )["id"]
    install.apply(settings, crm=sf, marketing=hs)
    contact = hubspot.client().crm.contacts.basic_api.create(
        {"properties": {"email": "eve@late.test", "lifecyclestage": "salesqualifiedlead"}}
    )
    with store.transaction() as tx:
        tx.insert_link(
            "main",
            "leads",
            crm_id=lead,
            map_id=str(contact.id),
            crm_version=None,
            map_version=None,
            now=T0,
        )

    report = _capture(settings, sf, hs, store).run_cycle()

    assert report.counts["missing"] == 1 and report.counts["pushed"] == 0
    with store.transaction(readonly=True) as tx:
        row = ReasonRepository(tx).outcomes_for("sf", "Lead", [lead])[lead]
    assert row.segments["lifecycle_path"] == "salesqualifiedlead"


def test_plan_reports_flags_and_pushes_and_writes_nothing(
    sf: SalesforceConnector,
    hs: HubSpotConnector,
    store: Store,
    salesforce: RunningSalesforce,
    hubspot: RunningHubSpot,
) -> None:
    settings = reasons_settings()
    client = salesforce.simple_salesforce()
    account = client.Account.create({"Name": "Acme"})["id"]
    blank = _opportunity(client, account, "No reason", None)  # before the rule refuses that
    install.apply(settings, crm=sf, marketing=hs)
    ann = _contact(client, account, "Ann", "ann@acme.test")
    map_id = _link(store, hubspot, ann, "ann@acme.test")
    lost = _opportunity(client, account, "Lost", "price")
    _role(client, lost, ann)
    lists_before = len(hubspot.emulator.portal.lists.lists)

    plan = _capture(settings, sf, hs, store, plan=True).run_cycle()

    assert plan.counts["would_push"] == 1 and plan.counts["people_would_update"] == 1
    assert plan.counts["would_flag"] == 1
    assert plan.pushes == [f"Opportunity {lost}: price -> {map_id}"]
    assert any(blank in line and "no reason was chosen" in line for line in plan.flagged)
    # Nothing written anywhere: no task, no property, no list, no outcome, no cursor.
    assert _tasks(client) == []
    assert "last_loss_reason" not in _contacts_by_email(hubspot)["ann@acme.test"]
    assert len(hubspot.emulator.portal.lists.lists) == lists_before
    with store.transaction(readonly=True) as tx:
        assert ReasonRepository(tx).all_outcomes() == []
        assert tx.get_cursor("reasons", "crm", "Opportunity") is None

    real = _capture(settings, sf, hs, store).run_cycle()  # the plan left the cursor alone
    assert real.counts["pushed"] == 1 and real.counts["flagged"] == 1
    assert _contacts_by_email(hubspot)["ann@acme.test"]["last_loss_reason"] == "price"


def test_outcomes_closed_before_the_install_are_ignored_by_default(
    sf: SalesforceConnector,
    hs: HubSpotConnector,
    store: Store,
    salesforce: RunningSalesforce,
    hubspot: RunningHubSpot,
) -> None:
    """The first run on an existing org leaves history alone: a deal closed on an earlier day is
    skipped, one closed on the install day (a date, no time) is kept; ``since`` overrides."""
    from crm_bridge.reasons.repository import installed_at, record_install

    settings = reasons_settings()
    client = salesforce.simple_salesforce()
    account = client.Account.create({"Name": "Acme"})["id"]
    old = _opportunity(client, account, "Old", None, CloseDate="2026-03-09")
    today = _opportunity(client, account, "Today", None, CloseDate=T0.date().isoformat())
    install.apply(settings, crm=sf, marketing=hs)
    with store.transaction() as tx:
        record_install(tx, version=1, changes=15, now=T0)
        record_install(tx, version=2, changes=3, now=T0 + timedelta(days=5))
    with store.transaction(readonly=True) as tx:
        assert installed_at(tx) == T0  # the first install counts

    default = _capture(settings, sf, hs, store, plan=True).run_cycle()
    assert default.counts["before_since"] == 1
    assert [line.split(":")[0] for line in default.flagged] == [f"Opportunity {today}"]

    everything = _capture(settings, sf, hs, store, since=datetime(2026, 1, 1, tzinfo=UTC))
    report = everything.run_cycle()
    assert report.counts["before_since"] == 0 and report.counts["flagged"] == 2
    assert {t["WhatId"] for t in _tasks(client)} == {old, today}
