"""A Marketo emulator next to a CRM emulator (HubSpot or Salesforce), wired like production.

Why a second sandbox rather than a flag on :class:`~crm_bridge.demo.sandbox.Sandbox`: that one's
shape (Salesforce + HubSpot, pair ``main`` on ``hubspot_salesforce``) is what the kill -9 tests,
the demo tests and the benches rely on, and it must not move.  This one serves the Marketo pairs
(``marketo_hubspot``, ``marketo_salesforce``) to the demo, ``tests/pairs`` and
``bench/marketo_pair_bench.py`` through the same :class:`~crm_bridge.config.LoadedConfig` and
:class:`~crm_bridge.session.Session` a real run uses.  Emulator credentials are fake by design.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from crm_bridge.config import LoadedConfig, config_from_tables
from crm_bridge.connectors.hubspot.emulator import (
    HubSpotEmulator,
    HubSpotEmulatorSettings,
    RunningHubSpot,
)
from crm_bridge.connectors.marketo.emulator import MarketoEmulator, RunningMarketo
from crm_bridge.connectors.salesforce.emulator import RunningSalesforce, SalesforceEmulator
from crm_bridge.emulators.runtime import EmulatorClock

__all__ = ["NURTURE_LIST", "PAIRS", "CrmKind", "MarketoSandbox", "pair_table"]

CrmKind = Literal["hubspot", "salesforce"]
PAIRS: dict[str, CrmKind] = {"marketo_hubspot": "hubspot", "marketo_salesforce": "salesforce"}
"""Marketo pair preset -> the CRM connector it names."""
NURTURE_LIST = "SLA nurture"
LIST_FOLDER_ID = 12
"""Where the connector creates static lists (the emulator accepts any folder id)."""


def pair_table(crm: CrmKind, **overrides: Any) -> dict[str, Any]:
    """The ``[pairs.main]`` table of the Marketo pair whose CRM is ``crm``."""
    preset = next(name for name, kind in PAIRS.items() if kind == crm)
    return {"crm": crm, "map": "marketo", "preset": preset, "overlap_seconds": 5, **overrides}


class MarketoSandbox:
    """A running CRM emulator and Marketo emulator, plus a store, ready for sessions."""

    def __init__(
        self,
        *,
        crm: CrmKind,
        marketo: RunningMarketo,
        hubspot: RunningHubSpot | None = None,
        salesforce: RunningSalesforce | None = None,
        store_url: str,
        workdir: Path,
    ) -> None:
        if (crm == "hubspot") != (hubspot is not None) or (crm == "salesforce") != (
            salesforce is not None
        ):
            raise ValueError(f"a {crm} sandbox needs exactly the {crm} emulator")
        self.crm = crm
        self.marketo = marketo
        self.hubspot = hubspot
        self.salesforce = salesforce
        self.store_url = store_url
        self.workdir = workdir

    @classmethod
    def start(
        cls,
        crm: CrmKind = "hubspot",
        *,
        store_url: str | None = None,
        workdir: Path | None = None,
        clock: EmulatorClock | None = None,
    ) -> MarketoSandbox:
        """Start the CRM's emulator and Marketo's on one clock (HubSpot rate limits off)."""
        where = workdir or Path(tempfile.mkdtemp(prefix="crm-bridge-marketo-"))
        where.mkdir(parents=True, exist_ok=True)
        shared = clock or EmulatorClock()
        marketo = MarketoEmulator(clock=shared).start()
        hubspot = salesforce = None
        if crm == "hubspot":
            settings = HubSpotEmulatorSettings(rate_limits_enabled=False)
            hubspot = HubSpotEmulator(settings, clock=shared).start()
        else:
            salesforce = SalesforceEmulator(clock=shared).start()
        url = store_url or f"sqlite:///{where / 'state.sqlite3'}"
        return cls(
            crm=crm,
            marketo=marketo,
            hubspot=hubspot,
            salesforce=salesforce,
            store_url=url,
            workdir=where,
        )

    @property
    def clock(self) -> EmulatorClock:
        """The Marketo emulator's clock (shared with the CRM's when started here)."""
        return self.marketo.emulator.clock

    def connector_settings(self) -> dict[str, dict[str, Any]]:
        """The ``[connectors.*]`` tables pointing at the emulators, secrets included."""
        mk = self.marketo
        tables: dict[str, dict[str, Any]] = {
            "marketo": {
                "type": "marketo",
                "base_url": mk.base_url,
                "identity_url": mk.identity_url,
                "client_id": mk.client_id,
                "client_secret": mk.client_secret,
                "list_folder_id": LIST_FOLDER_ID,
            }
        }
        if self.hubspot is not None:
            tables["hubspot"] = {
                "type": "hubspot",
                "host": self.hubspot.base_url,
                "access_token": self.hubspot.access_token,
                "objects": ["contacts", "companies", "deals"],
                # Deletions are only visible in the archived listing: poll it every cycle here.
                "archived_poll_seconds": 0,
            }
        if self.salesforce is not None:
            sf = self.salesforce
            tables["salesforce"] = {
                "type": "salesforce",
                "instance_url": sf.instance_url,
                "token_url": sf.token_url,
                "client_id": sf.client_id,
                "client_secret": sf.client_secret,
                "grant_type": "client_credentials",
                "ca_bundle": sf.ca_path,
                "objects": ["Person", "Lead", "Contact", "User"],
            }
        return tables

    def loaded_config(
        self,
        *,
        pair: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        connector_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> LoadedConfig:
        """A validated configuration with one pair ``main`` (the Marketo preset by default)."""
        tables = self.connector_settings()
        for name, override in (connector_overrides or {}).items():
            tables[name] = {**tables[name], **override}
        return config_from_tables(
            tables,
            {
                "store": {"url": self.store_url},
                "pairs": {"main": dict(pair or pair_table(self.crm))},
                **dict(extra or {}),
            },
        )

    def stop(self) -> None:
        """Stop every emulator started for this sandbox."""
        self.marketo.stop()
        if self.hubspot is not None:
            self.hubspot.stop()
        if self.salesforce is not None:
            self.salesforce.stop()

    def __enter__(self) -> MarketoSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
