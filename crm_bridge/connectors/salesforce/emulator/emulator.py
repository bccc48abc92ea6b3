"""The public face of the emulator: build it, seed it, start it, act as users, snapshot it.

Salesforce-specific control routes (next to the shared ones in ``crm_bridge.emulators.control``):

* ``POST /__emulator__/merge`` -- ``{"object","master","losers","as_user"}``: a merge as in the UI.
* ``POST /__emulator__/convert-lead`` -- ``{"leadId","accountId"?,"contactId"?,
  "doNotCreateOpportunity"?,"opportunityName"?,"convertedStatus"?,"overwriteLeadSource"?,
  "asUser"?}``: ``convertLead()`` (SOAP only in a real org); answers the LeadConvertResult, or 400
  with the Salesforce error array.
* ``POST /__emulator__/token``, ``duplicate-rules``, ``limits``, ``seed``.
* ``POST /__emulator__/pubsub/faults`` -- ``{"gap"?,"duplicate"?,"reorder"?}``: event faults
  (:class:`~.cdc.BusFaults`); ``POST /__emulator__/pubsub/gap`` -- ``{"entity","recordIds",
  "changeType"?}`` and ``POST /__emulator__/pubsub/overflow`` -- ``{"entity"}``: publish a gap
  or GAP_OVERFLOW event; ``GET /__emulator__/pubsub/events``: the retained events' headers.

Change Data Capture: every write publishes change events on :attr:`SalesforceEmulator.bus`
(:mod:`.cdc`), served over gRPC by the Pub/Sub API server :meth:`SalesforceEmulator.start` starts
next to the HTTP one (:attr:`RunningSalesforce.pubsub_address`, same TLS CA).

Why ``RunningSalesforce.simple_salesforce()``: tests and benches must talk to the emulator with
the *real* client over a real TLS socket; this builds that client the one correct way
(``trust_env=False`` so ``REQUESTS_CA_BUNDLE`` cannot override the emulator's CA).
"""

from __future__ import annotations

import gc
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import requests
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from crm_bridge.connectors.salesforce.emulator.cdc import EventBus
from crm_bridge.connectors.salesforce.emulator.errors import ApiError, RecordError
from crm_bridge.connectors.salesforce.emulator.seed import seed_org
from crm_bridge.connectors.salesforce.emulator.settings import SalesforceEmulatorSettings
from crm_bridge.connectors.salesforce.emulator.state import Org
from crm_bridge.emulators.runtime import (
    CONTROL_PREFIX,
    CallCounter,
    EmulatorClock,
    FaultMiddleware,
    FaultPlane,
    RunningServer,
    TlsMaterial,
    serve,
)

if TYPE_CHECKING:
    from crm_bridge.connectors.salesforce.emulator.pubsub import PubSubServer

__all__ = ["RunningSalesforce", "SalesforceEmulator"]

SNAPSHOT_FORMAT = 1


