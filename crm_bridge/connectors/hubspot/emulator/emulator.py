"""The HubSpot emulator object: one portal, its app, and a running server around it.

Why a class and a server handle: tests hold one server for the whole session and reset it
between tests; ``crm-bridge emulate`` starts one and prints :meth:`RunningHubSpot.credentials`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import httpx
from starlette.routing import BaseRoute

from crm_bridge.connectors.hubspot.emulator.api_objects import object_routes
from crm_bridge.connectors.hubspot.emulator.app import build_app
from crm_bridge.connectors.hubspot.emulator.auth import TokenRegistry
from crm_bridge.connectors.hubspot.emulator.controlplane import (
    configure_rate_limits,
    extra_control_routes,
    issue_user_token,
)
from crm_bridge.connectors.hubspot.emulator.journal import Journal
from crm_bridge.connectors.hubspot.emulator.ratelimit import RateLimiter
from crm_bridge.connectors.hubspot.emulator.search import SearchEngine
from crm_bridge.connectors.hubspot.emulator.seed import seed_portal
from crm_bridge.connectors.hubspot.emulator.settings import HubSpotEmulatorSettings
from crm_bridge.connectors.hubspot.emulator.state import Portal
from crm_bridge.connectors.hubspot.emulator.web import Ctx
from crm_bridge.emulators.control import ControlHooks, control_routes
from crm_bridge.emulators.runtime import (
    CallCounter,
    EmulatorClock,
    FaultPlane,
    RunningServer,
    serve,
)

__all__ = ["HubSpotEmulator", "RunningHubSpot"]


def _api_routes(ctx: Ctx) -> list[BaseRoute]:
    from crm_bridge.connectors.hubspot.emulator.api_associations import association_routes
    from crm_bridge.connectors.hubspot.emulator.api_journal import journal_routes
    from crm_bridge.connectors.hubspot.emulator.api_lists import list_routes
    from crm_bridge.connectors.hubspot.emulator.api_oauth import oauth_routes
    from crm_bridge.connectors.hubspot.emulator.api_schema import schema_routes

    return [
        *object_routes(ctx),
        *association_routes(ctx),
        *schema_routes(ctx),
        *list_routes(ctx),
        *oauth_routes(ctx),
        *journal_routes(ctx),
    ]


class HubSpotEmulator:
    """An emulated HubSpot portal served by the real wire protocol."""

    def __init__(
        self,
        settings: HubSpotEmulatorSettings | None = None,
        *,
        clock: EmulatorClock | None = None,
    ) -> None:
        self.settings = settings or HubSpotEmulatorSettings()
        self._baseline = self.settings.model_dump()
        self.clock = clock or EmulatorClock()
        self.faults = FaultPlane()
        self.calls = CallCounter()
        self.portal = Portal(self.clock, self.settings.portal_id)
        self.search_engine = SearchEngine(
            self.portal,
            cache_size=self.settings.search_cache_size,
            lag=lambda: self.settings.search_index_lag_seconds,
        )
        self.tokens = TokenRegistry(self.settings, self.clock)
        self.limiter = RateLimiter(self.settings, self.clock)
        self.journal = Journal(self.settings, self.clock)
        self.portal.observer = self.journal
        self.ctx = Ctx(
            self.settings,
            self.clock,
            self.portal,
            self.search_engine,
            self.tokens,
            self.limiter,
            self.journal,
        )
        hooks = ControlHooks(
            reset_state=self._reset_state,
            snapshot=self.snapshot,
            load=self.load,
            expire_tokens=self.tokens.expire_all,
        )
        control = control_routes(
            faults=self.faults,
            calls=self.calls,
            clock=self.clock,
            hooks=hooks,
            extra=extra_control_routes(self.ctx, self._seed_summary),
        )
        self.app = build_app(
            [*control, *_api_routes(self.ctx)],
            faults=self.faults,
            calls=self.calls,
            limiter=self.limiter,
        )

    def start(self, *, host: str = "127.0.0.1", port: int = 0) -> RunningHubSpot:
        """Serve over plain HTTP on ``host:port`` (0 picks a free port)."""
        return RunningHubSpot(self, serve(self.app, host=host, port=port))

    # -- state ------------------------------------------------------------------------------

    def seed(self, *, contacts: int, seed: int = 0) -> None:
        """Add realistic companies, contacts, deals and engagements (deterministic per seed)."""
        self._seed_summary(contacts, seed)

    def _seed_summary(self, contacts: int, seed: int) -> dict[str, int]:
        summary = seed_portal(self.portal, contacts=contacts, seed=seed)
        self.search_engine.clear()
        return asdict(summary)

    def snapshot(self) -> dict[str, Any]:
        """All portal data as JSON-ready data."""
        return self.portal.snapshot()

    def load(self, data: dict[str, Any]) -> None:
        """Replace the portal data with a snapshot."""
        self.portal.load(data)
        self.search_engine.clear()

    def _reset_state(self) -> None:
        self.portal.reset()
        self.search_engine.clear()
        self.tokens.reset()
        self.journal.reset()
        for key, value in self._baseline.items():
            if getattr(self.settings, key) != value:
                setattr(self.settings, key, value)
        self.limiter.reset()

    def reset(self) -> None:
        """Everything back to the start: data, tokens, limits, faults, call counts, clock."""
        self._reset_state()
        self.faults.clear()
        self.faults.clear_hits()
        self.calls.reset()
        self.clock.reset()

    # -- acting as someone ------------------------------------------------------------------

    def as_user(self, owner_email: str) -> str:
        """An access token acting as the portal user with this email (a "human" editor)."""
        return str(issue_user_token(self.ctx, owner_email)["access_token"])

    def configure_rate_limits(self, **changes: Any) -> dict[str, object]:
        """Same as ``POST /__emulator__/rate-limits``."""
        return configure_rate_limits(self.ctx, changes)


class RunningHubSpot:
    """A started emulator: where it listens and how to talk to it."""

    def __init__(self, emulator: HubSpotEmulator, server: RunningServer) -> None:
        self.emulator = emulator
        self.server = server
        self.base_url = server.base_url
        self.access_token = emulator.settings.private_app_token
        self.client_id = emulator.settings.client_id
        self.client_secret = emulator.settings.client_secret
        self.portal_id = emulator.settings.portal_id
        self.app_id = emulator.settings.app_id
        self.private_app_id = emulator.settings.private_app_id

    def client(self, *, access_token: str | None = None, **config: Any) -> Any:
        """A real ``hubspot.HubSpot`` client pointed at this emulator (extra config: retry=...)."""
        from hubspot import HubSpot

        return HubSpot(access_token=access_token or self.access_token, host=self.base_url, **config)

    def credentials(self) -> dict[str, str]:
        """What ``crm-bridge emulate`` prints for the user to export."""
        return {
            "HUBSPOT_BASE_URL": self.base_url,
            "HUBSPOT_ACCESS_TOKEN": self.access_token,
            "HUBSPOT_CLIENT_ID": self.client_id,
            "HUBSPOT_CLIENT_SECRET": self.client_secret,
            "HUBSPOT_PORTAL_ID": str(self.portal_id),
            "HUBSPOT_APP_ID": str(self.app_id),
            "HUBSPOT_PRIVATE_APP_ID": str(self.private_app_id),
        }

    def control(self, method: str, path: str, json: Any = None) -> Any:
        """Call a ``/__emulator__`` route (``path`` without the prefix); returns parsed JSON."""
        resp = httpx.request(
            method, f"{self.base_url}/__emulator__/{path.lstrip('/')}", json=json, timeout=30
        )
        resp.raise_for_status()
        return resp.json() if resp.content else None

    def stop(self) -> None:
        """Stop serving."""
        self.server.stop()

    def __enter__(self) -> RunningHubSpot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
