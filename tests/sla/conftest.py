"""An SLA world: both emulators, the real connectors, a SQLite store and a controllable clock.

Time is the emulators' clock, frozen at a Monday 09:00 UTC and moved only by :meth:`advance`, so
``SystemModstamp``/``hs_createdate`` stamps and the engine's "now" always agree.  Nothing sleeps.
Webhooks go to a respx router mounted as the engine's httpx transport (no real network).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from crm_bridge.connector import Upsert
from crm_bridge.connectors.hubspot import HubSpotConnector, HubSpotSettings
from crm_bridge.connectors.hubspot.emulator.emulator import RunningHubSpot
from crm_bridge.connectors.salesforce import SalesforceConnector, SalesforceSettings
from crm_bridge.connectors.salesforce.emulator import RunningSalesforce
from crm_bridge.http import FakeClock
from crm_bridge.sla.engine import SlaEngine, SlaReport
from crm_bridge.sla.policy import SlaSettings
from crm_bridge.store import Store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday; the team works 09:00-17:00 UTC
SLACK_URL = "https://hooks.example.test/services/T000/B000/slack-secret-token"
JSON_URL = "https://hooks.example.test/sla/json-secret-token"

REPS = {
    "ann": "ann.rep@example.com",
    "bob": "bob.rep@example.com",
    "cat": "cat.rep@example.com",
}
MANAGER = "maria.manager@example.com"
NURTURE = "nurture.queue@example.com"


EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "config.example.toml"


def admin_config(monkeypatch: pytest.MonkeyPatch, **sections: Any) -> dict[str, Any]:
    """``config.example.toml`` (what an admin starts from) with ``sections`` added or replaced.

    The SLA section names the example's connectors and pair, which config validation checks
    exist; their secrets come from the environment, as they would for the admin.
    """
    monkeypatch.setenv("CRM_BRIDGE_CONNECTORS__SALESFORCE__CLIENT_SECRET", "test-secret")
    monkeypatch.setenv("CRM_BRIDGE_CONNECTORS__HUBSPOT__ACCESS_TOKEN", "test-token")
    with EXAMPLE_CONFIG.open("rb") as handle:
        config: dict[str, Any] = tomllib.load(handle)
    config.update(sections)
    return config


def sla_config(**overrides: Any) -> dict[str, Any]:
    """The policy the engine tests run (accept 4 h, first touch 8 h, 75% reminders)."""
    config: dict[str, Any] = {
        "crm": {
            "connector": "salesforce",
            "object": "Lead",
            "owner_field": "OwnerId",
            "status_field": "Status",
            "accepted_statuses": ["Accepted", "Working - Contacted"],
            "rejected_statuses": ["Rejected"],
            "closed_statuses": ["Closed - Converted", "Closed - Not Converted"],
            "reject_reason_field": "Rejection_Reason__c",
            "created_field": "CreatedDate",
            "source_field": "LeadSource",
            "reassign_status": "Open - Not Contacted",
        },
        "marketing": {
            "connector": "hubspot",
            "object": "contacts",
            "link_pair": "main",
            "link_object": "leads",
            "lifecycle_field": "lifecyclestage",
            "score_field": "hubspotscore",
            "source_field": "hs_analytics_source",
            "mql_date_field": "hs_lifecyclestage_marketingqualifiedlead_date",
        },
        "calendars": {"inside": {"timezone": "UTC", "holiday_country": None}},
        "reps": {
            "ann": {"email": REPS["ann"], "slack": "UANN"},
            # Bob is off on Tuesday 3 March: reassignment must skip him that day.
            "bob": {
                "email": REPS["bob"],
                "time_off": [{"start": "2026-03-03", "end": "2026-03-03"}],
            },
            "cat": {"email": REPS["cat"], "cap": 5},
        },
        "teams": {
            "inside": {
                "calendar": "inside",
                "members": ["ann", "bob", "cat"],
                "manager_email": MANAGER,
                "manager_slack": "UMARIA",
            }
        },
        "policies": {
            "inbound": {
                "teams": ["inside"],
                "mql": {
                    "lifecycle_stages": ["marketingqualifiedlead"],
                    "min_score": 50,
                    "sources": ["ORGANIC_SEARCH", "PAID_SEARCH"],
                },
                "accept": {"target_hours": 4, "remind_at": 0.75},
                "first_touch": {"target_hours": 8, "remind_at": 0.75},
                "remind": {"task": True, "webhook": "reps"},
                "escalate_webhooks": ["managers", "ops"],
                "breach": [
                    {"action": "escalate", "after_hours": 0},
                    {"action": "reassign", "after_hours": 1},
                    {"action": "recycle", "after_hours": 2},
                ],
                "max_reassignments": 1,
                "reject_reasons": {"no_budget": "recycle", "spam": "disqualify"},
            }
        },
        "webhooks": {
            "managers": {"url": SLACK_URL, "format": "slack"},
            "ops": {"url": JSON_URL, "format": "json"},
            "reps": {"url": JSON_URL, "format": "json"},
        },
        "recycle": {
            "crm_status": "Recycled",
            "owner_email": NURTURE,
            "marketing_lifecycle": "lead",
            "marketing_status_field": "hs_lead_status",
            "marketing_lead_status": "OPEN",
            "nurture_list": "SLA nurture",
        },
        "disqualify": {"crm_status": "Closed - Not Converted", "marketing_lifecycle": "other"},
    }
    config.update(overrides)
    return config


class SlaWorld:
    """Emulators + connectors + store + engine; helpers act as reps and move time."""

    def __init__(
        self, tmp_path: Path, salesforce: RunningSalesforce, hubspot: RunningHubSpot
    ) -> None:
        self.sf_emu, self.hs_emu = salesforce, hubspot
        for emu in (salesforce.emulator, hubspot.emulator):
            emu.clock.freeze(T0)
        self._admin: Any = None
        self.users: dict[str, str] = {}
        self._rep_clients: dict[str, Any] = {}
        for key, email in {**REPS, "maria": MANAGER, "nurture": NURTURE}.items():
            created = self.admin.User.create(
                {"Username": email, "Email": email, "LastName": key.capitalize()}
            )
            self.users[key] = created["id"]
        self.admin.toolingexecute(
            "sobjects/CustomField",
            method="POST",
            data={
                "FullName": "Lead.Rejection_Reason__c",
                "Metadata": {"type": "Text", "label": "Rejection Reason", "length": 80},
            },
        )
        self.fake = FakeClock(T0)
        self.crm = SalesforceConnector(
            SalesforceSettings(
                instance_url=salesforce.instance_url,
                token_url=salesforce.token_url,
                client_id=salesforce.client_id,
                client_secret=SecretStr(salesforce.client_secret),
                ca_bundle=salesforce.ca_path,
                timeout_seconds=10.0,
                objects=["Person", "Lead"],
            ),
            name="salesforce",
            clock=self.fake,
        )
        self.marketing = HubSpotConnector(
            HubSpotSettings(
                host=hubspot.base_url,
                access_token=SecretStr(hubspot.access_token),
                objects=["contacts"],
            ),
            name="hubspot",
            clock=self.fake,
        )
        self.store_path = tmp_path / "sla.sqlite3"
        self.store = Store.open(f"sqlite:///{self.store_path}")
        self.router = respx.Router(assert_all_called=False)
        self.posts: list[tuple[str, Any]] = []
        self.hook_status = 200

        def record(request: httpx.Request) -> httpx.Response:
            self.posts.append((str(request.url), json.loads(request.content)))
            return httpx.Response(self.hook_status)

        self.router.post(url__startswith="https://hooks.example.test/").mock(side_effect=record)
        self.http = httpx.Client(transport=httpx.MockTransport(self.router.handler))
        self.settings = SlaSettings.model_validate(sla_config())
        self.engine = self.new_engine()

    def new_engine(self, settings: SlaSettings | None = None) -> SlaEngine:
        return SlaEngine(
            settings or self.settings,
            crm=self.crm,
            marketing=self.marketing,
            store=self.store,
            now=self.now,
            http=self.http,
        )

    # -- time -----------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.sf_emu.emulator.clock.now()

    def advance_to(self, when: datetime) -> None:
        delta = (when - self.now()).total_seconds()
        assert delta >= 0, "time only moves forward"
        for emu in (self.sf_emu.emulator, self.hs_emu.emulator):
            emu.clock.advance(delta)
        self.fake.advance(delta)
        self._drop_clients()

    def cycle(self) -> SlaReport:
        return self.engine.run_cycle()

    # -- data -----------------------------------------------------------------------------------

    def new_lead(
        self,
        name: str,
        *,
        owner: str = "ann",
        score: int = 80,
        lifecycle: str = "marketingqualifiedlead",
        source: str = "ORGANIC_SEARCH",
        mql_minutes_before: int = 7,
    ) -> tuple[str, str]:
        """A HubSpot MQL contact and its Salesforce lead owned by ``owner``, linked in the store."""
        email = f"{name.lower()}@prospect.example"
        mql_at = self.now() - timedelta(minutes=mql_minutes_before)
        [created] = self.marketing.write(
            "contacts",
            [
                Upsert(
                    key=name,
                    fields={
                        "email": email,
                        "lastname": name,
                        "lifecyclestage": lifecycle,
                        "hubspotscore": str(score),
                        "hs_analytics_source": source,
                        "hs_lifecyclestage_marketingqualifiedlead_date": mql_at.isoformat(),
                    },
                )
            ],
        )
        assert created.ok and created.id, created
        lead = self.admin.Lead.create(
            {
                "LastName": name,
                "Company": f"{name} Inc",
                "Email": email,
                "OwnerId": self.users[owner],
                "LeadSource": "Web",
            }
        )
        with self.store.transaction() as tx:
            tx.insert_link(
                "main",
                "leads",
                crm_id=lead["id"],
                map_id=created.id,
                crm_version=None,
                map_version=None,
            )
        return lead["id"], created.id

    @property
    def admin(self) -> Any:
        """An integration-user client (re-created after time jumps: tokens live 2 h)."""
        if self._admin is None:
            self._admin = self.sf_emu.simple_salesforce()
        return self._admin

    def _drop_clients(self) -> None:
        for client in [self._admin, *self._rep_clients.values()]:
            if client is not None:
                client.session.close()
        self._admin = None
        self._rep_clients.clear()

    def as_rep(self, rep: str) -> Any:
        if rep not in self._rep_clients:
            self._rep_clients[rep] = self.sf_emu.simple_salesforce(username=REPS[rep])
        return self._rep_clients[rep]

    def lead(self, lead_id: str) -> dict[str, Any]:
        row: dict[str, Any] = self.admin.Lead.get(lead_id)
        return row

    def contact(self, contact_id: str) -> dict[str, Any]:
        [record] = self.marketing.fetch("contacts", [contact_id])
        return dict(record.fields)

    def audit(self, lead_id: str) -> list[tuple[str, dict[str, Any]]]:
        with self.store.transaction(readonly=True) as tx:
            return [(e.kind, dict(e.data)) for e in tx.audit_entries(subject=lead_id)]

    def tasks(self, lead_id: str) -> list[dict[str, Any]]:
        rows = self.admin.query(f"SELECT Id, OwnerId, Subject FROM Task WHERE WhoId = '{lead_id}'")
        return list(rows["records"])

    def close(self) -> None:
        self._drop_clients()
        self.engine.close()
        self.http.close()
        self.crm.close()
        self.marketing.close()
        self.store.close()


@pytest.fixture
def world(
    tmp_path: Path, salesforce: RunningSalesforce, hubspot: RunningHubSpot
) -> Iterator[SlaWorld]:
    w = SlaWorld(tmp_path, salesforce, hubspot)
    yield w
    w.close()