class SalesforceEmulator:
    """An emulated Salesforce org plus its HTTP app (already wrapped in ``FaultMiddleware``)."""

    def __init__(
        self,
        settings: SalesforceEmulatorSettings | None = None,
        *,
        clock: EmulatorClock | None = None,
    ) -> None:
        from crm_bridge.connectors.salesforce.emulator.app import build_app

        self.settings = settings or SalesforceEmulatorSettings()
        self.clock = clock or EmulatorClock()
        self.faults = FaultPlane()
        self.calls = CallCounter()
        self.org = Org(self.settings, self.clock)
        self.bus = EventBus(self.org, self.clock)
        self.app: FaultMiddleware = build_app(self)

    # ------------------------------------------------------------------ running
    def start(
        self, *, host: str = "127.0.0.1", port: int = 0, tls: TlsMaterial | None = None
    ) -> RunningSalesforce:
        """Serve over TLS on ``host:port`` (0 = any free port); a throwaway CA if ``tls`` is None."""
        from crm_bridge.connectors.salesforce.emulator.pubsub import PubSubServer

        material = tls or TlsMaterial.create()
        server = serve(self.app, host=host, port=port, tls=material)
        self.bus.closed = False
        pubsub = PubSubServer(self, tls=material, instance_url=server.base_url, host=host)
        return RunningSalesforce(self, server, pubsub)

    # ------------------------------------------------------------------ state
    def seed(self, *, leads: int, seed: int = 0) -> None:
        """Add realistic users, accounts, leads, contacts, opportunities and contact roles."""
        with self.org.lock:
            seed_org(self.org, leads=leads, seed=seed)

    def reset_state(self) -> None:
        """Empty the org (only the integration user remains); tokens are forgotten."""
        with self.org.lock:
            self.org.reset()
            self.bus.reset()

    def reset(self) -> None:
        """Empty org, no faults, zero call counts, real clock."""
        self.reset_state()
        self.faults.clear()
        self.faults.clear_hits()
        self.calls.reset()
        self.clock.reset()

    def issue_token(self, username: str | None = None) -> str:
        """A valid access token for ``username`` (default: the integration user)."""
        with self.org.lock:
            user = self.org.user_by_username(username or self.settings.integration_username)
            if user is None:
                raise KeyError(f"no such user: {username}")
            return self.org.tokens.issue(
                user["Id"], self.clock.time(), self.settings.token_ttl_seconds
            )

    def issue_refresh_token(self, username: str | None = None) -> str:
        """A refresh token for ``username`` (the emulator serves no authorization-code flow)."""
        with self.org.lock:
            user = self.org.user_by_username(username or self.settings.integration_username)
            if user is None:
                raise KeyError(f"no such user: {username}")
            return self.org.tokens.issue_refresh(user["Id"])

    def expire_tokens(self) -> None:
        """Every access token issued so far answers 401 INVALID_SESSION_ID from now on."""
        with self.org.lock:
            self.org.tokens.expire_all()

    def user_id(self, username: str) -> str:
        """The User id for a username."""
        with self.org.lock:
            user = self.org.user_by_username(username)
        if user is None:
            raise KeyError(username)
        return str(user["Id"])

    def merge(
        self, object_name: str, master: str, losers: list[str], as_user: str | None = None
    ) -> None:
        """A merge as a person does it in the UI (Salesforce has no REST merge resource)."""
        from crm_bridge.connectors.salesforce.emulator.dml import Writer

        user_id = self.user_id(as_user or self.settings.integration_username)
        with self.org.lock, self.bus.transaction(""), self.org.atomic():
            Writer(self.org, user_id).merge(object_name, master, losers)

    def convert_lead(
        self,
        lead_id: str,
        *,
        account_id: str | None = None,
        contact_id: str | None = None,
        do_not_create_opportunity: bool = False,
        opportunity_name: str | None = None,
        converted_status: str | None = None,
        overwrite_lead_source: bool = False,
        as_user: str | None = None,
    ) -> dict[str, Any]:
        """``convertLead()`` as ``as_user`` (a username); returns the LeadConvertResult dict.

        Why a method and not a REST resource: conversion is SOAP/Apex only, which the emulator
        does not serve.  A failure raises :class:`RecordError` and leaves the org unchanged.
        """
        from crm_bridge.connectors.salesforce.emulator.convert import LeadConvert
        from crm_bridge.connectors.salesforce.emulator.dml import Writer

        request = LeadConvert(
            lead_id=lead_id,
            account_id=account_id,
            contact_id=contact_id,
            do_not_create_opportunity=do_not_create_opportunity,
            opportunity_name=opportunity_name,
            converted_status=converted_status,
            overwrite_lead_source=overwrite_lead_source,
        )
        user_id = self.user_id(as_user or self.settings.integration_username)
        with self.org.lock, self.bus.transaction(""), self.org.atomic():
            return Writer(self.org, user_id).convert_lead(request)

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to recreate the org's data (not tokens, faults or the clock)."""
        with self.org.lock:
            org = self.org
            return {
                "format": SNAPSHOT_FORMAT,
                "counter": org.counter,
                "duplicate_rules": org.duplicate_rules,
                "daily_api_limit": org.daily_api_limit,
                "tooling": org.tooling.dump(),
                "records": {name: list(s.records.values()) for name, s in org.stores.items()},
            }

    def load(self, data: dict[str, Any]) -> None:
        """Replace the org's data with a :meth:`snapshot`."""
        if data.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unsupported snapshot format {data.get('format')!r}")
        with self.org.lock:
            org = self.org
            org.reset()
            for store in org.stores.values():
                store.records.clear()
                store.reindex()
            org.tooling.restore(data.get("tooling", {}))
            for name, records in data["records"].items():
                store = org.stores[name]
                for rec in records:
                    store.records[rec["Id"]] = dict(rec)
                store.reindex()
            org.counter = int(data["counter"])
            org.duplicate_rules = bool(data.get("duplicate_rules", False))
            org.daily_api_limit = int(data.get("daily_api_limit", org.daily_api_limit))
            integ = org.user_by_username(self.settings.integration_username)
            if integ is None:
                raise ValueError("the snapshot has no integration user")
            org.integration_user_id = integ["Id"]

    # ------------------------------------------------------------------ control plane
    def control_extra_routes(self) -> list[BaseRoute]:
        """Salesforce-specific control routes (merge, lead conversion, tokens, limits, seed)."""
        from crm_bridge.connectors.salesforce.emulator.app import control_json
        from crm_bridge.connectors.salesforce.emulator.convert import LeadConvert

        def merge(body: dict[str, Any]) -> Any:
            try:
                self.merge(
                    body["object"], body["master"], list(body["losers"]), body.get("as_user")
                )
            except RecordError as err:
                raise ApiError(400, err.status_code, err.message, err.fields) from None
            return {"merged": list(body["losers"]), "master": body["master"]}

        def convert_lead(body: dict[str, Any]) -> Any:
            request = asdict(LeadConvert.from_json(body))
            try:
                return self.convert_lead(**request, as_user=body.get("asUser"))
            except RecordError as err:
                raise err.as_api_error(400) from None

        def token(body: dict[str, Any]) -> Any:
            username = body.get("username") or self.settings.integration_username
            out = {"access_token": self.issue_token(username), "user_id": self.user_id(username)}
            if body.get("refresh"):
                out["refresh_token"] = self.issue_refresh_token(username)
            return out

        def duplicate_rules(body: dict[str, Any]) -> Any:
            with self.org.lock:
                self.org.duplicate_rules = bool(body["enabled"])
            return {"enabled": self.org.duplicate_rules}

        def limits(body: dict[str, Any]) -> Any:
            with self.org.lock:
                if "daily_api_limit" in body:
                    self.org.daily_api_limit = int(body["daily_api_limit"])
                if "used" in body:
                    self.org.api_used = int(body["used"])
                return {"daily_api_limit": self.org.daily_api_limit, "used": self.org.api_used}

        def seed(body: dict[str, Any]) -> Any:
            self.seed(leads=int(body["leads"]), seed=int(body.get("seed", 0)))
            with self.org.lock:
                return {name: len(s.records) for name, s in self.org.stores.items()}

        def pubsub_faults(body: dict[str, Any]) -> Any:
            with self.bus.cond:
                faults = self.bus.faults
                for name in ("gap", "duplicate", "reorder"):
                    if name in body:
                        setattr(faults, name, int(body[name]))
                return asdict(faults)

        def pubsub_gap(body: dict[str, Any]) -> Any:
            self.bus.inject_gap(
                body["entity"], list(body["recordIds"]), body.get("changeType", "UPDATE")
            )
            return {"ok": True}

        def pubsub_overflow(body: dict[str, Any]) -> Any:
            self.bus.inject_overflow(body["entity"])
            return {"ok": True}

        async def pubsub_events(request: Request) -> Response:
            with self.bus.cond:
                listed = [
                    {
                        "replayId": e.replay_id.hex(),
                        "eventId": e.event_id,
                        "entity": e.entity,
                        "changeType": e.change_type,
                        "recordIds": list(e.record_ids),
                    }
                    for e in self.bus.events
                ]
            return JSONResponse(listed)

        p = CONTROL_PREFIX
        return [
            Route(f"{p}/pubsub/faults", control_json(pubsub_faults), methods=["POST"]),
            Route(f"{p}/pubsub/gap", control_json(pubsub_gap), methods=["POST"]),
            Route(f"{p}/pubsub/overflow", control_json(pubsub_overflow), methods=["POST"]),
            Route(f"{p}/pubsub/events", pubsub_events, methods=["GET"]),
            Route(f"{p}/merge", control_json(merge), methods=["POST"]),
            Route(f"{p}/convert-lead", control_json(convert_lead), methods=["POST"]),
            Route(f"{p}/token", control_json(token), methods=["POST"]),
            Route(f"{p}/duplicate-rules", control_json(duplicate_rules), methods=["POST"]),
            Route(f"{p}/limits", control_json(limits), methods=["POST"]),
            Route(f"{p}/seed", control_json(seed), methods=["POST"]),
        ]


