"""Settings of one emulated HubSpot portal.

Why a model: the rate-limit tiers, token lifetime and credentials differ between the tests that
exercise them, ``bench/`` and ``crm-bridge emulate``; a validated model keeps them in one place and
lets the control plane change them at run time with the same validation.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["RATE_LIMIT_TIERS", "HubSpotEmulatorSettings"]

RATE_LIMIT_TIERS: dict[str, tuple[int, int]] = {
    # tier -> (requests per ten seconds per app, requests per day per account).
    # https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines
    "free": (100, 250_000),
    "starter": (100, 250_000),
    "professional": (190, 625_000),
    "enterprise": (190, 1_000_000),
    # The API limit increase add-on: sources disagree between 200 and 250 per ten seconds.
    "api_add_on": (250, 2_000_000),
}


class HubSpotEmulatorSettings(BaseModel):
    """Everything that is configurable about the emulated portal."""

    model_config = ConfigDict(validate_assignment=True)

    portal_id: int = 62515
    app_id: int = 1_000_001
    private_app_id: int = 1_000_002  # the journal's sourceId for private-app-token writes
    hub_domain: str = "crm-bridge-emulator.hubspot.test"
    private_app_token: str = "pat-na1-emulator"
    client_id: str = "emulator-client-id"
    client_secret: str = "emulator-client-secret"
    token_ttl_seconds: int = Field(default=1800, gt=0)

    rate_limits_enabled: bool = True
    burst_limit: int = Field(default=190, gt=0)
    burst_window_seconds: float = Field(default=10, gt=0)
    search_per_second: int = Field(default=5, gt=0)
    daily_limit: int = Field(default=1_000_000, gt=0)
    send_retry_after: bool = True

    list_max_limit: int = 100
    batch_max_inputs: int = 100
    search_max_limit: int = 200
    search_max_results: int = 10_000
    search_cache_size: int = 32
    search_index_lag_seconds: float = Field(default=0.0, ge=0)
    """How long a write takes to reach the search index (0: at once).  HubSpot's search is an
    index fed after the write commits: a record written moments ago is missing from search
    results (the docs warn of a short delay), which is what the sync's overlap re-read is for.
    While lagging, a record is left out of search entirely (the real index would still hold its
    previous version; for "modified since" reads the two look the same)."""
