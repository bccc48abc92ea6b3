"""``kill -9`` of a running ``crm-bridge sync`` at chosen points, then re-runs: nothing lost or doubled.

Each world is a fresh :class:`~crm_bridge.demo.sandbox.Sandbox` (both emulators in this process)
seeded identically: Salesforce leads, contacts and opportunities, HubSpot contacts (some with the
e-mail of a Salesforce lead or contact) and deals.  ``crm-bridge sync`` runs as a subprocess with
the config and environment an admin would write.

The kill points are deterministic.  An emulator fault with ``after_apply`` lets a write be applied
and then holds its answer; the test polls the fault's hit log until the write is applied and the
CLI is waiting for the answer, then sends SIGKILL.  For the read kill point, a fault holds the
first Salesforce query before it runs.  Afterwards the CLI runs twice without faults, and the
world must equal a control world that synced without a crash: the same records on each side
(compared per e-mail, field by field), no duplicate e-mails, every lead and contact linked exactly
once, and a further run that writes nothing.

A second scenario kills a run that follows a rep's conversions: the world syncs once, a rep
converts a few linked leads (new Contacts and Opportunities, some under an existing Account, some
without an Opportunity), and the next run is killed while it carries the conversion to HubSpot
(the new company, the contact updates, the new deal).  Its control world converts the same leads
and syncs without a crash.

Creates are announced in the store (a pending link) before they are sent, so after a kill the
re-run adopts what landed -- by e-mail for leads and contacts, by the written values for deals,
which have no identity -- instead of creating it twice.

The control world and the crashed worlds are built two at a time in background threads (each is
mostly a CPU-bound subprocess) and only once; the tests then inspect them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from crm_bridge.connectors.hubspot.emulator import HubSpotEmulatorSettings
from crm_bridge.demo.sandbox import Sandbox
from crm_bridge.emulators.runtime import Fault, FaultHit, FaultPlane
from crm_bridge.store import Link, Store

HOLD_SECONDS = 60.0
"""How long a faulted call is held; the CLI is killed long before (the hold ends when it dies)."""
KILL_POINT_DEADLINE = 30.0
"""Hard deadline for reaching a kill point (a subprocess sync of this world takes ~2 s)."""
RUN_TIMEOUT = 60.0
SF_LEADS = 200
HS_CONTACTS = 150
SHARED_WITH_LEADS = 40
SHARED_WITH_SF_CONTACTS = 10
SEED_TIME = datetime.now(UTC).replace(microsecond=0)
"""Every world is seeded with its clock frozen here, so conflict rules see the same timestamps."""
DEFAULT_OWNER = "maria.manager@example.com"
CONVERTED = 10
"""Linked leads a rep converts after the first sync in the ``converted`` scenario."""
Scenario = str
"""``"fresh"``: the first sync of a seeded world is killed; ``"converted"``: the run after a rep's
conversions is."""
SCENARIOS: tuple[Scenario, ...] = ("fresh", "converted")

LEAD_FIELDS = ("FirstName", "LastName", "Company", "Title", "Phone", "Status", "LeadSource")
CONTACT_FIELDS = (
    "firstname",
    "lastname",
    "company",
    "jobtitle",
    "phone",
    "lifecyclestage",
    "hs_analytics_source",
)
OPPORTUNITY_FIELDS = ("Name", "StageName", "Amount", "CloseDate")
DEAL_FIELDS = ("dealname", "dealstage", "amount", "closedate")


# -- the world ---------------------------------------------------------------------------------


def _seed(sandbox: Sandbox) -> None:
    """Identical data in every world: de-duplicated leads, contacts sharing some e-mails, deals."""
    sandbox.clock.freeze(SEED_TIME)
    try:
        sf = sandbox.salesforce.emulator
        sf.seed(leads=SF_LEADS, seed=11)
        org = sf.org
        with org.lock:
            # The seed makes a few leads share an e-mail (in different case).  Drop those: this
            # test asserts "no duplicate e-mails", so every duplicate must be one the crash made.
            leads = org.stores["Lead"]
            seen: set[str] = set()
            for rid, rec in list(leads.records.items()):
                email = str(rec["Email"]).casefold()
                if email in seen:
                    del leads.records[rid]
                seen.add(email)
            leads.reindex()
            lead_emails = sorted(seen)
            contact_emails = sorted(
                str(r["Email"]).casefold() for r in org.records_of("Contact").values()
            )
        hs = sandbox.hubspot.emulator
        hs.seed(contacts=HS_CONTACTS, seed=12)
        portal = hs.portal
        with portal.lock:
            people = sorted(portal.store("contacts").live.values(), key=lambda r: r.id)
            shared = [
                *lead_emails[::5][:SHARED_WITH_LEADS],
                *contact_emails[:SHARED_WITH_SF_CONTACTS],
            ]
            for person, email in zip(people, shared, strict=False):
                portal.update("contacts", person, {"email": email}, None)
        sandbox.align_owners()
    finally:
        sandbox.clock.unfreeze()


def _add_default_owners(sandbox: Sandbox, config: Path) -> None:
    """Records owned by reps with no HubSpot user fall back to the sales manager (as in the demo).

    Without defaults such records are dead-lettered and never written at all.
    """
    text = config.read_text()
    assert text.rstrip().rsplit("\n[", 1)[-1].startswith("pairs.main]"), text
    crm_owner = sandbox.salesforce.emulator.org.user_by_username(DEFAULT_OWNER)
    assert crm_owner is not None
    portal = sandbox.hubspot.emulator.portal
    map_owner = next(o["id"] for o in portal.owners if o["email"] == DEFAULT_OWNER)
    config.write_text(
        text + f'default_crm_owner = "{crm_owner["Id"]}"\ndefault_map_owner = "{map_owner}"\n'
    )


@dataclass
class World:
    """One seeded sandbox, its config on disk, and the environment carrying the secrets."""

    sandbox: Sandbox
    directory: Path
    config: Path
    env: dict[str, str]
    seeded: dict[str, set[str]]
    runs: int = 0
    converted: dict[str, str] = field(default_factory=dict)
    """Converted lead id -> the HubSpot contact its link held before the conversion."""

    @classmethod
    def create(cls, directory: Path, scenario: Scenario = "fresh") -> World:
        sandbox = Sandbox.start(
            workdir=directory,
            hubspot_settings=HubSpotEmulatorSettings(rate_limits_enabled=False),
        )
        try:
            _seed(sandbox)
            config, secrets = sandbox.write_config(directory)
            _add_default_owners(sandbox, config)
            env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_BRIDGE_")}
            env.update(secrets)
            world = cls(sandbox, directory, config, env, seeded={})
            if scenario == "converted":
                code, output = world.sync()
                assert code == 0, output
                world.convert_linked_leads(CONVERTED)
            world.seeded = world.record_ids()
        except BaseException:
            sandbox.stop()
            raise
        return world

    def convert_linked_leads(self, count: int) -> list[str]:
        """A rep converts ``count`` leads that have a HubSpot twin, the same ones in every world.

        Every fifth gets no Opportunity and every fifth (offset by one) joins the first existing
        Account; the rest get a new Account, Contact and Opportunity, as the UI's default does.
        """
        emulator = self.sandbox.salesforce.emulator
        org = emulator.org
        linked = {str(link.crm_id): str(link.map_id) for link in self.links("leads") if link.active}
        with org.lock:
            leads = sorted(
                (str(r["Email"]).casefold(), rid)
                for rid, r in org.records_of("Lead").items()
                if rid in linked and not r.get("IsDeleted") and not r.get("IsConverted")
            )
            accounts = sorted(
                (str(r["Name"]), rid)
                for rid, r in org.records_of("Account").items()
                if not r.get("IsDeleted")
            )
        assert len(leads) >= count and accounts
        converted = []
        for n, (email, lead_id) in enumerate(leads[:count]):
            emulator.convert_lead(
                lead_id,
                account_id=accounts[0][1] if n % 5 == 1 else None,
                do_not_create_opportunity=n % 5 == 0,
                opportunity_name=f"Converted {email}",
                as_user=DEFAULT_OWNER,
            )
            converted.append(lead_id)
            self.converted[lead_id] = linked[lead_id]
        return converted

    @property
    def sf_faults(self) -> FaultPlane:
        return self.sandbox.salesforce.emulator.faults

    @property
    def hs_faults(self) -> FaultPlane:
        return self.sandbox.hubspot.emulator.faults

    def record_ids(self) -> dict[str, set[str]]:
        """Ids of the live records of every synced object, per vendor object."""
        org = self.sandbox.salesforce.emulator.org
        portal = self.sandbox.hubspot.emulator.portal
        with org.lock, portal.lock:
            live = {
                obj: {rid for rid, r in org.records_of(obj).items() if not r.get("IsDeleted")}
                for obj in ("Lead", "Contact", "Opportunity")
            } | {
                obj: {str(i) for i in portal.store(obj).live}
                for obj in ("contacts", "deals", "companies")
            }
            # The pair syncs people: Leads (not converted) and Contacts.
            converted = {rid for rid, r in org.records_of("Lead").items() if r.get("IsConverted")}
            live["Person"] = (live["Lead"] - converted) | live["Contact"]
            return live

    def snapshots(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return self.sandbox.salesforce.emulator.snapshot(), self.sandbox.hubspot.emulator.snapshot()

    def start_sync(self) -> subprocess.Popen[bytes]:
        self.runs += 1
        log = self.directory / f"run{self.runs}"
        with open(f"{log}.out", "wb") as out, open(f"{log}.err", "wb") as err:
            return subprocess.Popen(
                [sys.executable, "-m", "crm_bridge", "sync", "--config", str(self.config)],
                env=self.env,
                stdout=out,
                stderr=err,
            )

    def output(self, run: int | None = None) -> str:
        log = self.directory / f"run{run or self.runs}"
        out = Path(f"{log}.out").read_text(errors="replace")
        err = Path(f"{log}.err").read_text(errors="replace")
        return f"stdout:\n{out}\nstderr (tail):\n{err[-3000:]}"

    def sync(self) -> tuple[int, str]:
        """Run ``crm-bridge sync`` to the end; its exit code and output."""
        proc = self.start_sync()
        try:
            code = proc.wait(timeout=RUN_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return code, self.output()

    def links(self, obj: str) -> list[Link]:
        with Store.open(self.sandbox.store_url) as store, store.transaction(readonly=True) as tx:
            return list(tx.iter_links("main", obj, status=None))

    def open_dead_letters(self) -> list[str]:
        with Store.open(self.sandbox.store_url) as store, store.transaction(readonly=True) as tx:
            return [
                f"{d.obj} {d.record_key}: {d.error_code} {d.reason}"
                for d in tx.dead_letters(pair="main", limit=100_000)
            ]

    def stop(self) -> None:
        self.sandbox.stop()


# -- what a world ends up holding --------------------------------------------------------------


@dataclass
class EndState:
    """What each side holds, keyed by e-mail (leads, contacts) or as multisets (deals)."""

    leads: dict[str, dict[str, Any]]
    contacts: dict[str, dict[str, Any]]
    lead_email_counts: Counter[str]
    contact_email_counts: Counter[str]
    opportunities: Counter[tuple[Any, ...]]
    deals: Counter[tuple[Any, ...]]
    lead_links: list[Link]
    deal_links: list[Link]
    live: dict[str, set[str]]
    dead_letters: list[str]
    conversions: dict[str, tuple[str | None, str | None]]
    """Converted lead -> (its ConvertedContactId, the Salesforce id its HubSpot contact is now
    linked to): equal when the link followed the lead to its Contact."""
    lead_email_by_id: dict[str, str] = field(repr=False)
    contact_email_by_id: dict[str, str] = field(repr=False)


def end_state(world: World) -> EndState:
    org = world.sandbox.salesforce.emulator.org
    portal = world.sandbox.hubspot.emulator.portal
    with org.lock, portal.lock:
        users = {rid: str(u["Email"]) for rid, u in org.records_of("User").items()}
        owners = {str(o["id"]): str(o["email"]) for o in portal.owners}
        # People: live Leads and Contacts (the pair's Person object); a Contact has no Company
        # or Status, so those read as None on it.
        live_leads = [
            r
            for obj in ("Lead", "Contact")
            for r in org.records_of(obj).values()
            if not r.get("IsDeleted") and not r.get("IsConverted")
        ]
        leads = {
            str(r["Email"]).casefold(): {
                **{f: r.get(f) for f in LEAD_FIELDS},
                "Owner": users.get(str(r.get("OwnerId"))),
            }
            for r in live_leads
        }
        lead_email_by_id = {r["Id"]: str(r["Email"]).casefold() for r in live_leads}
        live_contacts = list(portal.store("contacts").live.values())
        contacts = {
            str(c.props.get("email")).casefold(): {
                **{f: c.props.get(f) for f in CONTACT_FIELDS},
                "owner": owners.get(str(c.props.get("hubspot_owner_id"))),
            }
            for c in live_contacts
        }
        contact_email_by_id = {
            str(c.id): str(c.props.get("email")).casefold() for c in live_contacts
        }
        opportunities = Counter(
            (*(r.get(f) for f in OPPORTUNITY_FIELDS), users.get(str(r.get("OwnerId"))))
            for r in org.records_of("Opportunity").values()
            if not r.get("IsDeleted")
        )
        converted_to = {
            lead: org.records_of("Lead")[lead].get("ConvertedContactId") for lead in world.converted
        }
        deals = Counter(
            (
                *(d.props.get(f) for f in DEAL_FIELDS),
                owners.get(str(d.props.get("hubspot_owner_id"))),
            )
            for d in portal.store("deals").live.values()
        )
    by_map = {str(link.map_id): str(link.crm_id) for link in world.links("leads") if link.active}
    return EndState(
        leads=leads,
        contacts=contacts,
        lead_email_counts=Counter(lead_email_by_id.values()),
        contact_email_counts=Counter(contact_email_by_id.values()),
        opportunities=opportunities,
        deals=deals,
        lead_links=world.links("leads"),
        deal_links=world.links("deals"),
        live=world.record_ids(),
        dead_letters=world.open_dead_letters(),
        conversions={
            lead: (converted_to[lead], by_map.get(map_id))
            for lead, map_id in world.converted.items()
        },
        lead_email_by_id=lead_email_by_id,
        contact_email_by_id=contact_email_by_id,
    )


def _diff(mine: Mapping[Any, Any], theirs: Mapping[Any, Any], limit: int = 8) -> str:
    keys = sorted({*mine, *theirs}, key=repr)
    lines = [
        f"  {key!r}: {mine.get(key, '<absent>')!r} != control {theirs.get(key, '<absent>')!r}"
        for key in keys
        if mine.get(key, "<absent>") != theirs.get(key, "<absent>")
    ]
    more = f"\n  ... and {len(lines) - limit} more" if len(lines) > limit else ""
    return f"{len(lines)} differences:\n" + "\n".join(lines[:limit]) + more


# -- kill points -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KillPoint:
    """Where the CLI dies: the fault that holds a call there, and what that call did."""

    name: str
    vendor: str  # "salesforce" or "hubspot": whose fault plane holds the call
    fault: Fault
    writes: str | None  # the object the held call wrote (applied, not recorded); None: a read
    scenario: Scenario = "fresh"
    creates: bool = True  # the held write creates records (an update leaves none unrecorded)


KILL_POINTS = [
    KillPoint(
        "first_read",
        "salesforce",
        Fault(path=r"/query", method="GET", latency=HOLD_SECONDS),
        writes=None,
    ),
    KillPoint(
        "salesforce_write",
        "salesforce",
        Fault(
            path=r"/composite$",
            method="POST",
            body_regex="composite/sobjects",
            latency=HOLD_SECONDS,
            after_apply=True,
        ),
        writes="Lead",
    ),
    KillPoint(
        "hubspot_first_batch",
        "hubspot",
        Fault(path=r"/contacts/batch/upsert$", latency=HOLD_SECONDS, after_apply=True),
        writes="contacts",
    ),
    KillPoint(
        "hubspot_second_batch",
        "hubspot",
        Fault(path=r"/contacts/batch/upsert$", latency=HOLD_SECONDS, after_apply=True, skip=1),
        writes="contacts",
    ),
    KillPoint(
        "deal_create",
        "hubspot",
        Fault(path=r"/deals/batch/create$", latency=HOLD_SECONDS, after_apply=True),
        writes="deals",
    ),
    KillPoint(
        "converted_company_create",
        "hubspot",
        Fault(path=r"/companies/batch/create$", latency=HOLD_SECONDS, after_apply=True),
        writes="companies",
        scenario="converted",
    ),
    KillPoint(
        "converted_contact_update",
        "hubspot",
        Fault(path=r"/contacts/batch/(update|upsert)$", latency=HOLD_SECONDS, after_apply=True),
        writes="contacts",
        scenario="converted",
        creates=False,
    ),
    KillPoint(
        "converted_deal_create",
        "hubspot",
        Fault(path=r"/deals/batch/create$", latency=HOLD_SECONDS, after_apply=True),
        writes="deals",
        scenario="converted",
    ),
]
BY_NAME = {kp.name: kp for kp in KILL_POINTS}
NAMES = [kp.name for kp in KILL_POINTS]
CONVERTED_NAMES = [kp.name for kp in KILL_POINTS if kp.scenario == "converted"]


def _wait_for_kill_point(
    plane: FaultPlane, proc: subprocess.Popen[bytes], kp: KillPoint, output: Callable[[], str]
) -> FaultHit:
    """The held call, once it is where the kill must land: applied (a write) or waiting (a read)."""
    deadline = time.monotonic() + KILL_POINT_DEADLINE
    while True:
        for hit in plane.hits():
            if not hit.done and (hit.applied or kp.writes is None):
                return hit
        if proc.poll() is not None:
            pytest.fail(f"sync exited ({proc.returncode}) before kill point {kp.name}\n{output()}")
        if time.monotonic() > deadline:
            pytest.fail(f"kill point {kp.name} not reached in {KILL_POINT_DEADLINE} s\n{output()}")
        time.sleep(0.01)  # ok-sleep: deadline poll of the fault's hit log (the kill point)


@dataclass
class Outcome:
    """One crashed world after its re-runs."""

    kp: KillPoint
    killed_by: int
    hit: FaultHit
    unchanged_at_kill: bool
    unrecorded_at_kill: int
    reruns: list[tuple[int, str]]
    further_run: tuple[int, str]
    further_run_wrote: list[str]
    state: EndState


def _unrecorded(world: World, obj: str) -> int:
    """Records of ``obj`` the killed run created at the vendor but never linked in the store."""
    name = {"Lead": "leads", "contacts": "leads", "deals": "deals", "companies": "accounts"}[obj]
    linked = {link.crm_id if obj == "Lead" else link.map_id for link in world.links(name)}
    return len(world.record_ids()[obj] - world.seeded[obj] - linked)


def _further_run(world: World) -> tuple[tuple[int, str], list[str]]:
    """A further sync, and which vendor's data it changed (none, if it wrote nothing)."""
    before = world.snapshots()
    result = world.sync()
    after = world.snapshots()
    vendors = ("salesforce", "hubspot")
    wrote = [name for name, a, b in zip(vendors, before, after, strict=True) if a != b]
    return result, wrote