class RunningSalesforce:
    """A started emulator: its URLs, credentials, and a ready simple-salesforce client."""

    def __init__(
        self, emulator: SalesforceEmulator, server: RunningServer, pubsub: PubSubServer
    ) -> None:
        self.emulator = emulator
        self.server = server
        self.pubsub = pubsub
        self.pubsub_address = pubsub.address
        """``127.0.0.1:PORT`` of the Pub/Sub API (gRPC over TLS, trusting :attr:`ca_path`)."""
        assert server.tls is not None
        self.base_url = server.base_url
        self.instance_url = server.base_url
        self.token_url = f"{server.base_url}/services/oauth2/token"
        self.ca_path = str(server.tls.ca_pem)
        self.client_id = emulator.settings.client_id
        self.client_secret = emulator.settings.client_secret
        self.integration_username = emulator.settings.integration_username
        self.api_version = emulator.settings.api_version

    def session(self) -> requests.Session:
        """A requests session that trusts the emulator's CA and ignores proxy/CA env vars."""
        s = requests.Session()
        s.trust_env = False
        s.verify = self.ca_path
        return s

    def simple_salesforce(self, *, username: str | None = None) -> Any:
        """A real ``simple_salesforce.Salesforce`` acting as ``username`` (default: integration)."""
        from simple_salesforce.api import Salesforce

        token = self.emulator.issue_token(username or self.integration_username)
        return Salesforce(
            session_id=token,
            instance_url=self.instance_url,
            session=self.session(),
            version=self.api_version,
        )

    def credentials(self) -> dict[str, str]:
        """What ``crm-bridge emulate`` prints for a human or a config file."""
        return {
            "base_url": self.base_url,
            "instance_url": self.instance_url,
            "token_url": self.token_url,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "integration_username": self.integration_username,
            "ca_path": self.ca_path,
            "api_version": self.api_version,
            "pubsub_address": self.pubsub_address,
        }

    def stop(self) -> None:
        """Stop serving (gracefully: open connections are closed cleanly first).

        Why the ``gc.collect()``: over TLS, uvicorn's graceful shutdown waits for each peer's
        close_notify.  A client socket kept alive only by a reference cycle (the traceback of a
        ``pytest.raises`` block holds the failed requests.Response) never sends it until it is
        collected, and the stop would hang until the runtime's 10 s join timeout.
        """
        gc.collect()
        self.pubsub.stop()
        self.server.stop()

    def __enter__(self) -> RunningSalesforce:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
