"""Every HTTP request the HubSpot connector sends goes through :class:`HubSpotClient.send`.

Why one choke point: the benchmark compares our calls with the theoretical minimum, so each
request must be paced (burst or search limiter), timed out, retried by the shared seam
(:func:`~crm_bridge.http.call_with_retries` with :data:`.errors.HUBSPOT_POLICY`), authenticated
with a fresh token and counted -- exactly once per request actually sent, retries included.
Keeping that in one method means a new endpoint cannot forget any of it.  Pacing holds each call's place in its limiter until the answer
is back, because HubSpot counts a call when it arrives, not when we send it.

Design choices, with the pitfalls they avoid (docs/connectors/hubspot.md has the long form):

* ``HubSpot(..., retry=urllib3.Retry(0, read=False))``: the client's default urllib3 ``Retry``
  silently resends GETs on 429/503 with the real clock and outside our limiter and counter.
* The ``hs.crm.X.Y_api`` objects are built once and cached: each property access builds a new
  ``Configuration`` + connection pool.  A refreshed OAuth token is written into the cached
  configurations instead of rebuilding them.
* Responses are read raw (``_preload_content=False``) and parsed as JSON: fields the generated
  models do not know (``new`` on upserts, per-input error ``context``) survive, and we skip the
  model deserialisation that dominates the client's CPU time.
* The OAuth token endpoint is called through our own ``httpx.Client`` whose request hook counts
  every token request under ``calls["auth"]``.
* Endpoints hubspot-api-client does not have (the webhooks journal) go through
  :meth:`HubSpotClient.send_http` over that same ``httpx.Client``: same limiter, retries and
  counting, with the token source the endpoint needs (an app's client-credentials token, or none
  for a pre-signed storage URL).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import urllib3
from pydantic import SecretStr

from crm_bridge.connectors.hubspot.errors import (
    HUBSPOT_POLICY,
    describe_hubspot,
    describe_hubspot_httpx,
)
from crm_bridge.connectors.hubspot.limit_headers import observe_burst_headers
from crm_bridge.connectors.hubspot.oauth import HubSpotTokenProvider
from crm_bridge.connectors.hubspot.settings import HubSpotSettings
from crm_bridge.errors import CrmBridgeError
from crm_bridge.http import (
    Clock,
    RollingWindowLimiter,
    StaticTokenProvider,
    SystemClock,
    call_with_retries,
)
from crm_bridge.http.budgets import account_key, budgets
from crm_bridge.http.headers import lower_headers

__all__ = ["HubSpotClient", "Response", "TokenSource"]


class TokenSource(Protocol):
    """What :meth:`HubSpotClient.send_http` needs of a token provider (static or OAuth)."""

    @property
    def can_refresh(self) -> bool: ...

    def token(self) -> SecretStr: ...

    def refresh(self, rejected: SecretStr | None = None) -> SecretStr: ...


@dataclass(frozen=True, slots=True)
class Response:
    """A 2xx answer: status, parsed JSON body (``None`` for 204) and lower-case headers."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


