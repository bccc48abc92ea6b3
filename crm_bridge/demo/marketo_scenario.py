"""``crm-bridge demo --pair marketo_hubspot``: Marketo <-> HubSpot (as the CRM), end to end.

What it shows, on local emulators and SQLite: Marketo leads sync to HubSpot contacts and back,
a marketer's and a rep's edits cross over, a second cycle writes nothing (echoes); a rep misses
the accept SLA on an MQL routed to them in HubSpot, gets a reminder task, and the lead is recycled
to the Marketo nurture list; a deal lost on price pushes the reason to the buyer's Marketo lead
and the "Lost - Price" static list.  Time is the emulators' clock, moved forward, never slept.

Why a module of its own: the default demo (:mod:`crm_bridge.demo.scenario`, Salesforce <->
HubSpot) is what the README and tests/demo promise; this one only adds a second scenario.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crm_bridge.connectors.marketo import MarketoConnector, MarketoSettings
from crm_bridge.connectors.marketo.client import InstanceBudget
from crm_bridge.demo.hubspot_crm import (
    MARKETO_REASON_FIELDS,
    NURTURE_OWNER,
    REP,
    reasons_section,
    sla_section,
)
from crm_bridge.demo.marketo import NURTURE_LIST, MarketoSandbox
from crm_bridge.http import FakeClock
from crm_bridge.reasons.capture import ReasonCapture, person_links
from crm_bridge.reasons.install import apply
from crm_bridge.reasons.taxonomy import ReasonsSettings
from crm_bridge.session import Session
from crm_bridge.sla.engine import build_engine
from crm_bridge.sla.policy import SlaSettings

__all__ = ["run_marketo_demo"]

Printer = Callable[[str], None]
_HOUR = 3600.0
_WRITES = ("created", "linked", "updated", "deleted", "dead_lettered")


class _EmulatorSleep(FakeClock):
    """The connectors' clock: a back-off "sleep" moves the emulators' shared clock instead."""

    def __init__(self, sandbox: MarketoSandbox) -> None:
        super().__init__()
        self.sandbox = sandbox

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        if seconds > 0:
            self.sandbox.clock.advance(seconds)


def _writes(counts: dict[str, int]) -> str:
    shown = [f"{k}={counts[k]}" for k in _WRITES if counts.get(k)]
    return " ".join(shown) or "nothing written"


def run_marketo_demo(*, leads: int = 200, cycles: int = 2, say: Printer = print) -> int:
    """Run the Marketo <-> HubSpot CRM scenario; 0 when both sides agree at the end."""
    workdir = Path(tempfile.mkdtemp(prefix="crm-bridge-demo-marketo-"))
    with MarketoSandbox.start("hubspot", workdir=workdir) as sandbox:
        config = sandbox.loaded_config(extra={"sla": sla_section(), "reasons": reasons_section()})
        settings = config.connectors["marketo"].settings
        assert isinstance(settings, MarketoSettings)
        clock = _EmulatorSleep(sandbox)
        marketo = MarketoConnector(
            settings, name="marketo", clock=clock, budget=InstanceBudget(settings, clock)
        )
        with Session(config, connectors={"marketo": marketo}, now=sandbox.clock.now) as session:
            return _scenario(sandbox, session, leads=leads, cycles=cycles, say=say)


def _scenario(
    sandbox: MarketoSandbox, session: Session, *, leads: int, cycles: int, say: Printer
) -> int:
    mk, hs = sandbox.marketo, sandbox.hubspot
    assert hs is not None
    say(f"Marketo emulator {mk.base_url}  |  HubSpot (CRM) emulator {hs.base_url}")
    for name in MARKETO_REASON_FIELDS:  # the Marketo admin's one-time setup
        mk.emulator.instance.schema.add_custom(name, "string")
    seeded = mk.emulator.seed(leads=leads, seed=7)
    hot, cold = mk.emulator.add_leads(
        [
            {
                "email": "hot.mql@demo.example",
                "lastName": "Hot",
                "company": "Demo",
                "leadScore": 90,
            },
            {"email": "buyer@demo.example", "lastName": "Buyer", "company": "Demo"},
        ]
    )
    say(f"seeded {len(seeded) + 2} Marketo leads; HubSpot starts empty")
    sandbox.clock.advance(1)
    runner = session.runner("main")
    for n in range(1, cycles + 1):
        report = runner.run_cycle()
        say(
            f"sync cycle {n}: {_writes(dict(report.counts))}  api_calls={sum(report.calls.values())}"
        )
        sandbox.clock.advance(1)

    crm = session.connector("hubspot")
    contacts = {str(r.fields.get("email")): r.id for r in crm.changes("contacts", None)}
    owners = {o.email: o.id for o in crm.owners() if o.email}
    hot_c, buyer_c = contacts["hot.mql@demo.example"], contacts["buyer@demo.example"]
    manager = hs.client(access_token=hs.emulator.as_user("maria.manager@example.com"))
    rep = hs.client(access_token=hs.emulator.as_user(REP))
    _update_contact(manager, hot_c, {"hubspot_owner_id": owners[REP], "jobtitle": "VP Growth"})
    mk.control("POST", f"leads/{cold}/edit", {"changes": {"title": "Head of Buying"}})
    sandbox.clock.advance(60)
    report = runner.run_cycle()
    say(f"edits on both sides: {_writes(dict(report.counts))}")
    sandbox.clock.advance(1)
    echo = runner.run_cycle()
    say(f"echo cycle: {_writes(dict(echo.counts))}")

    sla = session.config.settings.sla
    assert isinstance(sla, SlaSettings)
    engine = build_engine(sla, session.connector, session.store, sandbox.clock.now)
    steps: dict[str, int] = {}
    for hours in (0.0, 3.1, 2.0):  # assigned; reminder at 75 % of 4 h; recycle 1 h past it
        sandbox.clock.advance(hours * _HOUR)
        sla_report = engine.run_cycle()
        for key in ("opened", "remind", "recycle"):
            steps[key] = steps.get(key, 0) + sla_report.counts.get(key, 0)
        say(f"SLA after {hours:g} h more: {sla_report.summary()}")
    members = _members(sandbox, NURTURE_LIST)
    hot_lead = mk.emulator.instance.leads[hot]
    say(
        f"SLA breach: remind={steps['remind']} recycle={steps['recycle']}; HubSpot owner -> "
        f"{NURTURE_OWNER}; Marketo leadStatus={hot_lead.values.get('leadStatus')!r}; "
        f"'{NURTURE_LIST}' list members={len(members)}"
    )

    reasons = session.config.settings.reasons
    assert isinstance(reasons, ReasonsSettings)
    apply(reasons, crm=crm, marketing=session.connector("marketo"))
    capture = ReasonCapture(
        reasons,
        crm=crm,
        marketing=session.connector("marketo"),
        store=session.store,
        now=sandbox.clock.now,
        links=person_links(session.config.settings.pairs, reasons),
        since=None,
    )
    sandbox.clock.advance(60)
    _lost_deal(rep, buyer_c)
    sandbox.clock.advance(60)
    captured = capture.run_cycle()
    lost = _members(sandbox, reasons.list_name("price"))
    buyer_lead = mk.emulator.instance.leads[cold]
    say(
        f"reason capture: {captured.summary()}; Marketo lastLossReason="
        f"{buyer_lead.values.get('lastLossReason')!r}; '{reasons.list_name('price')}' list "
        f"members={len(lost)}"
    )

    sandbox.clock.advance(1)
    runner.run_cycle()
    sandbox.clock.advance(1)
    final = runner.run_cycle()
    agreed = len(contacts) == len(mk.emulator.instance.leads)
    ok = (
        agreed
        and steps["recycle"] == 1
        and len(members) == 1
        and len(lost) == 1
        and not any(final.counts.get(k) for k in _WRITES)
    )
    say(
        f"{len(contacts)} HubSpot contacts, {len(mk.emulator.instance.leads)} Marketo leads; "
        f"final cycle: {_writes(dict(final.counts))}"
    )
    say("Marketo loop complete" if ok else "Marketo loop did NOT converge")
    return 0 if ok else 1


def _update_contact(client: Any, contact_id: str, props: dict[str, str]) -> None:
    from hubspot.crm.contacts import SimplePublicObjectInput

    client.crm.contacts.basic_api.update(contact_id, SimplePublicObjectInput(properties=props))


def _lost_deal(client: Any, contact_id: str) -> None:
    """A rep closes a deal lost on price with the buyer on it (HubSpot-defined deal->contact)."""
    from hubspot.crm.deals import SimplePublicObjectInputForCreate

    client.crm.deals.basic_api.create(
        SimplePublicObjectInputForCreate(
            properties={
                "dealname": "Demo deal",
                "dealstage": "closedlost",
                "crm_bridge_deal_reason": "price",
                "closedate": "2026-03-02",
            },
            associations=[
                {
                    "to": {"id": contact_id},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}],
                }
            ],
        )
    )


def _members(sandbox: MarketoSandbox, name: str) -> set[int]:
    inst = sandbox.marketo.emulator.instance
    with inst.lock:
        return {m for sl in inst.lists.values() if sl.name == name for m in sl.members}
