"""A running Salesforce + HubSpot pair of emulators, wired to crm-bridge's real connectors.

Why one place builds this: the demo, the benchmarks and the integration tests all need "a CRM and
a marketing platform that behave like the real ones, plus a configuration pointing at them".
Building it three times would drift; here it is built once, through the same
:class:`~crm_bridge.config.LoadedConfig` and :class:`~crm_bridge.session.Session` that a
production run uses.  The emulator credentials are fake by design (printing them is fine); the
configuration still receives them as secrets, exactly as real ones would arrive.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crm_bridge.config import LoadedConfig, config_from_tables
from crm_bridge.connector import Connector
from crm_bridge.connectors.hubspot.emulator import (
    HubSpotEmulator,
    HubSpotEmulatorSettings,
    RunningHubSpot,
)
from crm_bridge.connectors.salesforce.emulator import (
    RunningSalesforce,
    SalesforceEmulator,
    SalesforceEmulatorSettings,
)
from crm_bridge.emulators.runtime import EmulatorClock
from crm_bridge.session import Session

__all__ = ["DEFAULT_PAIR", "Sandbox"]

DEFAULT_PAIR: dict[str, Any] = {
    "crm": "salesforce",
    "map": "hubspot",
    "preset": "hubspot_salesforce",
    "overlap_seconds": 5,
}


class Sandbox:
    """Both emulators running on 127.0.0.1 plus a state store, ready for sessions."""

    def __init__(
        self,
        *,
        salesforce: RunningSalesforce,
        hubspot: RunningHubSpot,
        store_url: str,
        workdir: Path,
    ) -> None:
        self.salesforce = salesforce
        self.hubspot = hubspot
        self.store_url = store_url
        self.workdir = workdir

    @classmethod
    def start(
        cls,
        *,
        store_url: str | None = None,
        workdir: Path | None = None,
        clock: EmulatorClock | None = None,
        hubspot_settings: HubSpotEmulatorSettings | None = None,
        salesforce_settings: SalesforceEmulatorSettings | None = None,
        separate_clocks: bool = False,
    ) -> Sandbox:
        """Start both emulators (sharing one clock) and choose a store (SQLite in ``workdir``)."""
        where = workdir or Path(tempfile.mkdtemp(prefix="crm-bridge-sandbox-"))
        where.mkdir(parents=True, exist_ok=True)
        shared = clock or EmulatorClock()
        sf = SalesforceEmulator(salesforce_settings, clock=shared).start()
        hs_clock = EmulatorClock() if separate_clocks else shared
        hs = HubSpotEmulator(hubspot_settings, clock=hs_clock).start()
        url = store_url or f"sqlite:///{where / 'state.sqlite3'}"
        return cls(salesforce=sf, hubspot=hs, store_url=url, workdir=where)

    @property
    def clock(self) -> EmulatorClock:
        """The emulators' shared clock (move it instead of sleeping)."""
        return self.salesforce.emulator.clock

    def connector_settings(self) -> dict[str, dict[str, Any]]:
        """The ``[connectors.*]`` tables pointing at the emulators, secrets included."""
        sf, hs = self.salesforce, self.hubspot
        return {
            "salesforce": {
                "type": "salesforce",
                "instance_url": sf.instance_url,
                "token_url": sf.token_url,
                "client_id": sf.client_id,
                "client_secret": sf.client_secret,
                "grant_type": "client_credentials",
                "ca_bundle": sf.ca_path,
                "pubsub_endpoint": sf.pubsub_address,  # used once cdc = true
                "objects": [
                    "Person",
                    "Lead",
                    "Contact",
                    "Account",
                    "Opportunity",
                    "OpportunityContactRole",
                    "User",
                ],
            },
            "hubspot": {
                "type": "hubspot",
                "host": hs.base_url,
                "access_token": hs.access_token,
                "objects": ["contacts", "companies", "deals"],
            },
        }

    def loaded_config(
        self,
        *,
        pair: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        connector_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> LoadedConfig:
        """A validated configuration with one pair ``main`` between the two emulators."""
        tables = self.connector_settings()
        for name, override in (connector_overrides or {}).items():
            tables[name] = {**tables[name], **override}
        return config_from_tables(
            tables,
            {
                "store": {"url": self.store_url},
                "pairs": {"main": dict(pair or DEFAULT_PAIR)},
                **dict(extra or {}),
            },
        )

    def session(self, config: LoadedConfig | None = None, **kwargs: Any) -> Session:
        """A session over the sandbox (``kwargs`` go to :meth:`loaded_config`)."""
        return Session(config or self.loaded_config(**kwargs))

    def connector(self, name: str) -> Connector[Any]:
        """A fresh connector instance (e.g. to read what a side holds after a sync)."""
        return self.loaded_config().connectors[name].create()

    def write_config(self, directory: Path | None = None) -> tuple[Path, dict[str, str]]:
        """A TOML file (no secrets) and the environment variables carrying the secrets.

        This is what an admin's setup looks like; subprocess tests and the demo's printout use it.
        """
        where = directory or self.workdir
        tables = self.connector_settings()
        env = {
            "CRM_BRIDGE_CONNECTORS__SALESFORCE__CLIENT_SECRET": str(
                tables["salesforce"].pop("client_secret")
            ),
            "CRM_BRIDGE_CONNECTORS__HUBSPOT__ACCESS_TOKEN": str(
                tables["hubspot"].pop("access_token")
            ),
        }
        lines = ["[store]", f'url = "{self.store_url}"', "", "[daemon]", "interval_seconds = 5", ""]
        for name, table in tables.items():
            lines.append(f"[connectors.{name}]")
            lines.extend(f"{key} = {_toml(value)}" for key, value in table.items())
            lines.append("")
        lines.append("[pairs.main]")
        lines.extend(f"{key} = {_toml(value)}" for key, value in DEFAULT_PAIR.items())
        path = where / "crm-bridge.toml"
        path.write_text("\n".join(lines) + "\n")
        return path, env

    def align_owners(self) -> dict[str, str]:
        """Give every HubSpot owner a Salesforce user with the same e-mail (as a real org has).

        Returns e-mail -> Salesforce user id.  Owner mapping matches people by e-mail, so without
        this the emulators' independent seed data would share no owners at all.
        """
        hs = self.hubspot.client()
        org = self.salesforce.emulator.org
        made: dict[str, str] = {}
        for owner in hs.crm.owners.owners_api.get_page(limit=100).results:
            existing = org.user_by_username(owner.email)
            if existing is not None:
                made[owner.email] = existing["Id"]
                continue
            made[owner.email] = org.add_user(
                owner.email, owner.first_name or "", owner.last_name or "", email=owner.email
            )
        return made

    def stop(self) -> None:
        """Stop both emulators."""
        self.salesforce.stop()
        self.hubspot.stop()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