def crash_and_recover(directory: Path, kp: KillPoint) -> Outcome:
    world = World.create(directory, kp.scenario)
    try:
        seeded = world.snapshots()
        plane = world.sf_faults if kp.vendor == "salesforce" else world.hs_faults
        plane.add(replace(kp.fault))  # a copy: the plane counts times and skip down on it
        proc = world.start_sync()
        try:
            hit = _wait_for_kill_point(plane, proc, kp, world.output)
            proc.send_signal(signal.SIGKILL)
            killed_by = -proc.wait(timeout=RUN_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert plane.armed() == [], "the kill point's fault must be used up"
        unchanged = world.snapshots() == seeded
        unrecorded = _unrecorded(world, kp.writes) if kp.writes and kp.creates else 0
        reruns = [world.sync(), world.sync()]
        further, wrote = _further_run(world)
        return Outcome(
            kp=kp,
            killed_by=killed_by,
            hit=hit,
            unchanged_at_kill=unchanged,
            unrecorded_at_kill=unrecorded,
            reruns=reruns,
            further_run=further,
            further_run_wrote=wrote,
            state=end_state(world),
        )
    finally:
        world.stop()


@dataclass
class Control:
    runs: list[tuple[int, str]]
    further_run: tuple[int, str]
    further_run_wrote: list[str]
    state: EndState


def uncrashed(directory: Path, scenario: Scenario) -> Control:
    """The same world synced twice without a crash: what every crashed world must end up as."""
    world = World.create(directory, scenario)
    try:
        runs = [world.sync(), world.sync()]
        further, wrote = _further_run(world)
        return Control(runs, further, wrote, end_state(world))
    finally:
        world.stop()


WORKERS = 2
"""Worlds built at once: a subprocess sync is mostly CPU, and the target machine has 2 cores."""


def _selected_kill_points(request: pytest.FixtureRequest) -> list[str]:
    """The kill points the selected tests of this module inspect (so ``-k`` builds only those)."""
    wanted = set()
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if getattr(item, "module", None) is request.module and callspec is not None:
            wanted.add(callspec.params.get("name"))
    return [name for name in NAMES if name in wanted]


@pytest.fixture(scope="module")
def worlds(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[Any]]]:
    """Each scenario's control world and each selected kill point's world, built once."""
    selected = _selected_kill_points(request)
    scenarios = [
        s for s in SCENARIOS if s == "fresh" or any(BY_NAME[n].scenario == s for n in selected)
    ]
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="kill9") as pool:
        futures: dict[str, Future[Any]] = {
            f"control:{scenario}": pool.submit(
                uncrashed, tmp_path_factory.mktemp(f"control-{scenario}"), scenario
            )
            for scenario in scenarios
        }
        for name in selected:
            futures[name] = pool.submit(
                crash_and_recover, tmp_path_factory.mktemp(name), BY_NAME[name]
            )
        try:
            yield futures
        finally:
            pool.shutdown(cancel_futures=True)


