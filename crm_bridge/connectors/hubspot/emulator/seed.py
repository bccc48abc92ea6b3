"""Deterministic, realistic portal data: companies, contacts, deals and first-touch engagements.

Why it writes straight into the stores: seeding a million contacts through validation and the
HTTP layer would take minutes; here each record is one dict built from shared pool strings, and
the 10,000-result search test seeds in well under a second.  The shape follows a real B2B
portal: most contacts are early in the funnel, sales reps own the qualified ones, some contacts
are near-duplicates (same person, other address), and deals sit across the default pipeline.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from crm_bridge.connectors.hubspot.emulator.catalog import DEFAULT_PIPELINE, SALES_REPS
from crm_bridge.connectors.hubspot.emulator.state import Portal, Record

__all__ = ["SeedSummary", "seed_portal"]

DAY_MS = 86_400_000

FIRST = (
    "Ada",
    "Ben",
    "Chloe",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jon",
    "Kara",
    "Luis",
    "Mei",
    "Nora",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tara",
    "Umar",
    "Vera",
    "Wen",
    "Xavi",
    "Yara",
    "Zoe",
)
LAST = (
    "Adams",
    "Baker",
    "Chen",
    "Diaz",
    "Evans",
    "Fischer",
    "Garcia",
    "Hughes",
    "Ito",
    "Jensen",
    "Khan",
    "Lopez",
    "Martin",
    "Novak",
    "Okoro",
    "Patel",
    "Quist",
    "Rossi",
    "Silva",
    "Tanaka",
    "Ueda",
    "Varga",
    "Weber",
    "Xu",
    "Young",
    "Zimmer",
)
COMPANY_A = (
    "Blue",
    "Bright",
    "Cedar",
    "Delta",
    "Ember",
    "Granite",
    "Harbor",
    "Iron",
    "Juniper",
    "Lumen",
    "Maple",
    "North",
    "Orbit",
    "Pioneer",
    "Quartz",
    "River",
)
COMPANY_B = (
    "Analytics",
    "Logistics",
    "Health",
    "Robotics",
    "Foods",
    "Energy",
    "Labs",
    "Systems",
    "Media",
    "Finance",
    "Retail",
    "Software",
)
INDUSTRIES = (
    "COMPUTER_SOFTWARE",
    "HOSPITAL_HEALTH_CARE",
    "LOGISTICS_AND_SUPPLY_CHAIN",
    "FINANCIAL_SERVICES",
    "RETAIL",
    "FOOD_BEVERAGES",
)
TITLES = (
    "VP Marketing",
    "Marketing Manager",
    "Head of Operations",
    "CTO",
    "Engineer",
    "Procurement Lead",
    "CFO",
    "Sales Director",
    "Analyst",
    "Founder",
)
STAGES = (
    ("subscriber", 30),
    ("lead", 30),
    ("marketingqualifiedlead", 15),
    ("salesqualifiedlead", 10),
    ("opportunity", 8),
    ("customer", 6),
    ("other", 1),
)
SOURCES = (
    ("ORGANIC_SEARCH", 30),
    ("PAID_SEARCH", 15),
    ("EMAIL_MARKETING", 12),
    ("SOCIAL_MEDIA", 10),
    ("REFERRALS", 10),
    ("DIRECT_TRAFFIC", 15),
    ("OFFLINE", 5),
    ("PAID_SOCIAL", 3),
)
STATUS_BY_STAGE = {
    "subscriber": ("NEW",),
    "lead": ("NEW", "OPEN", "ATTEMPTED_TO_CONTACT"),
    "marketingqualifiedlead": ("OPEN", "ATTEMPTED_TO_CONTACT", "IN_PROGRESS"),
    "salesqualifiedlead": ("IN_PROGRESS", "CONNECTED", "BAD_TIMING"),
    "opportunity": ("OPEN_DEAL",),
    "customer": ("CONNECTED",),
    "other": ("UNQUALIFIED",),
}
OWNED_STAGES = {"marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer"}
LOSS_REASONS = ("Price too high", "Chose a competitor", "No budget", "Timing", "No decision")
WIN_REASONS = ("Best integration", "Price", "Existing relationship")


@dataclass(frozen=True)
class SeedSummary:
    """How many records of each kind were written."""

    companies: int
    contacts: int
    deals: int
    engagements: int


def _weighted(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


def seed_portal(portal: Portal, *, contacts: int, seed: int = 0) -> SeedSummary:
    """Add ``contacts`` contacts (and companies, deals, engagements around them)."""
    rng = random.Random(seed)
    # A stream of its own, so adding funnel history did not change any other seeded value.
    history = random.Random(f"{seed}:funnel")
    now = portal.now_ms()
    with portal.lock:
        company_ids = _companies(portal, rng, max(1, contacts // 8), now)
        n_deals = n_eng = 0
        people = portal.store("contacts")
        dup_every = 50  # ~2% near-duplicates
        for i in range(contacts):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            company_id = rng.choice(company_ids)
            company = portal.store("companies").live[company_id]
            if i % dup_every == dup_every - 1 and people.ids:
                twin = people.live[people.ids[-1]]
                first = twin.props["firstname"]
                last = twin.props["lastname"]
                email = f"{first}{last}{i}@gmail.example".lower()
            else:
                email = f"{first}.{last}{i}@{company.props['domain']}".lower()
            stage = _weighted(rng, STAGES)
            created = now - rng.randint(DAY_MS, 365 * DAY_MS)
            updated = rng.randint(created, now - 1000)
            props = {
                "email": email,
                "firstname": first,
                "lastname": last,
                "company": company.props["name"],
                "jobtitle": rng.choice(TITLES),
                "phone": f"+1 555 {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
                "lifecyclestage": stage,
                "hs_lead_status": rng.choice(STATUS_BY_STAGE[stage]),
                "hs_analytics_source": _weighted(rng, SOURCES),
            }
            props.update(
                _funnel_history(history, stage, props["hs_analytics_source"], created, now)
            )
            owner = None
            if stage in OWNED_STAGES:
                owner = rng.choice(SALES_REPS)
                props["hubspot_owner_id"] = str(owner.owner_id)
            rec = Record(portal.new_id(), props, created, updated)
            people.add(rec)
            portal.associations.link("contacts", rec.id, "companies", company_id, (279, 1))
            if stage in ("opportunity", "customer") or (
                stage == "salesqualifiedlead" and rng.random() < 0.2
            ):
                _deal(portal, rng, rec, company, stage, now)
                n_deals += 1
            if owner is not None and rng.random() < 0.5:
                _touch(portal, rng, rec, owner.owner_id, now)
                n_eng += 1
        for store in portal.stores.values():
            store.ensure_order()
    return SeedSummary(len(company_ids), contacts, n_deals, n_eng)


LIFECYCLE_ORDER = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
)
ENGAGEMENT_BY_STAGE = {
    "subscriber": (0, 1),
    "lead": (0, 3),
    "marketingqualifiedlead": (1, 6),
    "salesqualifiedlead": (1, 8),
    "opportunity": (2, 10),
    "customer": (3, 14),
    "other": (0, 2),
}
CAMPAIGNS = {
    "ORGANIC_SEARCH": ("Pricing guide", "Integration docs", "Blog: lead SLAs"),
    "PAID_SEARCH": ("Brand search", "Competitor search"),
    "EMAIL_MARKETING": ("Monthly newsletter", "Webinar invite"),
    "SOCIAL_MEDIA": ("LinkedIn webinar", "Product launch"),
    "REFERRALS": ("Partner summit",),
    "PAID_SOCIAL": ("LinkedIn webinar",),
    "OFFLINE": ("Trade show",),
}


def _funnel_history(
    rng: random.Random, stage: str, source: str, created: int, now: int
) -> dict[str, str]:
    """What HubSpot calculates for a contact: stage entry dates, form fills, campaign.

    Each stage from MQL up to the contact's current one gets an entry date, later than the one
    before and never in the future; more advanced contacts filled in more forms (which is what
    makes "win rate by engagement" worth a chart).
    """
    out: dict[str, str] = {}
    low, high = ENGAGEMENT_BY_STAGE.get(stage, (0, 2))
    out["num_conversion_events"] = str(rng.randint(low, high))
    campaigns = CAMPAIGNS.get(source)
    if campaigns and rng.random() < 0.85:
        out["hs_analytics_source_data_1"] = rng.choice(campaigns)
    if stage not in LIFECYCLE_ORDER:
        return out
    at = created
    for step in LIFECYCLE_ORDER[2 : LIFECYCLE_ORDER.index(stage) + 1]:
        at = min(now - 1000, at + rng.randint(0, 25 * DAY_MS))
        out[f"hs_v2_date_entered_{step}"] = str(at)
    return out


def _companies(portal: Portal, rng: random.Random, count: int, now: int) -> list[int]:
    store = portal.store("companies")
    ids = []
    for i in range(count):
        name = f"{rng.choice(COMPANY_A)} {rng.choice(COMPANY_B)}"
        slug = name.lower().replace(" ", "")
        created = now - rng.randint(30 * DAY_MS, 400 * DAY_MS)
        rec = Record(
            portal.new_id(),
            {
                "name": name,
                "domain": f"{slug}{i}.example",
                "industry": rng.choice(INDUSTRIES),
                "numberofemployees": str(rng.choice((12, 45, 180, 950, 4200))),
                "lifecyclestage": "lead",
            },
            created,
            rng.randint(created, now - 1000),
        )
        store.add(rec)
        ids.append(rec.id)
    return ids


def _deal(
    portal: Portal, rng: random.Random, contact: Record, company: Record, stage: str, now: int
) -> None:
    open_stages = [s for s in DEFAULT_PIPELINE if not s.is_closed]
    if stage == "customer":
        deal_stage = DEFAULT_PIPELINE[-2]
    elif rng.random() < 0.25:
        deal_stage = DEFAULT_PIPELINE[-1]
    else:
        deal_stage = rng.choice(open_stages)
    created = max(contact.created, now - rng.randint(DAY_MS, 200 * DAY_MS))
    props = {
        "dealname": f"{company.props['name']} - {rng.choice(('Platform', 'Pilot', 'Renewal'))}",
        "amount": str(rng.choice((5000, 12000, 25000, 60000, 150000))),
        "pipeline": "default",
        "dealstage": deal_stage.stage_id,
        "closedate": str(created + rng.randint(7, 120) * DAY_MS),
        "hs_is_closed": "true" if deal_stage.is_closed else "false",
        "hs_is_closed_won": "true" if deal_stage.stage_id == "closedwon" else "false",
    }
    owner = contact.props.get("hubspot_owner_id")
    if owner:
        props["hubspot_owner_id"] = owner
    if deal_stage.stage_id == "closedlost":
        props["closed_lost_reason"] = rng.choice(LOSS_REASONS)
    elif deal_stage.stage_id == "closedwon":
        props["closed_won_reason"] = rng.choice(WIN_REASONS)
    rec = Record(portal.new_id(), props, created, rng.randint(created, now - 1000))
    portal.store("deals").add(rec)
    portal.associations.link("deals", rec.id, "contacts", contact.id, (3,))
    portal.associations.link("deals", rec.id, "companies", company.id, (341, 5))


def _touch(portal: Portal, rng: random.Random, contact: Record, owner_id: int, now: int) -> None:
    """A rep's first touch on a contact: a call, an email or a meeting."""
    kind = rng.choice(("calls", "emails", "meetings"))
    when = rng.randint(contact.created, max(contact.created, now - 1000))
    props = {"hs_timestamp": str(when), "hubspot_owner_id": str(owner_id)}
    if kind == "calls":
        props.update(
            hs_call_title="Intro call",
            hs_call_direction="OUTBOUND",
            hs_call_status="COMPLETED",
            hs_call_duration=str(rng.randint(60, 1800) * 1000),
        )
    elif kind == "emails":
        props.update(
            hs_email_subject="Following up", hs_email_direction="EMAIL", hs_email_status="SENT"
        )
    else:
        props.update(
            hs_meeting_title="Discovery",
            hs_meeting_outcome="COMPLETED",
            hs_meeting_start_time=str(when),
            hs_meeting_end_time=str(when + 1_800_000),
        )
    rec = Record(portal.new_id(), props, when, when)
    portal.store(kind).add(rec)
    type_id = {"calls": 194, "emails": 198, "meetings": 200}[kind]
    portal.associations.link(kind, rec.id, "contacts", contact.id, (type_id,))
