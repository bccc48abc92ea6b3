"""Settings of the HubSpot connector.

Why these knobs and no more: HubSpot's limits differ per subscription tier (burst per ten seconds,
search per second), the property list decides what one search page weighs, and the archived-records
poll is the only part of an idle cycle that is not free -- so those are configurable; everything
else (endpoints, page sizes, the 10,000-result search cap) is HubSpot's and fixed by default.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from crm_bridge.connector import ConnectorSettings

__all__ = ["DEFAULT_OBJECTS", "HubSpotObject", "HubSpotSettings"]

HubSpotObject = Literal["contacts", "companies", "deals"]
DEFAULT_OBJECTS: tuple[HubSpotObject, ...] = ("contacts", "companies", "deals")


class HubSpotSettings(ConnectorSettings):
    """How to reach one HubSpot portal and how hard to use it.

    Authenticate with a private-app ``access_token`` **or** with OAuth (``client_id``,
    ``client_secret``, ``refresh_token``); secrets come from the environment, never the TOML.
    """

    host: str = Field(
        "https://api.hubapi.com",
        description="API base URL (an emulator's http://127.0.0.1:PORT in tests).",
    )
    access_token: SecretStr | None = Field(
        None, description="Private-app (or service key) token; static, never refreshed."
    )
    client_id: str | None = Field(None, description="OAuth app client id (OAuth mode).")
    client_secret: SecretStr | None = Field(None, description="OAuth app client secret.")
    refresh_token: SecretStr | None = Field(
        None, description="OAuth refresh token of the installed portal."
    )
    token_url: str | None = Field(
        None, description="OAuth token endpoint; default: <host>/oauth/v1/token."
    )
    burst_limit: int = Field(
        190, ge=1, description="Calls per burst window (190 Pro/Enterprise, 100 Free/Starter)."
    )
    burst_window_seconds: float = Field(10.0, gt=0, description="Length of the burst window.")
    search_per_second: int = Field(5, ge=1, description="Search requests per second (portal).")
    write_concurrency: int = Field(
        4,
        ge=1,
        le=10,
        description="Batch writes in flight at once (the burst limiter still paces them all); "
        "hides round trips and bookkeeping behind each other during large loads.",
    )
    objects: list[HubSpotObject] = Field(
        default_factory=lambda: list(DEFAULT_OBJECTS), description="Objects this instance serves."
    )
    properties: dict[HubSpotObject, list[str]] | None = Field(
        None,
        description="Properties to read per object; default: every non-hidden property "
        "(definitions read once per object and cached).",
    )
    timeout_seconds: float = Field(30.0, gt=0, description="Per-request timeout.")
    archived_poll_seconds: float = Field(
        3600.0,
        ge=0,
        description="Poll the archived (deleted) listing at most this often; search cannot "
        "see deletions, and skipping the poll keeps an idle cycle at one call per object.",
    )
    search_page_size: int = Field(200, ge=1, le=200, description="Records per search page.")
    search_max_results: int = Field(
        10_000, ge=1, description="HubSpot's per-query paging cap; a new window starts there."
    )
    max_attempts: int = Field(5, ge=1, description="Sends per call before giving up.")
    max_wait_seconds: float = Field(
        60.0, gt=0, description="Longest server-requested wait slept inside one call."
    )
    # -- the webhooks journal (push hints for ``daemon.push``; docs/connectors/hubspot.md) -------
    portal_id: int | None = Field(
        None, description="The portal (hub) id; the journal's subscriptions are made for it."
    )
    app_id: int | None = Field(
        None,
        description="Id of the developer-platform app installed in the portal whose client "
        "credentials read the journal (in OAuth mode, the app crm-bridge writes as).",
    )
    private_app_id: int | None = Field(
        None,
        description="Id of the private app behind access_token, so the journal's events of "
        "crm-bridge's own writes are recognised (sourceId) and skipped unread.",
    )
    journal_client_id: str | None = Field(
        None, description="Client id of the journal app; default: client_id (OAuth mode)."
    )
    journal_client_secret: SecretStr | None = Field(
        None, description="Client secret of the journal app; default: client_secret."
    )
    journal_poll_seconds: float = Field(
        10.0,
        gt=0,
        description="Shortest time between two journal checks while it has nothing new; each "
        "idle check is one call.",
    )
    journal_max_entries: int = Field(
        50,
        ge=1,
        description="Journal entries read per poll at most (two calls each); past that the "
        "feed skips to the newest entry and asks for a full cycle, which reads the backlog by "
        "the page.",
    )

    @model_validator(mode="after")
    def _one_auth_mode(self) -> HubSpotSettings:
        oauth = [self.client_id, self.client_secret, self.refresh_token]
        if self.access_token is not None:
            if any(v is not None for v in oauth):
                raise ValueError(
                    "set either access_token (private app) or client_id/client_secret/"
                    "refresh_token (OAuth), not both"
                )
            return self
        if any(v is None for v in oauth):
            raise ValueError(
                "HubSpot needs access_token (private app) or all of client_id, client_secret "
                "and refresh_token (OAuth)"
            )
        return self

    @property
    def oauth(self) -> bool:
        """True when the connector authenticates with the OAuth refresh-token grant."""
        return self.access_token is None

    def journal_missing(self) -> list[str]:
        """The settings the webhooks journal still needs (empty: it can be opened)."""
        missing = [name for name in ("portal_id", "app_id") if getattr(self, name) is None]
        if (self.journal_client_id or self.client_id) is None:
            missing.append("journal_client_id")
        if (self.journal_client_secret or self.client_secret) is None:
            missing.append("journal_client_secret")
        return missing

    @property
    def own_source_ids(self) -> frozenset[str]:
        """The journal ``sourceId`` s of crm-bridge's own writes (the app it writes as)."""
        writer = self.private_app_id if not self.oauth else self.app_id
        return frozenset() if writer is None else frozenset({str(writer)})

    @property
    def resolved_token_url(self) -> str:
        """The OAuth token endpoint to use."""
        return self.token_url or f"{self.host.rstrip('/')}/oauth/v1/token"
