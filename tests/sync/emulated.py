"""The sync engine on both emulators, through crm-bridge's real connectors and the vendor clients.

:class:`Emulated` wires one pair (``main``, the ``hubspot_salesforce`` preset) between the
session-wide Salesforce and HubSpot emulators (reset before every test by their pytest fixtures)
and a fresh SQLite store, the way :class:`~crm_bridge.demo.sandbox.Sandbox` does for the demo.
The connectors get a :class:`LinkedClock`: their sleeps (rate-limit pacing, ``Retry-After``,
backoff) take no real time but move both emulators' clocks, so a wait really passes on the
server side and no test ever sleeps.

People act through the vendors' own clients: reps through simple-salesforce as themselves,
the marketer through hubspot-api-client with a "human" token.  Assertions read what the sides
hold through the same clients (or the emulators' state for the 10,001-record test).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInputForCreate,
    SimplePublicObjectBatchInputForCreate,
    SimplePublicObjectInput,
)

from crm_bridge.config import LoadedConfig
from crm_bridge.connector import Connector, Record
from crm_bridge.connectors.hubspot import HubSpotConnector, HubSpotSettings
from crm_bridge.connectors.hubspot.emulator import RunningHubSpot
from crm_bridge.connectors.salesforce import SalesforceConnector, SalesforceSettings
from crm_bridge.connectors.salesforce.emulator import RunningSalesforce
from crm_bridge.demo.sandbox import DEFAULT_PAIR, Sandbox
from crm_bridge.emulators.runtime import EmulatorClock
from crm_bridge.http import FakeClock
from crm_bridge.session import Session
from crm_bridge.store import DeadLetter, DeadLetterStatus, Decision, Link, LinkStatus, Side
from crm_bridge.sync.runner import CycleReport, SyncRunner

__all__ = [
    "MARKETER",
    "OTHER_REP",
    "REP",
    "Emulated",
    "LinkedClock",
    "TappedHubSpot",
    "oauth_refresh_token",
]

REP = "rick.rep@example.com"
OTHER_REP = "sana.rep@example.com"
MARKETER = "mark.marketer@example.com"
LEAD_FIELDS = (
    "Id",
    "Email",
    "FirstName",
    "LastName",
    "Company",
    "Title",
    "Phone",
    "LeadSource",
    "Status",
    "OwnerId",
)
CONTACT_PROPS = (
    "email",
    "firstname",
    "lastname",
    "company",
    "jobtitle",
    "phone",
    "lifecyclestage",
    "hs_analytics_source",
    "hubspot_owner_id",
)


WRITE_COUNTS = ("created", "matched", "updated", "deleted", "linked", "merged", "dead_lettered")


def writes(report: CycleReport) -> dict[str, int]:
    """The write-side counts of a cycle report that are not zero."""
    return {k: report.counts[k] for k in WRITE_COUNTS if report.counts.get(k)}


class LinkedClock(FakeClock):
    """A connector clock whose sleeps are instant but also move the emulators' clocks."""

    def __init__(self, *emulator_clocks: EmulatorClock) -> None:
        super().__init__()
        self.emulator_clocks = emulator_clocks

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        if seconds > 0:
            for clock in self.emulator_clocks:
                clock.advance(seconds)


class TappedHubSpot(HubSpotConnector):
    """The real HubSpot connector plus a hook run once a ``contacts`` change stream is drained.

    The runner reads both sides before it writes, so the hook runs *mid-cycle*: after the reads,
    before the first write (used to expire every token at that moment).
    """

    after_contacts_read: Callable[[], None] | None = None

    def changes(self, obj: str, since: datetime | None) -> Iterator[Record]:
        yield from super().changes(obj, since)
        hook = self.after_contacts_read
        if obj == "contacts" and hook is not None:
            self.after_contacts_read = None
            hook()


def oauth_refresh_token(hubspot: RunningHubSpot) -> str:
    """Install the app as a portal admin would (authorization code grant); its refresh token."""
    with httpx.Client(base_url=hubspot.base_url, trust_env=False) as http:
        redirect = http.get(
            "/oauth/authorize",
            params={"client_id": hubspot.client_id, "redirect_uri": "http://localhost/cb"},
        )
        code = httpx.URL(redirect.headers["location"]).params["code"]
        token = http.post(
            "/oauth/v1/token",
            data={
                "grant_type": "authorization_code",
                "client_id": hubspot.client_id,
                "client_secret": hubspot.client_secret,
                "redirect_uri": "http://localhost/cb",
                "code": code,
            },
        )
        token.raise_for_status()
        return str(token.json()["refresh_token"])


