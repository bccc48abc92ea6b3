"""Probes 2 and 3 of the correctness issue, as an admin meets them: ``crm-bridge sync`` as a
subprocess against both emulators, faults from the emulators' fault plane, people editing
through the vendors' own clients (simple-salesforce, hubspot-api-client).

2. A cycle fails on Salesforce's first Collections write (503); a marketer then edits the
   person's job title in HubSpot; the next clean sync must keep the marketer's newer edit.
3. The first sync does not complete (HubSpot answers 429 on its daily limit); a rep deletes the
   lead; the next clean sync must not re-create the lead from the HubSpot contact.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hubspot.crm.contacts import SimplePublicObjectInput, SimplePublicObjectInputForCreate

from crm_bridge.connectors.hubspot.emulator import HubSpotEmulatorSettings
from crm_bridge.demo.sandbox import Sandbox
from crm_bridge.emulators.runtime import Fault

REP = "rick.rep@example.com"
MARKETER = "mark.marketer@example.com"
EMAIL = "probe.person@example.com"


class Admin:
    """One sandbox, its config on disk, and ``crm-bridge sync`` run the way an admin runs it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.sandbox = Sandbox.start(
            workdir=directory,
            hubspot_settings=HubSpotEmulatorSettings(rate_limits_enabled=False),
        )
        self.sandbox.align_owners()
        self.config, secrets = self.sandbox.write_config(directory)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_BRIDGE_")}
        self.env.update(secrets)
        self.rep = self.sandbox.salesforce.simple_salesforce(username=REP)
        hubspot = self.sandbox.hubspot
        self.marketer = hubspot.client(access_token=hubspot.emulator.as_user(MARKETER))

    def sync(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "crm_bridge", "sync", "--config", str(self.config)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def leads(self) -> list[dict[str, Any]]:
        rows = self.rep.query_all(f"SELECT Id, Title FROM Lead WHERE Email = '{EMAIL}'")
        return list(rows["records"])

    def contact(self, contact_id: str) -> dict[str, Any]:
        found = self.marketer.crm.contacts.basic_api.get_by_id(
            contact_id, properties=["jobtitle", "email"]
        )
        return dict(found.properties)

    def one_person_on_both_sides(self) -> tuple[str, str]:
        contact = self.marketer.crm.contacts.basic_api.create(
            SimplePublicObjectInputForCreate(
                properties={
                    "email": EMAIL,
                    "lastname": "Person",
                    "company": "Probe",
                    "jobtitle": "VP",
                    "phone": "+1 555 0100",
                }
            )
        )
        self.sandbox.clock.advance(5)  # the lead is the newer record: its title wins at first
        lead = self.rep.Lead.create(
            {"Email": EMAIL, "LastName": "Person", "Company": "Probe", "Title": "CTO"}
        )
        self.sandbox.clock.advance(5)
        return str(lead["id"]), str(contact.id)


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[Admin]:
    a = Admin(tmp_path)
    yield a
    a.rep.session.close()  # keep-alive sockets would hold the emulators' graceful shutdown
    a.marketer.crm.contacts.basic_api.api_client.rest_client.pool_manager.clear()
    a.sandbox.stop()


def test_an_edit_made_after_a_failed_cycle_survives_the_next_sync(admin: Admin) -> None:
    _, contact_id = admin.one_person_on_both_sides()
    faults = admin.sandbox.salesforce.emulator.faults
    faults.add(
        Fault(
            path=r"/composite$",
            method="POST",
            body_regex="composite/sobjects",
            status=503,
            body=[{"errorCode": "SERVER_UNAVAILABLE", "message": "try again later"}],
            times=None,
        )
    )

    failed = admin.sync()

    assert failed.returncode == 4, failed.stdout + failed.stderr
    assert admin.contact(contact_id)["jobtitle"] == "VP"  # the planned HubSpot write never went
    faults.clear()
    admin.sandbox.clock.advance(5)
    admin.marketer.crm.contacts.basic_api.update(
        contact_id, SimplePublicObjectInput(properties={"jobtitle": "Director"})
    )
    admin.sandbox.clock.advance(5)

    clean = admin.sync()

    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert admin.contact(contact_id)["jobtitle"] == "Director"  # not the CRM's older "CTO"
    (lead,) = admin.leads()
    assert lead["Title"] == "Director"


def test_a_lead_deleted_before_the_first_completed_sync_stays_deleted(admin: Admin) -> None:
    lead_id, contact_id = admin.one_person_on_both_sides()
    faults = admin.sandbox.hubspot.emulator.faults
    faults.add(
        Fault(
            path=r"/search$",
            status=429,
            body={
                "status": "error",
                "message": "You have reached your daily limit.",
                "errorType": "RATE_LIMIT",
                "policyName": "DAILY",
            },
            times=None,
        )
    )

    failed = admin.sync()

    assert failed.returncode != 0, failed.stdout + failed.stderr
    faults.clear()
    admin.rep.Lead.delete(lead_id)
    admin.sandbox.clock.advance(5)

    clean = admin.sync()
    again = admin.sync()

    assert clean.returncode == 0 and again.returncode == 0, clean.stdout + clean.stderr
    assert admin.leads() == []  # not re-created from the HubSpot contact
    assert admin.contact(contact_id)["email"] == EMAIL  # delete_policy "flag": the contact stays
