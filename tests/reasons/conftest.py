"""Fixtures: the real connectors wired to both emulators, a taxonomy, and an in-memory store."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from crm_bridge.connectors.hubspot import HubSpotConnector, HubSpotSettings
from crm_bridge.connectors.hubspot.emulator.emulator import RunningHubSpot
from crm_bridge.connectors.salesforce import SalesforceConnector, SalesforceSettings
from crm_bridge.connectors.salesforce.emulator import RunningSalesforce
from crm_bridge.http import FakeClock
from crm_bridge.reasons.taxonomy import ReasonsSettings
from crm_bridge.store import Store

TAXONOMY_V1 = """
[reasons]
version = 1
crm = "sf"
marketing = "hs"
list_expiry_days = 30

[reasons.codes.price]
category = "lost"
label = "Price"
description = "Too expensive for the buyer."

[reasons.codes.no_budget]
category = "lost"
label = "No budget"

[reasons.codes.competitor]
category = "lost"
label = "Competitor"

[reasons.codes.other_loss]
category = "lost"
label = "Other"
requires_note = true

[reasons.codes.product_fit]
category = "won"
label = "Product fit"

[reasons.codes.relationship]
category = "won"
label = "Relationship"

[reasons.codes.not_icp]
category = "lead_rejected"
label = "Not our ICP"

[reasons.codes.student]
category = "disqualified"
label = "Student / personal"
"""

TAXONOMY_V2 = (
    TAXONOMY_V1.replace("version = 1", "version = 2").replace(
        '[reasons.codes.no_budget]\ncategory = "lost"\nlabel = "No budget"\n', ""
    )
    + """
[reasons.codes.timing]
category = "lost"
label = "Bad timing"

[reasons.deprecated]
no_budget = "price"
"""
)


def reasons_settings(text: str = TAXONOMY_V1, **overrides: Any) -> ReasonsSettings:
    """Parse a ``[reasons]`` TOML section the way the config loader does."""
    raw = tomllib.loads(text)["reasons"]
    raw.update(overrides)
    return ReasonsSettings.model_validate(raw)


def _sf_settings(salesforce: RunningSalesforce) -> SalesforceSettings:
    return SalesforceSettings(
        instance_url=salesforce.instance_url,
        token_url=salesforce.token_url,
        client_id=salesforce.client_id,
        client_secret=SecretStr(salesforce.client_secret),
        ca_bundle=salesforce.ca_path,
        timeout_seconds=10.0,
        objects=[
            "Lead",
            "Contact",
            "Account",
            "Opportunity",
            "OpportunityContactRole",
            "User",
            "Task",
        ],
    )


@pytest.fixture
def sf(salesforce: RunningSalesforce) -> Iterator[SalesforceConnector]:
    """The real Salesforce connector against the emulator."""
    conn = SalesforceConnector(_sf_settings(salesforce), name="sf", clock=FakeClock())
    yield conn
    conn.close()


@pytest.fixture
def hs(hubspot: RunningHubSpot) -> Iterator[HubSpotConnector]:
    """The real HubSpot connector against the emulator."""
    settings = HubSpotSettings(host=hubspot.base_url, access_token=SecretStr(hubspot.access_token))
    conn = HubSpotConnector(settings, name="hs", clock=FakeClock())
    yield conn
    conn.close()


@pytest.fixture
def store() -> Iterator[Store]:
    """A fresh in-memory store at head."""
    with Store.open("sqlite://") as s:
        yield s