class HubSpotClient:
    """hubspot-api-client behind limiter, retries, token refresh and call counting."""

    def __init__(
        self,
        settings: HubSpotSettings,
        *,
        name: str,
        calls: Counter[str],
        clock: Clock | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self.settings = settings
        self.name = name
        self.calls = calls
        self.clock: Clock = clock or SystemClock()
        # Per account, so several worker processes share one count (crm_bridge.http.budgets).
        credential = (
            settings.access_token.get_secret_value()
            if settings.access_token is not None
            else settings.client_id
        )
        self.burst = budgets().window(
            account_key("hubspot", settings.host, credential, "burst"),
            max_calls=settings.burst_limit,
            window_seconds=settings.burst_window_seconds,
            clock=self.clock,
            name="hubspot burst",
        )
        self.search_limiter = budgets().window(
            account_key("hubspot", settings.host, credential, "search"),
            max_calls=settings.search_per_second,
            window_seconds=1.0,
            clock=self.clock,
            name="hubspot search",
        )
        self.last_headers: dict[str, str] = {}
        self._lock = threading.Lock()
        self._counting = threading.Lock()
        self._apis: dict[str, Any] = {}
        self._hs: Any = None
        self._own_http = False
        self._http: httpx.Client | None = None
        self._tokens: TokenSource
        if settings.access_token is not None:
            self._tokens = StaticTokenProvider(settings.access_token)
        else:
            assert settings.client_id and settings.client_secret and settings.refresh_token
            if http is None:
                http = httpx.Client(timeout=httpx.Timeout(settings.timeout_seconds))
                self._own_http = True
            self._hook(http)
            self._http = http
            self._tokens = HubSpotTokenProvider(
                client_id=settings.client_id,
                client_secret=settings.client_secret,
                refresh_token=settings.refresh_token,
                token_url=settings.resolved_token_url,
                http=http,
                clock=self.clock,
            )
        self._token_in_use: str | None = None

    # -- the one way to send ---------------------------------------------------------------------

    def send(
        self,
        family: str,
        api: str,
        method: str,
        *args: Any,
        idempotent: bool,
        search: bool = False,
        **kwargs: Any,
    ) -> Response:
        """Call ``<api>.<method>(*args, **kwargs)`` once per attempt, paced, counted, retried.

        ``family`` is the :attr:`calls` key (``search``, ``batch``, ``objects``, ``owners``,
        ``properties``).  ``idempotent`` is passed to the seam: non-idempotent calls (batch
        create) are only resent when the failure proves the request never reached HubSpot.
        """
        limiter = self.search_limiter if search else self.burst

        def attempt() -> Response:
            self._sync_token()
            target = getattr(self.api(api), method)
            # HubSpot counts the call when it arrives, somewhere before its answer: the lease is
            # released the moment the status line is back, so the limiter books it then.
            with limiter.paced():
                with self._counting:  # the engine may write from several threads
                    self.calls[family] += 1
                try:
                    raw = target(
                        *args,
                        _preload_content=False,
                        _request_timeout=self.settings.timeout_seconds,
                        **kwargs,
                    )
                except Exception as exc:
                    headers = getattr(exc, "headers", None)
                    if headers is not None and not search:
                        observe_burst_headers(self.burst, headers)
                    raise
            try:
                data = raw.data
                headers = lower_headers(raw.headers)
            finally:
                raw.release_conn()
            if not search:
                observe_burst_headers(self.burst, headers)
                self.last_headers = headers
            return Response(raw.status, json.loads(data) if data else None, headers)

        return call_with_retries(
            attempt,
            idempotent=idempotent,
            describe=describe_hubspot,
            policy=HUBSPOT_POLICY,
            clock=self.clock,
            max_attempts=self.settings.max_attempts,
            max_wait=self.settings.max_wait_seconds,
            on_refresh=self._refresh if self._tokens.can_refresh else None,
        )

    def send_http(
        self,
        family: str,
        method: str,
        url: str,
        *,
        tokens: TokenSource | None,
        idempotent: bool,
        json_body: Any = None,
        accept: Collection[int] = (),
        paced: bool = True,
        limiter: RollingWindowLimiter | None = None,
    ) -> Response:
        """One request over httpx, paced, counted and retried like :meth:`send`.

        For endpoints hubspot-api-client lacks.  ``tokens`` authenticates it (``None``: no
        ``Authorization`` at all, as a pre-signed URL requires); ``accept`` lists error statuses
        the caller handles itself (returned, not raised: the journal's 404 for an expired offset
        is an answer, not a failure); ``paced=False`` for requests outside HubSpot's API limits
        (storage downloads), which are still counted.  ``limiter`` paces it instead of the
        burst limiter: another app's token (the journal's) spends another app's budget, and its
        ``X-HubSpot-RateLimit-*`` headers describe that budget, not ours.
        """
        http = self.http
        window = limiter if limiter is not None else self.burst

        def attempt() -> Response:
            headers = {"Accept": "application/json"}
            if tokens is not None:
                headers["Authorization"] = f"Bearer {tokens.token().get_secret_value()}"
            with window.paced() if paced else contextlib.nullcontext():
                with self._counting:
                    self.calls[family] += 1
                answer = http.request(
                    method,
                    url,
                    json=json_body,
                    headers=headers,
                    timeout=self.settings.timeout_seconds,
                )
            got = lower_headers(answer.headers)
            if paced:
                observe_burst_headers(window, got)
            if answer.status_code >= 400 and answer.status_code not in accept:
                answer.raise_for_status()
            body: Any = None
            if answer.content:
                try:  # storage may label a JSON file octet-stream: read it as JSON regardless
                    body = answer.json()
                except ValueError:
                    body = None
            return Response(answer.status_code, body, got)

        def refresh() -> None:
            assert tokens is not None
            tokens.refresh()

        return call_with_retries(
            attempt,
            idempotent=idempotent,
            describe=describe_hubspot_httpx,
            policy=HUBSPOT_POLICY,
            clock=self.clock,
            max_attempts=self.settings.max_attempts,
            max_wait=self.settings.max_wait_seconds,
            on_refresh=refresh if tokens is not None and tokens.can_refresh else None,
        )

    @property
    def http(self) -> httpx.Client:
        """The connector's ``httpx.Client`` (the OAuth one, or made on first use)."""
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(timeout=httpx.Timeout(self.settings.timeout_seconds))
                self._own_http = True
                self._hook(self._http)
            return self._http

    def _hook(self, http: httpx.Client) -> None:
        http.event_hooks.setdefault("request", []).append(self._count_auth)

    # -- the client and its cached api objects ---------------------------------------------------

    def api(self, path: str) -> Any:
        """The cached api object at ``path`` (e.g. ``"crm.objects.batch_api"``)."""
        with self._lock:
            found = self._apis.get(path)
            if found is None:
                found = self._client()
                for part in path.split("."):
                    found = getattr(found, part)
                self._apis[path] = found
            return found

    def _client(self) -> Any:
        if self._hs is None:
            from hubspot import HubSpot  # imported lazily: the package is large

            self._hs = HubSpot(
                access_token=self._token_in_use or "",
                host=self.settings.host.rstrip("/"),
                retry=urllib3.Retry(0, read=False),
            )
        return self._hs

    # -- tokens ----------------------------------------------------------------------------------

    def _sync_token(self) -> None:
        """Make every cached api object carry the current token (fetching one by TTL if due)."""
        token = self._tokens.token().get_secret_value()
        if token != self._token_in_use:
            self._apply_token(token)

    def _refresh(self) -> None:
        """``on_refresh`` for a 401: ask for a new token once; the seam then resends once."""
        rejected = SecretStr(self._token_in_use) if self._token_in_use else None
        self._apply_token(self._tokens.refresh(rejected=rejected).get_secret_value())

    def _apply_token(self, token: str) -> None:
        with self._lock:
            self._token_in_use = token
            if self._hs is not None:
                self._hs.access_token = token
            for api in self._apis.values():
                api.api_client.configuration.access_token = token

    def _count_auth(self, request: httpx.Request) -> None:
        """Count token requests (others on this client are counted where they are sent)."""
        if request.url.path != httpx.URL(self.settings.resolved_token_url).path:
            return
        with self._counting:
            self.calls["auth"] += 1

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Close connection pools we own."""
        with self._lock:
            for api in self._apis.values():
                pool = getattr(api.api_client.rest_client, "pool_manager", None)
                if pool is not None:
                    pool.clear()
            self._apis.clear()
        if self._own_http and self._http is not None:
            self._http.close()

    def __repr__(self) -> str:
        auth = "oauth" if self.settings.oauth else "private-app"
        return f"HubSpotClient(host={self.settings.host!r}, auth={auth})"


def require_dict(response: Response, what: str) -> dict[str, Any]:
    """The body as a dict, or a clear error when HubSpot answered something else."""
    if not isinstance(response.body, dict):
        raise CrmBridgeError(f"HubSpot {what}: expected a JSON object, got {type(response.body)}")
    return response.body
