"""The story ``crm-bridge demo`` tells, on the sandbox, with no account needed.

1. Seed a realistic CRM (leads with owners, duplicates, deals across stages) and a marketing
   portal (contacts, owners, companies, deals).
2. Run sync cycles like the daemon does; between them, reps edit leads in Salesforce and
   marketers edit contacts in HubSpot -- through the real vendor clients, as other users -- and
   someone deletes and merges records.
3. Prove both sides agree on every two-way field of every linked pair.
4. Play an SLA breach (reminded, escalated, reassigned, recycled), show the win/loss and
   rejection report, and end with the funnel backfilled from both systems.

Everything printed comes from what the sides and the store actually hold afterwards.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from crm_bridge.connector import Record
from crm_bridge.connectors.salesforce.people import kind_of
from crm_bridge.demo.sandbox import DEFAULT_PAIR, Sandbox
from crm_bridge.session import Session
from crm_bridge.store import Link, Side
from crm_bridge.sync.actions import SIDES
from crm_bridge.sync.planner import logical_values
from crm_bridge.sync.runner import CycleReport

__all__ = ["run_demo"]

Printer = Callable[[str], None]


def _summary(n: int, report: CycleReport, seconds: float) -> str:
    keys = (
        "created",
        "matched",
        "updated",
        "linked",
        "merged",
        "converted",
        "deleted",
        "deleted_flagged",
        "dead_lettered",
        "conflicts",
        "echoes_skipped",
    )
    done = " ".join(f"{k}={report.counts[k]}" for k in keys if report.counts.get(k))
    calls = " ".join(f"{name}={n}" for name, n in report.calls.items())
    return f"  cycle {n}: {done or 'no changes'} | API calls {calls} | {seconds:.1f}s"


def _human_edits(sandbox: Sandbox, session: Session, rng: random.Random, say: Printer) -> None:
    """Reps and marketers at work, through the vendors' own clients, as themselves."""
    with session.store.transaction(readonly=True) as tx:
        links = [link for link in tx.iter_links("main", "leads")][:400]
    if not links:
        return
    sf = sandbox.salesforce.simple_salesforce(username=_a_rep(sandbox))
    hs = sandbox.hubspot.client(
        access_token=sandbox.hubspot.emulator.as_user("mark.marketer@example.com")
    )
    contacts_api = hs.crm.contacts.basic_api
    picked = rng.sample(links, min(12, len(links)))
    from hubspot.crm.contacts import SimplePublicObjectInput

    def person(link: Link) -> Any:  # the sObject API a linked person's record lives in
        return sf.Lead if kind_of(link.crm_id or "") == "Lead" else sf.Contact

    for link in picked[:5]:
        person(link).update(
            link.crm_id, {"Title": rng.choice(["VP Sales", "CTO", "Head of Growth"])}
        )
    for link in picked[5:10]:
        contacts_api.update(
            link.map_id,
            SimplePublicObjectInput(properties={"phone": f"+1 555 01{rng.randint(10, 99)}"}),
        )
    both = picked[10]
    person(both).update(both.crm_id, {"FirstName": "Rep-Edit"})
    contacts_api.update(
        both.map_id, SimplePublicObjectInput(properties={"firstname": "Marketer-Edit"})
    )
    sf.Lead.create(
        {
            "LastName": "Newman",
            "Company": "Fresh Co",
            "Email": f"new.lead{rng.randint(1000, 9999)}@fresh.example",
        }
    )
    say(
        "  reps edited 5 people in Salesforce, marketers 5 contacts in HubSpot, one record on "
        "both sides at once, and a rep created a new lead"
    )


def _conversions(sandbox: Sandbox, session: Session, count: int, say: Printer) -> list[Link]:
    """Reps convert a few linked leads (Salesforce makes an Account, a Contact, a deal)."""
    with session.store.transaction(readonly=True) as tx:
        leads = [
            link
            for link in tx.iter_links("main", "leads")
            if kind_of(link.crm_id or "") == "Lead" and link.map_id
        ][:count]
    for link in leads:
        sandbox.salesforce.emulator.convert_lead(link.crm_id or "", as_user=_a_rep(sandbox))
    say(f"  reps converted {len(leads)} leads into contacts (with accounts and opportunities)")
    return leads