class Emulated:
    """One pair between the two emulators, a SQLite store, and the people editing both sides."""

    def __init__(
        self,
        salesforce: RunningSalesforce,
        hubspot: RunningHubSpot,
        workdir: Path,
        *,
        pair: Mapping[str, Any] | None = None,
        hubspot_overrides: Mapping[str, Any] | None = None,
        salesforce_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.sandbox = Sandbox(
            salesforce=salesforce,
            hubspot=hubspot,
            store_url=f"sqlite:///{workdir / 'state.sqlite3'}",
            workdir=workdir,
        )
        self.salesforce = salesforce
        self.hubspot = hubspot
        # Every HubSpot owner gets a Salesforce user with the same e-mail, as in a real org.
        self.owners: dict[str, str] = self.sandbox.align_owners()
        self.clock = LinkedClock(salesforce.emulator.clock, hubspot.emulator.clock)
        self.config: LoadedConfig = self.sandbox.loaded_config(
            pair={**DEFAULT_PAIR, **dict(pair or {})},
            connector_overrides={
                # Deletions in HubSpot are only visible in the archived listing; poll it every
                # cycle (in production it is polled at most hourly to keep idle cycles cheap).
                "hubspot": {"archived_poll_seconds": 0, **dict(hubspot_overrides or {})},
                **({"salesforce": dict(salesforce_overrides)} if salesforce_overrides else {}),
            },
        )
        sf_settings = self.config.connectors["salesforce"].settings
        hs_settings = self.config.connectors["hubspot"].settings
        assert isinstance(sf_settings, SalesforceSettings)
        assert isinstance(hs_settings, HubSpotSettings)
        self.crm = SalesforceConnector(sf_settings, name="salesforce", clock=self.clock)
        self.map = TappedHubSpot(hs_settings, name="hubspot", clock=self.clock)
        connectors: dict[str, Connector[Any]] = {"salesforce": self.crm, "hubspot": self.map}
        self.session = Session(self.config, connectors=connectors, now=self.now)
        self._sf_clients: dict[str, Any] = {}
        self._hs_clients: dict[str, Any] = {}

    # -- time ------------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The emulators' time (the runner's clock too, so dead-letter backoff follows it)."""
        return self.hubspot.emulator.clock.now()

    def advance(self, seconds: float) -> None:
        """Let time pass on both emulators (instead of sleeping)."""
        self.salesforce.emulator.clock.advance(seconds)
        self.hubspot.emulator.clock.advance(seconds)

    def realign_clocks(self) -> None:
        """Bring HubSpot's clock back in step with Salesforce's (after a freeze/unfreeze)."""
        sf, hs = self.salesforce.emulator.clock, self.hubspot.emulator.clock
        hs.advance(sf.time() - hs.time())

    # -- the engine ------------------------------------------------------------------------------

    @property
    def runner(self) -> SyncRunner:
        return self.session.runner("main")

    def cycle(self, **kwargs: Any) -> CycleReport:
        """One sync cycle, then a second of emulator time (so later edits are strictly newer)."""
        report = self.runner.run_cycle(**kwargs)
        self.advance(1)
        return report

    def links(self, *, status: LinkStatus | None = "active") -> list[Link]:
        with self.session.store.transaction(readonly=True) as tx:
            return list(tx.iter_links("main", "leads", status=status))

    def link_for(self, side: Side, record_id: str) -> Link | None:
        with self.session.store.transaction(readonly=True) as tx:
            return tx.link_for("main", "leads", side, record_id)

    def dead_letters(self, *, status: DeadLetterStatus | None = "open") -> list[DeadLetter]:
        with self.session.store.transaction(readonly=True) as tx:
            return tx.dead_letters(pair="main", status=status)

    def decisions(self) -> list[Decision]:
        with self.session.store.transaction(readonly=True) as tx:
            return tx.decisions(pair="main")

    def data(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Every record and setting both sides hold (to prove a cycle wrote nothing).

        The Salesforce id counter is left out: query locators (reads of over 2,000 rows) take
        ids from it too.
        """
        salesforce = self.salesforce.emulator.snapshot()
        salesforce.pop("counter")
        return salesforce, self.hubspot.emulator.snapshot()

    def close(self) -> None:
        self.session.close()
        self.log_in_again()

    def log_in_again(self) -> None:
        """Forget the people's Salesforce sessions (e.g. after every token was expired)."""
        for sf in self._sf_clients.values():
            sf.session.close()
        self._sf_clients.clear()

    # -- people ----------------------------------------------------------------------------------

    def rep(self, username: str = REP) -> Any:
        """simple-salesforce acting as a sales rep (their edits are theirs, not ours)."""
        if username not in self._sf_clients:
            self._sf_clients[username] = self.salesforce.simple_salesforce(username=username)
        return self._sf_clients[username]

    def marketer(self, email: str = MARKETER) -> Any:
        """hubspot-api-client acting as a marketer (writes stamp hs_updated_by_user_id)."""
        if email not in self._hs_clients:
            token = self.hubspot.emulator.as_user(email)
            self._hs_clients[email] = self.hubspot.client(access_token=token)
        return self._hs_clients[email]

    def create_lead(self, email: str, *, as_user: str = REP, **fields: Any) -> str:
        values = {"LastName": "Lead", "Company": "Acme", "Email": email, **fields}
        return str(self.rep(as_user).Lead.create(values)["id"])

    def update_lead(self, lead_id: str, *, as_user: str = REP, **fields: Any) -> None:
        self.rep(as_user).Lead.update(lead_id, fields)

    def delete_lead(self, lead_id: str, *, as_user: str = REP) -> None:
        self.rep(as_user).Lead.delete(lead_id)

    def create_contacts(self, *contacts: Mapping[str, str]) -> list[str]:
        """One batch create through the real client; ids in input order."""
        api = self.marketer().crm.contacts.batch_api
        answer = api.create(
            BatchInputSimplePublicObjectBatchInputForCreate(
                inputs=[
                    SimplePublicObjectBatchInputForCreate(properties=dict(c), associations=[])
                    for c in contacts
                ]
            )
        )
        by_email = {str(r.properties["email"]).lower(): str(r.id) for r in answer.results}
        return [by_email[str(c["email"]).lower()] for c in contacts]

    def create_contact(self, email: str, **props: str) -> str:
        values = {"email": email, "lastname": "Contact", "company": "Acme", **props}
        return self.create_contacts(values)[0]

    def update_contact(self, contact_id: str, **props: str) -> None:
        self.marketer().crm.contacts.basic_api.update(
            contact_id, SimplePublicObjectInput(properties=props)
        )

    # -- what the sides hold ---------------------------------------------------------------------

    def leads(self) -> dict[str, dict[str, Any]]:
        """Live leads by lower-cased e-mail (read through simple-salesforce)."""
        rows = self.rep().query_all(f"SELECT {', '.join(LEAD_FIELDS)} FROM Lead")["records"]
        out: dict[str, dict[str, Any]] = {}
        for row in rows:
            row = {k: v for k, v in row.items() if k != "attributes"}
            out[str(row.get("Email") or row["Id"]).lower()] = row
        return out

    def lead(self, lead_id: str) -> dict[str, Any]:
        """One lead, every field (through simple-salesforce)."""
        row = self.rep().Lead.get(lead_id)
        return {k: v for k, v in row.items() if k != "attributes"}

    def contacts(self) -> dict[str, dict[str, Any]]:
        """Live contacts by lower-cased e-mail (read through hubspot-api-client)."""
        found = self.marketer().crm.contacts.get_all(properties=list(CONTACT_PROPS))
        out: dict[str, dict[str, Any]] = {}
        for contact in found:
            props = {**contact.properties, "id": str(contact.id)}
            out[str(props.get("email") or contact.id).lower()] = props
        return out

    def contact(self, contact_id: str, *extra: str) -> dict[str, Any]:
        """One contact (the usual properties plus ``extra``) through hubspot-api-client."""
        found = self.marketer().crm.contacts.basic_api.get_by_id(
            contact_id, properties=[*CONTACT_PROPS, *extra]
        )
        return {**found.properties, "id": str(found.id)}


Make = Callable[..., Emulated]
"""The ``make`` fixture (``tests/sync/conftest.py``): builds an :class:`Emulated` pair."""
