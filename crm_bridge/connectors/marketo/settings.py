"""Settings of the Marketo connector.

Why these knobs: Marketo's limits are per *instance* and shared by every integration of the
subscription (100 calls / 20 s, 10 in flight, a daily allowance that differs per contract), so
crm-bridge's share of them is the operator's decision; the field list decides what every read and
the lead-changes feed carry.  Endpoints, the 300-record batch and the envelope are Marketo's and
fixed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from crm_bridge.connector import ConnectorSettings

__all__ = ["DEFAULT_ACTIVITY_TYPES", "MarketoSettings"]

DEFAULT_ACTIVITY_TYPES: tuple[str, ...] = ("Fill Out Form", "Visit Webpage", "Click Link")
"""Content engagement read by ``activities()``: form fills, web visits, link clicks (downloads)."""


class MarketoSettings(ConnectorSettings):
    """How to reach one Marketo instance and how much of its shared budget crm-bridge may use.

    ``client_secret`` comes from the environment
    (``CRM_BRIDGE_CONNECTORS__<NAME>__CLIENT_SECRET``), never the TOML.
    """

    base_url: str = Field(
        description="The instance root, e.g. https://123-ABC-456.mktorest.com (a trailing "
        "/rest is accepted and dropped); an emulator's http://127.0.0.1:PORT in tests."
    )
    identity_url: str | None = Field(
        None, description="Identity service; default <base_url>/identity."
    )
    client_id: str = Field(description="Client id of the LaunchPoint custom service.")
    client_secret: SecretStr = Field(description="Client secret of the custom service.")
    fields: list[str] | None = Field(
        None,
        description="Lead fields to read and to watch in the lead-changes feed; default every "
        "field of leads/describe.json (read once and cached).",
    )
    page_size: int = Field(
        300, ge=1, le=300, description="Records per read and activities per feed page."
    )
    rate_limit_calls: int = Field(
        100, ge=1, description="Calls per window for the whole instance (Adobe advises 50)."
    )
    rate_limit_window_seconds: float = Field(20.0, gt=0, description="The sliding window.")
    max_concurrent: int = Field(10, ge=1, le=10, description="Calls in flight at once.")
    daily_call_limit: int = Field(50_000, ge=1, description="The subscription's daily allowance.")
    daily_reserve_fraction: float = Field(
        0.10,
        ge=0.0,
        lt=1.0,
        description="Share of the daily allowance left to people and other integrations.",
    )
    rate_limit_wait_seconds: float = Field(
        20.0, gt=0, description="Wait after a 606 (the window's length: every call aged out)."
    )
    concurrency_wait_seconds: float = Field(
        1.0, gt=0, description="Wait after a 615 (another integration's calls in flight)."
    )
    initial_since: datetime = Field(
        datetime(2006, 1, 1, tzinfo=UTC),
        description="Where a full read (since=None) starts the lead-changes feed.",
    )
    activity_types: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ACTIVITY_TYPES),
        description="Activity type names activities() reads (resolved via activities/types.json).",
    )
    list_folder_id: int | None = Field(
        None, description="Folder (or program) id new static lists are created in."
    )
    list_folder_type: Literal["Folder", "Program"] = Field(
        "Folder", description="Whether list_folder_id names a folder or a program."
    )
    timeout_seconds: float = Field(60.0, gt=0, description="Per-request timeout.")
    max_attempts: int = Field(5, ge=1, description="Sends per call before giving up.")
    max_wait_seconds: float = Field(
        60.0, gt=0, description="Longest wait slept inside one call; longer -> RateLimitedError."
    )

    @field_validator("base_url", "identity_url")
    @classmethod
    def _no_trailing(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.rstrip("/")
        return value[: -len("/rest")] if value.endswith("/rest") else value

    @field_validator("initial_since")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

    @property
    def resolved_identity_url(self) -> str:
        """The identity service root."""
        return self.identity_url or f"{self.base_url}/identity"