def _followed(session: Session, converted: Sequence[Link], say: Printer) -> None:
    """Say where the links of converted leads are now: same HubSpot record, the new Contact."""
    with session.store.transaction(readonly=True) as tx:
        now = tx.links_by_ids("main", "leads", "map", [c.map_id or "" for c in converted])
    moved = [c for c in converted if (n := now.get(c.map_id or "")) and n.crm_id != c.crm_id]
    on_contacts = [c for c in moved if kind_of(now[c.map_id or ""].crm_id or "") == "Contact"]
    say(
        f"  {len(on_contacts)} of {len(converted)} converted leads: the link followed the lead to "
        "its new Contact, same HubSpot contact (no duplicate, nothing written to the old lead)"
    )


def _a_rep(sandbox: Sandbox) -> str:
    return "rick.rep@example.com"


def _agreement(session: Session, say: Printer) -> tuple[int, int]:
    """Compare the two-way fields of every linked lead on both sides, read fresh."""
    runner = session.runner("main")
    objmap = runner.settings.objects["leads"]
    with session.store.transaction(readonly=True) as tx:
        links = list(tx.iter_links("main", "leads"))
    two_way = [
        n for n, fm in objmap.fields.items() if fm.direction == "both" and fm.kind != "owner"
    ]
    agree = 0
    records: dict[Side, list[Record]] = {}
    for side in SIDES:
        conn = runner.connectors[side]
        obj = objmap.crm_object if side == "crm" else objmap.map_object
        ids = [i for link in links if (i := link.id_on(side))]
        records[side] = list(conn.fetch(obj, ids))
    # Compared the way a cycle compares them: owners, vocabularies and references resolved.
    ctx = runner.value_context("leads", records)
    by_side = {side: {r.id: logical_values(ctx, side, r) for r in records[side]} for side in SIDES}
    for link in links:
        crm = by_side["crm"].get(link.crm_id or "")
        hub = by_side["map"].get(link.map_id or "")
        # A field a record's kind lacks (a Contact's Company) is not there to agree on.
        shared = [f for f in two_way if crm is not None and f in crm]
        if crm is not None and hub is not None and all(crm[f] == hub.get(f) for f in shared):
            agree += 1
    say(
        f"  {agree} of {len(links)} linked lead/contact pairs agree on every two-way field "
        f"({', '.join(two_way)})"
    )
    return agree, len(links)


def run_demo(
    *, leads: int = 1000, contacts: int = 500, cycles: int = 3, say: Printer = print
) -> int:
    """Run the whole story; returns 0 when both sides agree at the end."""
    rng = random.Random(7)
    say("crm-bridge demo: a local Salesforce and HubSpot (emulators), a SQLite store, no accounts")
    with Sandbox.start() as sandbox:
        sandbox.salesforce.emulator.seed(leads=leads, seed=1)
        sandbox.hubspot.emulator.seed(contacts=contacts, seed=2)
        owners = sandbox.align_owners()
        say(
            f"  seeded {leads} Salesforce leads (with duplicates, deals, contact roles) and "
            f"{contacts} HubSpot contacts; {len(owners)} owners share an e-mail on both sides"
        )
        say(
            f"  emulators: salesforce {sandbox.salesforce.base_url}  hubspot {sandbox.hubspot.base_url}"
        )
        config = sandbox.loaded_config(
            pair={
                **DEFAULT_PAIR,
                "default_map_owner": "71000001",
                "default_crm_owner": owners["maria.manager@example.com"],
            }
        )
        with sandbox.session(config) as session:
            runner = session.runner("main")
            say("sync (what `crm-bridge daemon` does every interval):")
            converted: list[Link] = []
            for n in range(1, cycles + 1):
                started = time.monotonic()
                report = runner.run_cycle()
                say(_summary(n, report, time.monotonic() - started))
                if converted:
                    _followed(session, converted, say)
                    converted = []
                if n < cycles:
                    _human_edits(sandbox, session, rng, say)
                    if n == 1:
                        converted = _conversions(sandbox, session, 3, say)
            agree, total = _agreement(session, say)
            with session.store.transaction(readonly=True) as tx:
                dead = tx.dead_letters(pair="main", limit=10_000)
                decisions = tx.decisions(pair="main", limit=10_000)
            say(
                f"  {len(decisions)} conflicts decided by rule and logged; {len(dead)} records "
                f"parked as dead letters with the vendor's reason (see `crm-bridge dlq list`), e.g.:"
            )
            for dl in dead[:3]:
                say(f"    - {dl.obj} {dl.record_key}: {dl.error_code}: {dl.reason[:90]}")
            sla_store = _sla_and_reasons(sandbox, session, say)
            _funnel(session, sla_store, say)
        say(
            "done. Next: `crm-bridge emulate all` to keep the emulators running, and "
            "config.example.toml to point crm-bridge at them or at real systems."
        )
    return 0 if total and agree == total else 1