@pytest.fixture(scope="module")
def controls(worlds: dict[str, Future[Any]]) -> Callable[[Scenario], Control]:
    def get(scenario: Scenario) -> Control:
        result: Control = worlds[f"control:{scenario}"].result()
        return result

    return get


@pytest.fixture(scope="module")
def outcomes(worlds: dict[str, Future[Any]]) -> Callable[[str], Outcome]:
    def get(name: str) -> Outcome:
        result: Outcome = worlds[name].result()
        return result

    return get


# -- the control run: the assertions below are meaningful ----------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_control_run_syncs_everything(
    controls: Callable[[Scenario], Control], scenario: Scenario
) -> None:
    control = controls(scenario)
    for code, output in control.runs:
        assert code == 0, output
    state = control.state
    assert state.dead_letters == []
    assert len(state.lead_links) == len(state.leads) > SF_LEADS  # HubSpot-only contacts arrived
    assert len(state.contacts) == len(state.leads)
    shared = {e for e, f in state.contacts.items() if f["lastname"] != state.leads[e]["LastName"]}
    assert not shared  # paired records were reconciled
    assert sum(state.opportunities.values()) == len(state.deal_links) > 0
    assert control.further_run[0] == 0 and control.further_run_wrote == []
    if scenario == "converted":
        assert len(state.conversions) == CONVERTED
        assert all(contact and linked == contact for contact, linked in state.conversions.values())


