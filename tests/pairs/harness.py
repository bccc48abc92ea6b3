"""One Marketo pair (HubSpot or Salesforce as the CRM) on the emulators, through the real connectors.

:class:`MarketoPair` wires pair ``main`` (preset ``marketo_hubspot`` or ``marketo_salesforce``)
between the session-wide emulators (reset before every test by their fixtures) and a fresh SQLite
store, through :class:`~crm_bridge.demo.marketo.MarketoSandbox`'s configuration.  Connectors get a
:class:`LinkedClock` whose sleeps move every emulator clock, so back-offs pass on the servers and
no test sleeps.

People act like people: the marketer edits Marketo through its control plane (the UI's "Change
Data Value"), reps edit HubSpot through hubspot-api-client with their own token and Salesforce
through simple-salesforce as themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from hubspot.crm.contacts import SimplePublicObjectInput, SimplePublicObjectInputForCreate

from crm_bridge.config import LoadedConfig
from crm_bridge.connector import Connector
from crm_bridge.connectors.hubspot import HubSpotConnector, HubSpotSettings
from crm_bridge.connectors.hubspot.emulator import RunningHubSpot
from crm_bridge.connectors.marketo import MarketoConnector, MarketoSettings
from crm_bridge.connectors.marketo.client import InstanceBudget
from crm_bridge.connectors.marketo.emulator import RunningMarketo
from crm_bridge.connectors.salesforce import SalesforceConnector, SalesforceSettings
from crm_bridge.connectors.salesforce.emulator import RunningSalesforce
from crm_bridge.demo.marketo import CrmKind, MarketoSandbox, pair_table
from crm_bridge.session import Session
from crm_bridge.store import DeadLetter, Link
from crm_bridge.sync.runner import CycleReport, SyncRunner
from tests.sync.emulated import LinkedClock

REP = "rick.rep@example.com"
HS_PROPS = ("email", "firstname", "lastname", "company", "jobtitle", "phone", "hs_lead_status",
            "hs_analytics_source", "hubspot_owner_id", "lifecyclestage")  # fmt: skip
SF_FIELDS = ("Id", "Email", "FirstName", "LastName", "Company", "Title", "Phone", "LeadSource",
             "Status")  # fmt: skip


class MarketoPair:
    """Pair ``main`` between a CRM emulator and the Marketo emulator, with a SQLite store."""

    def __init__(
        self,
        crm: CrmKind,
        marketo: RunningMarketo,
        workdir: Path,
        *,
        hubspot: RunningHubSpot | None = None,
        salesforce: RunningSalesforce | None = None,
        pair: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        marketo_overrides: Mapping[str, Any] | None = None,
        crm_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.kind = crm
        self.marketo = marketo
        self.hubspot = hubspot
        self.salesforce = salesforce
        self.sandbox = MarketoSandbox(
            crm=crm,
            marketo=marketo,
            hubspot=hubspot,
            salesforce=salesforce,
            store_url=f"sqlite:///{workdir / 'state.sqlite3'}",
            workdir=workdir,
        )
        crm_clock = (hubspot or salesforce).emulator.clock  # type: ignore[union-attr]
        self.clock = LinkedClock(marketo.emulator.clock, crm_clock)
        self.config: LoadedConfig = self.sandbox.loaded_config(
            pair=pair_table(crm, **dict(pair or {})),
            extra=extra,
            connector_overrides={
                "marketo": dict(marketo_overrides or {}),
                crm: dict(crm_overrides or {}),
            },
        )
        mk_settings = self.config.connectors["marketo"].settings
        assert isinstance(mk_settings, MarketoSettings)
        self.map = MarketoConnector(
            mk_settings,
            name="marketo",
            clock=self.clock,
            budget=InstanceBudget(mk_settings, self.clock),
        )
        crm_settings = self.config.connectors[crm].settings
        self.crm: Connector[Any]
        if crm == "hubspot":
            assert isinstance(crm_settings, HubSpotSettings)
            self.crm = HubSpotConnector(crm_settings, name="hubspot", clock=self.clock)
        else:
            assert isinstance(crm_settings, SalesforceSettings)
            self.crm = SalesforceConnector(crm_settings, name="salesforce", clock=self.clock)
        connectors: dict[str, Connector[Any]] = {crm: self.crm, "marketo": self.map}
        self.session = Session(self.config, connectors=connectors, now=self.now)
        self._clients: dict[str, Any] = {}

    # -- time and the engine ---------------------------------------------------------------------

    def now(self) -> datetime:
        return self.marketo.emulator.clock.now()

    def advance(self, seconds: float) -> None:
        """Let time pass on both emulators (instead of sleeping)."""
        self.marketo.emulator.clock.advance(seconds)
        crm = self.hubspot or self.salesforce
        assert crm is not None
        crm.emulator.clock.advance(seconds)

    @property
    def runner(self) -> SyncRunner:
        return self.session.runner("main")

    def cycle(self, **kwargs: Any) -> CycleReport:
        report = self.runner.run_cycle(**kwargs)
        self.advance(1)
        return report

    def links(self) -> list[Link]:
        with self.session.store.transaction(readonly=True) as tx:
            return list(tx.iter_links("main", "leads", status="active"))

    def dead_letters(self) -> list[DeadLetter]:
        with self.session.store.transaction(readonly=True) as tx:
            return tx.dead_letters(pair="main", status="open")

    def data(self) -> tuple[Any, Any]:
        """Everything both sides hold (to prove a cycle wrote nothing)."""
        crm = self.hubspot or self.salesforce
        assert crm is not None
        crm_data = crm.emulator.snapshot()
        if isinstance(crm_data, dict):
            crm_data.pop("counter", None)
        mk = self.marketo.emulator.snapshot()
        return crm_data, {k: v for k, v in mk.items() if k in ("leads", "lists")}

    def close(self) -> None:
        self.session.close()
        for client in self._clients.values():
            session = getattr(client, "session", None)
            if session is not None:
                session.close()

    # -- the marketer in Marketo -----------------------------------------------------------------

    def create_lead(self, email: str, **values: Any) -> str:
        row = {"email": email, "lastName": "Lead", "company": "Acme", **values}
        return str(self.marketo.emulator.add_leads([row])[0])

    def edit_lead(self, lead_id: str, **changes: Any) -> None:
        self.marketo.control("POST", f"leads/{lead_id}/edit", {"changes": changes})

    def delete_lead(self, lead_id: str) -> None:
        inst = self.marketo.emulator.instance
        with inst.lock:
            inst.delete_lead(inst.leads[int(lead_id)])

    def leads(self) -> dict[str, dict[str, Any]]:
        """Live Marketo leads by lower-cased e-mail."""
        inst = self.marketo.emulator.instance
        with inst.lock:
            return {
                str(lead.values.get("email") or lead.id).lower(): {
                    "id": str(lead.id),
                    **lead.values,
                }
                for lead in inst.leads.values()
            }

    # -- the rep in the CRM ----------------------------------------------------------------------

    def _hs(self) -> Any:
        assert self.hubspot is not None
        if "hs" not in self._clients:
            token = self.hubspot.emulator.as_user(REP)
            self._clients["hs"] = self.hubspot.client(access_token=token)
        return self._clients["hs"]

    def _sf(self) -> Any:
        assert self.salesforce is not None
        if "sf" not in self._clients:
            org = self.salesforce.emulator.org
            if org.user_by_username(REP) is None:
                org.add_user(REP, "Rick", "Alvarez", email=REP)
            self._clients["sf"] = self.salesforce.simple_salesforce(username=REP)
        return self._clients["sf"]

    def create_person(self, email: str, **values: Any) -> str:
        """A person created by the rep in the CRM (HubSpot contact or Salesforce Lead)."""
        if self.kind == "hubspot":
            props = {"email": email, "lastname": "Person", "company": "Acme", **values}
            made = self._hs().crm.contacts.basic_api.create(
                SimplePublicObjectInputForCreate(properties=props)
            )
            return str(made.id)
        fields = {"Email": email, "LastName": "Person", "Company": "Acme", **values}
        return str(self._sf().Lead.create(fields)["id"])

    def edit_person(self, person_id: str, **values: Any) -> None:
        if self.kind == "hubspot":
            self._hs().crm.contacts.basic_api.update(
                person_id, SimplePublicObjectInput(properties=values)
            )
        else:
            self._sf().Lead.update(person_id, values)

    def delete_person(self, person_id: str) -> None:
        if self.kind == "hubspot":
            self._hs().crm.contacts.basic_api.archive(person_id)
        else:
            self._sf().Lead.delete(person_id)

    def people(self) -> dict[str, dict[str, Any]]:
        """Live CRM people by lower-cased e-mail, with the preset's field names."""
        if self.kind == "hubspot":
            found = self._hs().crm.contacts.get_all(properties=list(HS_PROPS))
            return {
                str(c.properties.get("email") or c.id).lower(): {**c.properties, "id": str(c.id)}
                for c in found
            }
        rows = self._sf().query_all(f"SELECT {', '.join(SF_FIELDS)} FROM Lead")["records"]
        return {
            str(r.get("Email") or r["Id"]).lower(): {
                "id": r["Id"],
                **{k: v for k, v in r.items() if k != "attributes"},
            }
            for r in rows
        }
