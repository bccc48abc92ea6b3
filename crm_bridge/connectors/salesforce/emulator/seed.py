"""Deterministic, realistic seed data: users, accounts, leads, contacts, opportunities, roles.

Why realistic: sync bugs hide in real-world shapes -- several leads sharing an email in
different case, leads with no phone, reps owning different slices, opportunities spread across
every stage with contact roles.  Why direct inserts (no validation): seeding a million leads
must take seconds, and everything generated here is valid by construction.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from crm_bridge.connectors.hubspot.emulator.catalog import OWNERS as COMPANY_STAFF
from crm_bridge.connectors.hubspot.emulator.catalog import SALES_REPS, OwnerSeed
from crm_bridge.connectors.salesforce.emulator.schema import (
    LEAD_SOURCES,
    OPPORTUNITY_STAGES,
    Field,
)
from crm_bridge.connectors.salesforce.emulator.state import Org, Record
from crm_bridge.connectors.salesforce.emulator.values import format_datetime

__all__ = ["seed_org"]

FIRST = (
    "Ada",
    "Ben",
    "Chloe",
    "Diego",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Keira",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tara",
    "Umar",
    "Vera",
    "Wen",
    "Xavier",
    "Yara",
    "Zoe",
)
LAST = (
    "Abbott",
    "Bauer",
    "Castillo",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Huang",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Larsen",
    "Moreau",
    "Nakamura",
    "O'Brien",
    "Patel",
    "Quist",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Uddin",
    "Varga",
    "Weber",
    "Xu",
    "Young",
    "Zimmermann",
)
WORDS = (
    "Acme",
    "Blue",
    "Cedar",
    "Delta",
    "Ember",
    "Fjord",
    "Granite",
    "Harbor",
    "Iris",
    "Juniper",
    "Kestrel",
    "Lumen",
    "Maple",
    "North",
    "Orbit",
    "Pine",
    "Quartz",
    "River",
    "Summit",
    "Tidal",
    "Umber",
    "Vertex",
    "Willow",
    "Zenith",
)
SUFFIX = (
    "Labs",
    "Systems",
    "Logistics",
    "Health",
    "Analytics",
    "Foods",
    "Energy",
    "Media",
    "Robotics",
    "Capital",
    "Partners",
    "Software",
)
TITLES = (
    "CEO",
    "CTO",
    "VP Marketing",
    "VP Sales",
    "Head of Operations",
    "Marketing Manager",
    "IT Director",
    "Procurement Lead",
    "Data Engineer",
    "Office Manager",
    None,
)
STATUS_WEIGHTS = (
    ("Open - Not Contacted", 40),
    ("Working - Contacted", 25),
    ("Closed - Not Converted", 8),
    ("Accepted", 10),
    ("Rejected", 5),
    ("Recycled", 4),
    ("Closed - Converted", 8),
)
INDUSTRIES = (
    "Technology",
    "Healthcare",
    "Finance",
    "Retail",
    "Manufacturing",
    "Energy",
    "Media",
    "Education",
)
CAMPAIGNS = {
    "Web": ("Pricing guide", "Q3 webinar", "Product tour"),
    "Partner Referral": ("Partner summit",),
    "Phone Inquiry": ("Brand search",),
    "Purchased List": ("Trade show list",),
    "Other": ("Trade show", "Newsletter"),
}
"""Lead source -> the campaigns a lead of that source came from (``Campaign__c``)."""
CAMPAIGN_FIELD = "Campaign__c"

ROLES = ("Decision Maker", "Economic Buyer", "Evaluator", "Technical Buyer", "Influencer")


def _staff_user(
    org: Org,
    username: str,
    person: OwnerSeed,
    *,
    alias: str | None = None,
    manager_id: str | None = None,
) -> str:
    """The User of one of the company's people, reused when the org already has their e-mail.

    Why the HubSpot emulator's owners: a real company's sales reps are the same people, with the
    same work e-mail, in the CRM and in the marketing platform, and owner mapping matches them
    by e-mail.  Seeded apart, the two emulators shared no owner and a first sync dead-lettered
    nearly every owned record (``OWNER_NOT_FOUND``).  Usernames stay Salesforce-style and unique
    per seed (``rep1.0@crm-bridge.example``: a username is global across orgs, an e-mail is not);
    seeding again reuses the person's active User instead of adding a second one.
    """
    wanted = person.email.lower()
    for rec in org.stores["User"].records.values():
        if rec.get("IsActive") and str(rec.get("Email") or "").lower() == wanted:
            return str(rec["Id"])
    title = "Sales Manager" if manager_id is None else "Account Executive"
    return org.add_user(
        username,
        person.first_name,
        person.last_name,
        title=title,
        alias=alias,
        manager_id=manager_id,
        email=person.email,
    )


def seed_org(org: Org, *, leads: int, seed: int = 0) -> dict[str, int]:
    """Fill ``org`` (on top of what it holds); returns how many records of each kind."""
    rng = random.Random(seed)
    # A stream of its own: adding campaigns did not change any other seeded value.
    campaigns = random.Random(f"{seed}:campaign")
    if org.schema["Lead"].field(CAMPAIGN_FIELD) is None:
        # The custom field most orgs add for the campaign a lead came from (the reason report's
        # and the funnel's default campaign source).
        org.schema["Lead"].add_field(
            Field(CAMPAIGN_FIELD, "string", label="Campaign", length=255, custom=True)
        )
    now = org.clock.now()
    integ = org.integration_user_id
    manager_seed = next(o for o in COMPANY_STAFF if ".manager@" in o.email)
    manager = _staff_user(org, f"manager{seed}@crm-bridge.example", manager_seed)
    reps = [
        _staff_user(org, f"rep{i}.{seed}@crm-bridge.example", person, manager_id=manager)
        for i, person in enumerate(SALES_REPS, start=1)
    ]
    owners = [*reps, manager]
    statuses = [s for s, _ in STATUS_WEIGHTS]
    weights = [w for _, w in STATUS_WEIGHTS]
    stages = list(OPPORTUNITY_STAGES)

    def stamps(max_days: int) -> tuple[str, str]:
        created = now - timedelta(seconds=rng.randint(3600, max_days * 86400))
        modified = created + timedelta(seconds=rng.randint(0, int((now - created).total_seconds())))
        return format_datetime(created), format_datetime(modified)

    def base(obj: str, owner: str | None) -> Record:
        created, modified = stamps(90)
        rec: Record = {
            "Id": org.new_id(obj),
            "IsDeleted": False,
            "CreatedDate": created,
            "CreatedById": integ,
            "LastModifiedDate": modified,
            "LastModifiedById": rng.choice((integ, owner or integ)),
            "SystemModstamp": modified,
        }
        if owner is not None:
            rec["OwnerId"] = owner
        return rec

    n_accounts = max(3, leads // 10)
    accounts: list[tuple[str, str, str]] = []  # (id, name, domain)
    store = org.stores["Account"]
    for i in range(n_accounts):
        name = f"{WORDS[i % len(WORDS)]} {SUFFIX[(i // len(WORDS)) % len(SUFFIX)]}"
        if i >= len(WORDS) * len(SUFFIX):
            name += f" {i // (len(WORDS) * len(SUFFIX)) + 1}"
        domain = name.lower().replace(" ", "") + ".example"
        rec = base("Account", rng.choice(owners))
        rec.update(
            Name=name,
            Website=f"https://www.{domain}",
            Industry=rng.choice(INDUSTRIES),
            Type=rng.choice(("Prospect", "Customer - Direct", "Partner")),
            NumberOfEmployees=rng.choice((12, 45, 120, 800, 5000)),
        )
        org.put(store, rec)
        accounts.append((rec["Id"], name, domain))

    store = org.stores["Lead"]
    emails: list[str] = []
    for i in range(leads):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        _, company, domain = accounts[rng.randrange(len(accounts))]
        rec = base("Lead", rng.choice(owners))
        email = f"{first.lower()}.{last.lower().replace(chr(39), '')}{i}@{domain}"
        if emails and rng.random() < 0.02:  # a few duplicates, some differing only in case
            email = rng.choice(emails)
            email = email.upper() if rng.random() < 0.5 else email
        emails.append(email)
        rec.update(
            FirstName=first,
            LastName=last,
            Company=company,
            Email=email,
            Status=rng.choices(statuses, weights)[0],
            LeadSource=rng.choice(LEAD_SOURCES),
            HasOptedOutOfEmail=rng.random() < 0.05,
            DoNotCall=False,
            IsConverted=False,
        )
        came_from = CAMPAIGNS.get(rec["LeadSource"])
        if came_from and campaigns.random() < 0.8:
            rec[CAMPAIGN_FIELD] = campaigns.choice(came_from)
        title = rng.choice(TITLES)
        if title:
            rec["Title"] = title
        if rng.random() < 0.8:
            rec["Phone"] = f"+1 (415) 555-{rng.randrange(10000):04d}"
        org.put(store, rec)

    store = org.stores["Contact"]
    contacts_by_account: dict[str, list[str]] = {}
    for i in range(max(1, leads // 2)):
        acc_id, _, domain = accounts[rng.randrange(len(accounts))]
        first, last = rng.choice(FIRST), rng.choice(LAST)
        rec = base("Contact", rng.choice(owners))
        rec.update(
            FirstName=first,
            LastName=last,
            AccountId=acc_id,
            Email=f"{first.lower()}.{i}@{domain}",
            HasOptedOutOfEmail=False,
            LeadSource=rng.choice(LEAD_SOURCES),
        )
        if rng.random() < 0.7:
            rec["Title"] = rng.choice([t for t in TITLES if t])
        org.put(store, rec)
        contacts_by_account.setdefault(acc_id, []).append(rec["Id"])

    opp_store, role_store = org.stores["Opportunity"], org.stores["OpportunityContactRole"]
    n_opps = max(1, leads // 4)
    for i in range(n_opps):
        acc_id, acc_name, _ = accounts[rng.randrange(len(accounts))]
        stage = stages[i % len(stages)]
        prob, forecast, closed, won = OPPORTUNITY_STAGES[stage]
        rec = base("Opportunity", rng.choice(reps))
        close = now + timedelta(days=rng.randint(-60, 90))
        rec.update(
            Name=f"{acc_name} - {rng.choice(('Expansion', 'New Business', 'Renewal'))}",
            AccountId=acc_id,
            StageName=stage,
            CloseDate=close.date().isoformat(),
            Amount=float(rng.randrange(5, 500) * 1000),
            Probability=float(prob),
            ForecastCategoryName=forecast,
            IsClosed=closed,
            IsWon=won,
            LeadSource=rng.choice(LEAD_SOURCES),
        )
        org.put(opp_store, rec)
        pool = contacts_by_account.get(acc_id, [])
        for j, contact in enumerate(rng.sample(pool, min(len(pool), rng.randint(1, 2)))):
            role = base("OpportunityContactRole", None)
            role.update(
                OpportunityId=rec["Id"], ContactId=contact, Role=rng.choice(ROLES), IsPrimary=j == 0
            )
            org.put(role_store, role)
    counts: dict[str, Any] = {name: len(s.records) for name, s in org.stores.items()}
    return counts
