"""The Marketo emulator object: one instance, its app, and a running server around it.

Why a class and a server handle: tests hold one server for the whole session and reset it
between tests; a later ``crm-bridge emulate``/demo starts one and prints
:meth:`RunningMarketo.credentials`.
"""

from __future__ import annotations

from typing import Any

import httpx
from starlette.routing import BaseRoute

from crm_bridge.connectors.marketo.emulator.api_activities import activity_routes
from crm_bridge.connectors.marketo.emulator.api_assets import asset_routes
from crm_bridge.connectors.marketo.emulator.api_bulk import bulk_routes
from crm_bridge.connectors.marketo.emulator.api_identity import identity_routes
from crm_bridge.connectors.marketo.emulator.api_leads import lead_routes
from crm_bridge.connectors.marketo.emulator.api_lists import list_routes, program_routes
from crm_bridge.connectors.marketo.emulator.api_objects import object_routes
from crm_bridge.connectors.marketo.emulator.app import build_app
from crm_bridge.connectors.marketo.emulator.auth import TokenRegistry
from crm_bridge.connectors.marketo.emulator.bulk import BulkJobs
from crm_bridge.connectors.marketo.emulator.controlplane import (
    add_leads,
    configure,
    extra_control_routes,
    record_activity,
)
from crm_bridge.connectors.marketo.emulator.limits import InFlight, RateLimiter
from crm_bridge.connectors.marketo.emulator.seed import seed_leads
from crm_bridge.connectors.marketo.emulator.settings import MarketoEmulatorSettings
from crm_bridge.connectors.marketo.emulator.state import Instance
from crm_bridge.connectors.marketo.emulator.web import Ctx
from crm_bridge.emulators.control import ControlHooks, control_routes
from crm_bridge.emulators.runtime import (
    CallCounter,
    EmulatorClock,
    FaultPlane,
    RunningServer,
    TlsMaterial,
    serve,
)

__all__ = ["MarketoEmulator", "RunningMarketo"]


def _api_routes(ctx: Ctx) -> list[BaseRoute]:
    return [
        *identity_routes(ctx),
        *lead_routes(ctx),
        *activity_routes(ctx),
        *list_routes(ctx),
        *program_routes(ctx),
        *object_routes(ctx),
        *bulk_routes(ctx),
        *asset_routes(ctx),
    ]


class MarketoEmulator:
    """An emulated Marketo instance served by the real wire protocol."""

    def __init__(
        self,
        settings: MarketoEmulatorSettings | None = None,
        *,
        clock: EmulatorClock | None = None,
    ) -> None:
        self.settings = settings or MarketoEmulatorSettings()
        self._baseline = self.settings.model_dump()
        self.clock = clock or EmulatorClock()
        self.faults = FaultPlane()
        self.calls = CallCounter()
        self.in_flight = InFlight()
        self.instance = Instance(self.clock)
        self.tokens = TokenRegistry(self.settings, self.clock)
        self.limiter = RateLimiter(self.settings, self.clock)
        self.bulk = BulkJobs(self.settings, self.instance)
        self.ctx = Ctx(
            self.settings, self.clock, self.instance, self.tokens, self.limiter, self.bulk
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
            extra=extra_control_routes(self.ctx, self.in_flight),
        )
        self.app = build_app(
            [*control, *_api_routes(self.ctx)],
            settings=self.settings,
            faults=self.faults,
            calls=self.calls,
            in_flight=self.in_flight,
            arrival=lambda: self.instance.next_lead_id,
        )

    def start(
        self, *, host: str = "127.0.0.1", port: int = 0, tls: TlsMaterial | None = None
    ) -> RunningMarketo:
        """Serve on ``host:port`` (0 picks a free port), plain HTTP unless ``tls`` is given."""
        return RunningMarketo(self, serve(self.app, host=host, port=port, tls=tls))

    # -- state ------------------------------------------------------------------------------

    def seed(self, *, leads: int, seed: int = 0) -> list[int]:
        """Add ``leads`` realistic leads (deterministic per seed); their ids."""
        return add_leads(self.ctx, seed_leads(leads, seed))

    def add_leads(self, leads: list[dict[str, Any]]) -> list[int]:
        """Same as ``POST /__emulator__/leads``."""
        return add_leads(self.ctx, leads)

    def record_activity(self, lead_id: int, type_key: int | str, **extra: Any) -> dict[str, Any]:
        """Same as ``POST /__emulator__/activities``."""
        return record_activity(self.ctx, {"leadId": lead_id, "type": type_key, **extra})

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Same as ``POST /__emulator__/settings``."""
        return configure(self.ctx, self.in_flight, changes)

    def snapshot(self) -> dict[str, Any]:
        """All instance data as JSON-ready data."""
        return self.instance.snapshot()

    def load(self, data: dict[str, Any]) -> None:
        """Replace the instance data with a snapshot."""
        self.instance.load(data)

    def _reset_state(self) -> None:
        self.instance.reset()
        self.bulk.reset()
        self.tokens.reset()
        for key, value in self._baseline.items():
            if getattr(self.settings, key) != value:
                setattr(self.settings, key, value)
        self.limiter.reset()
        self.in_flight.reset_peak()

    def reset(self) -> None:
        """Everything back to the start: data, tokens, limits, faults, call counts, clock."""
        self._reset_state()
        self.faults.clear()
        self.faults.clear_hits()
        self.calls.reset()
        self.clock.reset()


class RunningMarketo:
    """A started emulator: where it listens and how to talk to it."""

    def __init__(self, emulator: MarketoEmulator, server: RunningServer) -> None:
        self.emulator = emulator
        self.server = server
        self.base_url = server.base_url
        self.client_id = emulator.settings.client_id
        self.client_secret = emulator.settings.client_secret
        self.munchkin_id = emulator.settings.munchkin_id

    @property
    def identity_url(self) -> str:
        """``<base>/identity`` (the vendor's Identity URL)."""
        return f"{self.base_url}/identity"

    @property
    def rest_url(self) -> str:
        """``<base>/rest`` (the vendor's REST API endpoint)."""
        return f"{self.base_url}/rest"

    def token(self) -> str:
        """An access token from the identity endpoint (the same one until it expires)."""
        resp = httpx.get(
            f"{self.identity_url}/oauth/token",
            params={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
            timeout=30,
        )
        resp.raise_for_status()
        return str(resp.json()["access_token"])

    def client(self, **config: Any) -> Any:
        """A real ``marketorestpython`` client pointed at this emulator.

        The client builds ``https://<munchkin>.mktorest.com``; its ``host`` attribute is where
        every call goes, so it is set to this server's base URL (no code of the client is
        replaced).  ``config`` goes to the constructor (e.g. ``max_retry_time``).
        """
        from marketorestpython.client import MarketoClient

        client = MarketoClient(self.munchkin_id, self.client_id, self.client_secret, **config)
        client.host = self.base_url
        return client

    def credentials(self) -> dict[str, str]:
        """What a future ``crm-bridge emulate`` prints for the user to export."""
        return {
            "MARKETO_BASE_URL": self.base_url,
            "MARKETO_IDENTITY_URL": self.identity_url,
            "MARKETO_CLIENT_ID": self.client_id,
            "MARKETO_CLIENT_SECRET": self.client_secret,
            "MARKETO_MUNCHKIN_ID": self.munchkin_id,
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

    def __enter__(self) -> RunningMarketo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RunningMarketo(base_url={self.base_url!r}, client_id={self.client_id!r})"
