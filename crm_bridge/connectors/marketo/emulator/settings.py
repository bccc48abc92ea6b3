"""Settings of one emulated Marketo instance.

Why a model: the limits (100 calls / 20 s, 10 in flight, 50,000 a day), token lifetime, bulk job
timings and the "native CRM sync" switch differ between the tests that exercise them and a demo;
one validated model keeps them together and lets the control plane change them at run time with
the same validation.

Docs: https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/rest-api
(limits), .../authentication (token life), .../error-codes.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MarketoEmulatorSettings"]


class MarketoEmulatorSettings(BaseModel):
    """Everything that is configurable about the emulated instance."""

    model_config = ConfigDict(validate_assignment=True)

    munchkin_id: str = "123-EMU-456"
    client_id: str = "emulator-client-id"
    client_secret: str = Field(default="emulator-client-secret", repr=False)
    api_user: str = "crm-bridge-api@emulator.marketo.test"
    """The ``scope`` of the identity answer: the API-only user owning the custom service."""
    token_ttl_seconds: int = Field(default=3600, gt=0)
    allow_query_token: bool = True
    """Accept ``access_token`` as a query/form parameter (the vendor is removing it; off = 601)."""

    rate_limits_enabled: bool = True
    rate_limit_calls: int = Field(default=100, gt=0)
    rate_limit_window_seconds: float = Field(default=20, gt=0)
    concurrency_limit: int = Field(default=10, gt=0)
    daily_quota: int = Field(default=50_000, gt=0)

    max_body_bytes: int = Field(default=1_000_000, gt=0)
    max_import_bytes: int = Field(default=10_000_000, gt=0)
    max_uri_bytes: int = Field(default=8_192, gt=0)
    batch_size: int = Field(default=300, gt=0)
    """Records per call and per page (filter values, inputs, list ids, activity pages)."""
    merge_max_losers: int = Field(default=25, gt=0)

    native_crm_sync: bool = False
    """Native Salesforce/Dynamics sync on: opportunity writes and all role calls answer 1018."""

    complete_envelope: bool = True
    """Send every member the swagger marks required: ``errors: []`` and ``warnings: []`` on
    success, ``result: []`` and ``warnings: []`` on failure.  Real answers often omit them --
    turn off to test a client against that leaner shape."""

    bulk_queue_seconds: float = Field(default=5, ge=0)
    """How long an enqueued export (or an import) waits before it is processing/importing."""
    bulk_processing_seconds: float = Field(default=60, ge=0)
    """How long processing takes on the emulator clock before the job completes."""
    bulk_max_queued: int = Field(default=10, gt=0)

    upsert_race: bool = False
    """Reproduce the vendor's documented race: two ``createOrUpdate`` calls in flight with the
    same key can both create.  On, a call's lookup does not see leads created by calls that
    arrived after it (hold one with a latency fault to make the calls overlap)."""