# -- at the moment of the kill -----------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_kill_lands_between_apply_and_record(outcomes: Callable[[str], Outcome], name: str) -> None:
    outcome = outcomes(name)
    assert outcome.killed_by == signal.SIGKILL
    if outcome.kp.writes is None:
        assert not outcome.hit.applied
        assert outcome.unchanged_at_kill, "a kill during the first read must precede every write"
    else:
        assert outcome.hit.applied and not outcome.hit.done
        if not outcome.kp.creates:
            assert not outcome.unchanged_at_kill, "the held update must have landed"
            return
        assert outcome.unrecorded_at_kill > 0, (
            f"the held write created {outcome.kp.writes} records the store has no link for"
        )


# -- after the re-runs: leads and contacts ------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_reruns_exit_zero(outcomes: Callable[[str], Outcome], name: str) -> None:
    outcome = outcomes(name)
    for code, output in [*outcome.reruns, outcome.further_run]:
        assert code == 0, output


@pytest.mark.parametrize("name", NAMES)
def test_salesforce_leads_equal_the_uncrashed_run(
    outcomes: Callable[[str], Outcome], controls: Callable[[Scenario], Control], name: str
) -> None:
    control = controls(BY_NAME[name].scenario)
    state, want = outcomes(name).state, control.state
    assert len(state.leads) == len(want.leads)
    assert state.leads == want.leads, "Salesforce leads: " + _diff(state.leads, want.leads)
    assert state.dead_letters == want.dead_letters


