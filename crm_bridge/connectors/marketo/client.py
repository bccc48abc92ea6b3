"""Every HTTP request the Marketo connector sends goes through :meth:`MarketoClient.send`.

Why one choke point: Marketo's limits belong to the *instance* -- 100 calls per 20 s, 10 in
flight and a daily allowance, shared by every integration of the subscription -- so each request
must take a place in the sliding window, a concurrency slot and a unit of the day's budget
*before* it is sent (a refused call still costs the other integrations their turn), and must be
authenticated, retried by the shared seam and counted exactly once per send.  The envelope is
always HTTP 200: ``success: false`` becomes a :class:`~.errors.MarketoApiError` here so the
seam's table (:data:`~.errors.MARKETO_POLICY`) decides what a 601, 606 or 607 means.

Design choices:

* one pooled ``httpx.Client`` for the REST calls and the identity service;
* :class:`InstanceBudget` is shared by every connector of the process that talks to the same
  instance on the same clock (:func:`instance_budget`), so two pairs syncing one Marketo do not
  each spend the whole window;
* a GET whose URI would pass Marketo's 8 KB limit is sent as ``POST`` with ``_method=GET`` and
  the query in a form body, as the vendor documents (long ``fields`` / ``filterValues`` lists).
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
from pydantic import SecretStr

from crm_bridge.connectors.marketo.errors import MARKETO_POLICY, MarketoApiError, make_describe
from crm_bridge.connectors.marketo.oauth import MarketoTokenProvider
from crm_bridge.connectors.marketo.settings import MarketoSettings
from crm_bridge.errors import CrmBridgeError
from crm_bridge.http import Clock, SystemClock
from crm_bridge.http.budgets import account_key, budgets
from crm_bridge.http.retry import call_with_retries

__all__ = [
    "MAX_URI",
    "InstanceBudget",
    "MarketoClient",
    "endpoint_family",
    "instance_budget",
]

MAX_URI = 7_900
"""Above this many bytes a GET goes out as ``POST ..._method=GET`` (Marketo's limit is 8 KB)."""

_CENTRAL = ZoneInfo("America/Chicago")
_SYSTEM_CLOCK = SystemClock()

_FAMILIES = (
    ("/rest/v1/activities", "activities"),
    ("/rest/v1/leads/programs", "programs"),
    ("/rest/v1/programs", "programs"),
    ("/rest/v1/lead", "leads"),
    ("/rest/v1/list", "lists"),
    ("/rest/asset/v1/staticList", "lists"),
    ("/rest/v1/opportunities", "opportunities"),
    ("/rest/v1/companies", "companies"),
    ("/bulk/v1/leads/export", "bulk_export"),
    ("/bulk/v1/leads", "bulk_import"),
)


def endpoint_family(path: str) -> str:
    """The :attr:`~crm_bridge.connector.Connector.calls` key of a REST path."""
    for prefix, family in _FAMILIES:
        if path.startswith(prefix):
            return family
    return "other"


class InstanceBudget:
    """The instance's sliding window, concurrency slots and daily allowance, held per call.

    Why all three client-side: Marketo answers 606 (window), 615 (in flight) and 607 (day) only
    after the fact, and a 607 stops *every* integration of the subscription until midnight US
    Central.  The daily count is ours alone (Marketo has no usage header on ordinary calls), so
    it is reset at the Central midnight and keeps ``reserve_fraction`` of the allowance for
    people and other integrations (:class:`~crm_bridge.http.DailyBudget`).
    """

    def __init__(self, settings: MarketoSettings, clock: Clock) -> None:
        self.clock = clock
        # Per instance, so several worker processes share one count (crm_bridge.http.budgets).
        self.window = budgets().window(
            account_key("marketo", settings.base_url, None, "window"),
            max_calls=settings.rate_limit_calls,
            window_seconds=settings.rate_limit_window_seconds,
            clock=clock,
            name="marketo window",
        )
        self.slots = threading.BoundedSemaphore(settings.max_concurrent)
        self.max_concurrent = settings.max_concurrent
        self.daily = budgets().daily(
            account_key("marketo", settings.base_url, None, "daily"),
            reserve_fraction=settings.daily_reserve_fraction,
            name="Marketo daily API",
            day=lambda: clock.now().astimezone(_CENTRAL).date().isoformat(),
        )
        self.daily_limit = settings.daily_call_limit
        self._lock = threading.Lock()
        self._day: date | None = None
        self._in_flight = 0
        self.peak_in_flight = 0

    def _roll_day(self) -> None:
        today = self.clock.now().astimezone(_CENTRAL).date()
        with self._lock:
            if today != self._day:
                self._day = today
                self.daily.observe_usage(0, self.daily_limit)

    @contextmanager
    def call(self) -> Iterator[None]:
        """Hold a slot, a window place and a unit of today's budget around one send.

        Raises :class:`~crm_bridge.errors.RateLimitedError` (before sending) when the call would
        eat into the daily reserve.
        """
        self._roll_day()
        self.daily.acquire()
        with self.slots:
            with self._lock:
                self._in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            try:
                with self.window.paced():
                    yield
            finally:
                with self._lock:
                    self._in_flight -= 1


_budgets: weakref.WeakKeyDictionary[Any, dict[str, InstanceBudget]] = weakref.WeakKeyDictionary()
_budgets_lock = threading.Lock()


def instance_budget(settings: MarketoSettings, clock: Clock) -> InstanceBudget:
    """The process-wide budget of the instance at ``settings.base_url`` on ``clock``.

    The first connector of an instance sets its numbers; later ones share them.
    """
    with _budgets_lock:
        per_clock = _budgets.setdefault(clock, {})
        budget = per_clock.get(settings.base_url)
        if budget is None:
            budget = per_clock[settings.base_url] = InstanceBudget(settings, clock)
        return budget


class MarketoClient:
    """httpx behind the instance budget, the retry seam, token refresh and call counting."""

    def __init__(
        self,
        settings: MarketoSettings,
        *,
        calls: Counter[str],
        clock: Clock | None = None,
        http: httpx.Client | None = None,
        budget: InstanceBudget | None = None,
    ) -> None:
        self.settings = settings
        self.calls = calls
        self.clock: Clock = clock or _SYSTEM_CLOCK
        self._own_http = http is None
        self.http = http or httpx.Client(timeout=httpx.Timeout(settings.timeout_seconds))
        self.http.event_hooks.setdefault("request", []).append(self._count_identity)
        self.budget = budget or instance_budget(settings, self.clock)
        self.tokens = MarketoTokenProvider(
            identity_url=settings.resolved_identity_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            http=self.http,
            clock=self.clock,
        )
        self._describe = make_describe(
            rate_wait=settings.rate_limit_wait_seconds,
            concurrency_wait=settings.concurrency_wait_seconds,
            now=self.clock.now,
        )
        self._counting = threading.Lock()
        self._token_in_use: SecretStr | None = None

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | Sequence[str]] | None = None,
        json: Any = None,
        form: Mapping[str, str] | None = None,
        idempotent: bool,
        family: str | None = None,
    ) -> dict[str, Any]:
        """One REST call (``path`` from ``/rest/...``); the success envelope as a dict.

        ``idempotent`` goes to the seam: a create is resent only when the failure proves it was
        not applied (601/602, 606, 615, a refused connection).
        """
        key = family or endpoint_family(path)

        def attempt() -> dict[str, Any]:
            token = self.tokens.token()
            self._token_in_use = token
            request = self._build(method, path, params, json, form, token)
            with self.budget.call():
                with self._counting:
                    self.calls[key] += 1
                response = self.http.send(request)
            response.raise_for_status()
            return _envelope(response)

        return call_with_retries(
            attempt,
            idempotent=idempotent,
            describe=self._describe,
            policy=MARKETO_POLICY,
            clock=self.clock,
            max_attempts=self.settings.max_attempts,
            max_wait=self.settings.max_wait_seconds,
            on_refresh=self._refresh,
        )

    def _build(
        self,
        method: str,
        path: str,
        params: Mapping[str, str | int | Sequence[str]] | None,
        body: Any,
        form: Mapping[str, str] | None,
        token: SecretStr,
    ) -> httpx.Request:
        url = f"{self.settings.base_url}{path}"
        query = _flatten(params or {})
        headers = {
            "Authorization": f"Bearer {token.get_secret_value()}",
            "Accept": "application/json",
        }
        if method == "GET" and len(url) + 1 + len(urlencode(query)) > MAX_URI:
            return self.http.build_request(
                "POST", url, data={**dict(query), "_method": "GET"}, headers=headers
            )
        if form is not None:
            return self.http.build_request(
                method, url, params=tuple(query), data=dict(form), headers=headers
            )
        return self.http.build_request(method, url, params=tuple(query), json=body, headers=headers)

    def _refresh(self) -> None:
        """``on_refresh`` for 600/601/602: a new token, unless another thread got one already."""
        self.tokens.refresh(rejected=self._token_in_use)

    def _count_identity(self, request: httpx.Request) -> None:
        if request.url.path.startswith("/identity/") or "/oauth/token" in request.url.path:
            with self._counting:
                self.calls["identity"] += 1

    @property
    def api_user(self) -> str | None:
        """The API-only user named by the last token (``scope``)."""
        return self.tokens.scope

    def close(self) -> None:
        """Close the pool if we created it."""
        if self._own_http:
            self.http.close()

    def __repr__(self) -> str:
        return f"MarketoClient(base_url={self.settings.base_url!r})"


def _flatten(params: Mapping[str, str | int | Sequence[str]]) -> list[tuple[str, str]]:
    """Query pairs; a list value is sent comma-separated, as Marketo's list parameters take."""
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        if isinstance(value, str | int):
            pairs.append((name, str(value)))
        else:
            pairs.append((name, ",".join(str(v) for v in value)))
    return pairs


def _envelope(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise CrmBridgeError(
            f"Marketo answered HTTP {response.status_code} with a non-JSON body"
        ) from None
    if not isinstance(body, dict):
        raise CrmBridgeError("Marketo answered a JSON value that is not an object")
    if body.get("success") is False:
        errors = [e for e in body.get("errors") or [] if isinstance(e, dict)]
        first = errors[0] if errors else {"code": "unknown", "message": "success: false"}
        raise MarketoApiError(str(first.get("code")), str(first.get("message") or ""), errors)
    return body
