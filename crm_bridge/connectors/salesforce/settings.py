"""Settings of the Salesforce connector.

Why every knob is here rather than in code: the numbers that decide how many API calls a sync
costs (query page size, records per Composite call, the Bulk API threshold, the daily reserve)
differ per org and per contract, so an operator must be able to change them without a release.
Secrets are ``SecretStr``: crm-bridge refuses them in the TOML and reads them from the
environment (``CRM_BRIDGE_CONNECTORS__<NAME>__CLIENT_SECRET``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from crm_bridge.connector import ConnectorSettings

__all__ = ["DEFAULT_OBJECTS", "SUPPORTED_OBJECTS", "SalesforceObject", "SalesforceSettings"]

SalesforceObject = Literal[
    "Person",
    "Lead",
    "Contact",
    "Account",
    "Opportunity",
    "OpportunityContactRole",
    "User",
    "Task",
    "Event",
]
SUPPORTED_OBJECTS: tuple[str, ...] = (
    "Person",
    "Lead",
    "Contact",
    "Account",
    "Opportunity",
    "OpportunityContactRole",
    "User",
    "Task",
    "Event",
)
DEFAULT_OBJECTS: tuple[SalesforceObject, ...] = (
    "Person",
    "Lead",
    "Contact",
    "Account",
    "Opportunity",
    "OpportunityContactRole",
    "User",
)

COLLECTION_SIZE = 200
"""Records per sObject Collections request (a Salesforce limit)."""
COLLECTIONS_PER_COMPOSITE = 5
"""Collections (or query) subrequests Salesforce allows in one Composite request."""


class SalesforceSettings(ConnectorSettings):
    """How to reach one Salesforce org and how hard to work it."""

    instance_url: str = Field(
        description="The org's My Domain URL, e.g. https://acme.my.salesforce.com "
        "(the token response's instance_url wins when it differs)."
    )
    token_url: str = Field(
        description="OAuth token endpoint, e.g. https://acme.my.salesforce.com/services/oauth2/token."
    )
    client_id: str = Field(description="Connected app consumer key.")
    client_secret: SecretStr | None = Field(
        None, description="Connected app consumer secret (required for client_credentials)."
    )
    grant_type: Literal["client_credentials", "refresh_token", "password"] = Field(
        "client_credentials", description="OAuth grant used to obtain access tokens."
    )
    refresh_token: SecretStr | None = Field(
        None, description="Refresh token for the refresh_token grant."
    )
    username: str | None = Field(None, description="Integration user for the password grant.")
    password: SecretStr | None = Field(
        None, description="Password (+ security token) for the password grant."
    )
    api_version: str = Field("59.0", pattern=r"^\d+\.\d$", description="REST API version.")
    ca_bundle: Path | None = Field(
        None,
        description="PEM bundle to trust instead of the system store (the emulator's throwaway "
        "CA); proxy and CA environment variables are ignored either way.",
    )
    timeout_seconds: float = Field(
        60.0, gt=0, description="Read timeout of every HTTP request (connect: min(10, this))."
    )
    token_lifetime_seconds: float = Field(
        7200.0,
        gt=0,
        description="The org's session timeout; tokens are renewed at 90% of it "
        "(Salesforce sends no expires_in).",
    )
    objects: list[SalesforceObject] = Field(
        default_factory=lambda: list(DEFAULT_OBJECTS), description="Objects this instance serves."
    )
    person_create_as: Literal["Lead", "Contact"] = Field(
        "Lead",
        description="What a new person from marketing becomes in Salesforce when the pair syncs "
        "the Person object (Lead or Contact): a Lead, for reps to qualify and convert, or a "
        "Contact (with no account) where the org works without leads.",
    )
    contact_roles: bool = Field(
        True,
        description="Serve each Opportunity's contact roles as the field "
        "OpportunityContactRoles.ContactId (its contacts' ids), when both Opportunity and "
        "OpportunityContactRole are served: one extra query per 1,000 opportunities read.",
    )
    fields: dict[SalesforceObject, list[str]] | None = Field(
        None,
        description="Fields to read per object; objects not listed read every field the "
        "describe call reports (cached per process).",
    )
    query_batch_size: int = Field(
        2000,
        ge=200,
        le=2000,
        description="Rows per query page (Sforce-Query-Options batchSize; 2000 is the most).",
    )
    write_batch: int = Field(
        COLLECTION_SIZE * COLLECTIONS_PER_COMPOSITE,
        ge=1,
        le=COLLECTION_SIZE * COLLECTIONS_PER_COMPOSITE,
        description="Records per Composite call (5 Collections x 200 = 1000 at most).",
    )
    bulk_threshold: int = Field(
        10_000,
        ge=0,
        description="Operations of one kind in a write batch at or above which Bulk API 2.0 "
        "ingest is used instead of Composite; 0 disables Bulk.",
    )
    bulk_max_batch: int = Field(
        50_000,
        ge=1,
        le=150_000,
        description="Largest write batch the engine hands in when Bulk is enabled "
        "(one Bulk job's CSV must stay under 100 MB).",
    )
    bulk_query_threshold: int = Field(
        50_000,
        ge=0,
        description="A change read whose first page reports more rows than this (an initial "
        "load, a backfill, a mass update) is read with one Bulk API 2.0 queryAll job instead of "
        "REST pages of 2,000; 0 keeps every read on REST.",
    )
    bulk_query_page: int = Field(
        25_000,
        ge=100,
        le=1_000_000,
        description="Rows per Bulk query results call (maxRecords): fewer calls against more "
        "memory for one page of CSV.",
    )
    bulk_poll_seconds: float = Field(
        2.0, ge=0, description="First wait between Bulk job status polls (doubles, max 30 s)."
    )
    bulk_timeout_seconds: float = Field(
        3600.0, gt=0, description="Give up waiting for a Bulk job after this long."
    )
    daily_reserve_fraction: float = Field(
        0.10,
        ge=0.0,
        lt=1.0,
        description="Share of the org's daily API allocation left for people and other "
        "integrations; crm-bridge stops (RateLimitedError) before eating into it.",
    )
    exclude_own_changes: bool = Field(
        False,
        description="Filter out rows last modified by the integration user server-side. Off "
        "by default: deletes and merges done by the integration user would vanish too.",
    )

    call_options_client: str = Field(
        "crm-bridge",
        pattern=r"^[A-Za-z0-9_.\-/]{1,64}$",
        description="The client id sent as Sforce-Call-Options: client=<id> on every request; "
        "change events of our writes carry it in changeOrigin, so the feed drops their echoes "
        "unread.  Give each crm-bridge instance writing to one org its own id.",
    )
    cdc: bool = Field(
        False,
        description="Open a Change Data Capture feed over the Pub/Sub API when the daemon runs "
        "with push (needs the salesforce-cdc extra and the objects selected for CDC in Setup).",
    )
    cdc_channel: str = Field(
        "/data/ChangeEvents",
        pattern=r"^/data/\w+$",
        description="The CDC channel to subscribe to: /data/ChangeEvents (every entity selected "
        "for CDC, one stream) or a custom channel (/data/Name__chn) narrowed to the served "
        "objects; events of objects not served are skipped.",
    )
    pubsub_endpoint: str = Field(
        "api.pubsub.salesforce.com:7443",
        pattern=r"^[\w.\-]+:\d+$",
        description="host:port of the Pub/Sub API (gRPC over TLS; ca_bundle is trusted when set).",
    )
    cdc_batch_size: int = Field(
        100,
        ge=1,
        le=1000,
        description="Events asked for per FetchRequest (Pub/Sub flow control).",
    )

    @model_validator(mode="after")
    def _fields_only_for_served(self) -> SalesforceSettings:
        if self.fields:
            unknown = sorted(set(self.fields) - set(self.objects))
            if unknown:
                raise ValueError(f"fields given for objects not served: {', '.join(unknown)}")
        return self

    @property
    def max_batch(self) -> int:
        """What ``ObjectSpec.max_batch`` announces: Bulk-sized when Bulk is on."""
        if self.bulk_threshold > 0:
            return max(self.write_batch, self.bulk_max_batch)
        return self.write_batch