DEFAULTED_ON_CREATE = ("lifecyclestage", "owner")
"""Contact fields fed by Salesforce fields its Lead create fills with defaults (Status, OwnerId)."""


@pytest.mark.parametrize("name", NAMES)
def test_hubspot_contacts_keep_the_fields_of_the_uncrashed_run(
    outcomes: Callable[[str], Outcome], controls: Callable[[Scenario], Control], name: str
) -> None:
    control = controls(BY_NAME[name].scenario)

    def own(contacts: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {
            email: {k: v for k, v in fields.items() if k not in DEFAULTED_ON_CREATE}
            for email, fields in contacts.items()
        }

    state, want = own(outcomes(name).state.contacts), own(control.state.contacts)
    assert len(state) == len(want)
    assert state == want, "HubSpot contacts: " + _diff(state, want)


@pytest.mark.parametrize("name", NAMES)
def test_hubspot_contacts_equal_the_uncrashed_run(
    outcomes: Callable[[str], Outcome], controls: Callable[[Scenario], Control], name: str
) -> None:
    control = controls(BY_NAME[name].scenario)
    state, want = outcomes(name).state.contacts, control.state.contacts
    assert len(state) == len(want)
    assert state == want, "HubSpot contacts: " + _diff(state, want)


@pytest.mark.parametrize("name", NAMES)
def test_no_duplicate_emails_on_either_side(outcomes: Callable[[str], Outcome], name: str) -> None:
    state = outcomes(name).state
    assert [e for e, n in state.lead_email_counts.items() if n > 1] == []
    assert [e for e, n in state.contact_email_counts.items() if n > 1] == []


@pytest.mark.parametrize("name", NAMES)
def test_every_lead_and_contact_is_linked_exactly_once(
    outcomes: Callable[[str], Outcome], name: str
) -> None:
    state = outcomes(name).state
    active = [link for link in state.lead_links if link.active]
    crm_ids = Counter(link.crm_id for link in active)
    map_ids = Counter(link.map_id for link in active)
    assert set(crm_ids) == state.live["Person"] and set(crm_ids.values()) == {1}
    assert set(map_ids) == state.live["contacts"] and set(map_ids.values()) == {1}
    assert [link for link in state.lead_links if not link.active] == []
    mismatched = [
        (link.crm_id, link.map_id)
        for link in active
        if state.lead_email_by_id[str(link.crm_id)] != state.contact_email_by_id[str(link.map_id)]
    ]
    assert mismatched == []


@pytest.mark.parametrize("name", CONVERTED_NAMES)
def test_converted_leads_keep_their_hubspot_contact(
    outcomes: Callable[[str], Outcome], name: str
) -> None:
    state = outcomes(name).state
    assert len(state.conversions) == CONVERTED
    moved = {
        lead: pair for lead, pair in state.conversions.items() if not pair[0] or pair[0] != pair[1]
    }
    assert moved == {}, "links that did not follow their lead to its Contact"


@pytest.mark.parametrize("name", NAMES)
def test_a_further_run_writes_nothing(outcomes: Callable[[str], Outcome], name: str) -> None:
    assert outcomes(name).further_run_wrote == []


# -- deals: no identity, recovered by their written values -----------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_deals_equal_the_uncrashed_run(
    outcomes: Callable[[str], Outcome], controls: Callable[[Scenario], Control], name: str
) -> None:
    control = controls(BY_NAME[name].scenario)
    state, want = outcomes(name).state, control.state
    assert state.opportunities == want.opportunities
    extra = sum(state.deals.values()) - sum(want.deals.values())
    doubled = sum(1 for deal, n in state.deals.items() if n > want.deals[deal])
    assert (extra, doubled) == (0, 0), f"{extra} extra HubSpot deals, {doubled} deals doubled"
    assert state.deals == want.deals
    crm_ids = Counter(link.crm_id for link in state.deal_links if link.active)
    assert set(crm_ids) == state.live["Opportunity"] and set(crm_ids.values()) == {1}