def _funnel(session: Session, sla_store_url: str, say: Printer) -> None:
    """The funnel: the event log backfilled from both systems plus what the engines recorded.

    SLA attainment per rep comes from the SLA act's store (that act runs on its own org).
    """
    from crm_bridge.funnel.fill import fill_log, funnel_from_store, pair_sources
    from crm_bridge.funnel.render import render_lines
    from crm_bridge.sla.repository import SlaRepository
    from crm_bridge.store import Store

    say("funnel (`crm-bridge funnel --backfill`): MQL -> SAL -> SQL -> opportunity -> won:")
    filled = fill_log(session.store, pair_sources(session, ["main"]), now=session.now)
    say(f"  event log: {filled.summary()}")
    with Store.open(sla_store_url) as sla_store, sla_store.transaction(readonly=True) as tx:
        clocks = list(SlaRepository(tx).all_clocks("salesforce"))
    model = funnel_from_store(session.store, generated_at=session.now(), clocks=clocks)
    for line in render_lines(model):
        say(f"  {line}")


def _sla_and_reasons(sandbox: Sandbox, session: Session, say: Printer) -> str:
    """The SLA act (its own org and store) and the reasons act; returns the SLA store's URL."""
    from pydantic import SecretStr

    from crm_bridge.connectors.hubspot import HubSpotConnector, HubSpotSettings
    from crm_bridge.connectors.salesforce import SalesforceConnector, SalesforceSettings
    from crm_bridge.http import FakeClock
    from crm_bridge.reasons.demo import demo_report
    from crm_bridge.sla.demo import run_sla_demo
    from crm_bridge.store import Store

    say("sales-accepted-lead SLA (a fresh org, business-hours clock on an injected time line):")
    # The SLA act moves time by days; it gets its own emulators so the sync story above keeps
    # its real clock, and connectors whose sleeps move that injected time instead of waiting.
    with Sandbox.start(workdir=sandbox.workdir / "sla", separate_clocks=True) as sla_box:
        sf, hs = sla_box.salesforce, sla_box.hubspot
        clock = FakeClock(sf.emulator.clock.now())
        crm = SalesforceConnector(
            SalesforceSettings(
                instance_url=sf.instance_url,
                token_url=sf.token_url,
                client_id=sf.client_id,
                client_secret=SecretStr(sf.client_secret),
                ca_bundle=sf.ca_path,
                objects=["Person", "Lead"],
            ),
            name="salesforce",
            clock=clock,
        )
        marketing = HubSpotConnector(
            HubSpotSettings(host=hs.base_url, access_token=SecretStr(hs.access_token)),
            name="hubspot",
            clock=clock,
        )
        store = Store.open(sla_box.store_url)
        try:
            for line in run_sla_demo(
                sf, hs, crm=crm, marketing=marketing, store=store, clock=clock
            ):
                say(f"  {line}")
        finally:
            crm.close()
            marketing.close()
            store.close()
    say("win/loss and rejection reasons, pushed to marketing and reported by segment:")
    crm_main, marketing_main = session.connector("salesforce"), session.connector("hubspot")
    for line in demo_report(None, crm=crm_main, marketing=marketing_main, store=session.store):
        say(f"  {line}")
    return sla_box.store_url
