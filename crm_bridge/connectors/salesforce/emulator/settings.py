"""Knobs of the Salesforce emulator.

Why a pydantic model: ``crm-bridge emulate`` and the benches build these from CLI flags and JSON,
and a typo in a setting name should fail loudly rather than be ignored.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SalesforceEmulatorSettings"]


class SalesforceEmulatorSettings(BaseModel):
    """How the emulated org behaves; every value is a fake, safe to print."""

    model_config = ConfigDict(extra="forbid")

    api_version: str = "59.0"
    """The newest API version served; URLs for higher versions answer 404 like a real org."""
    token_ttl_seconds: int = Field(default=7200, gt=0)
    """Access-token lifetime, measured on the emulator clock (a real org's default is 2 h)."""
    daily_api_limit: int = Field(default=15000, ge=0)
    """The org's 24-hour API allocation; calls past it answer 403 REQUEST_LIMIT_EXCEEDED."""
    duplicate_rules: bool = False
    """Whether the standard Lead/Contact duplicate rules (same email) block saves."""
    client_id: str = "crm-bridge-emulator"
    client_secret: str = "crm-bridge-emulator-secret"
    integration_username: str = "integration@crm-bridge.example"
    user_password: str = "emulator-password"
    """The password every emulated user accepts on the OAuth ``password`` grant."""
    org_id: str = "00D5g000004EMUL"
    """The 15-character org id; access tokens start with it as real ones do."""
    default_query_batch_size: int = Field(default=2000, ge=200, le=2000)
    query_cursor_ttl_seconds: int = Field(default=900, gt=0)
    """Idle query locators expire after this long (15 minutes in a real org)."""
    max_open_cursors: int = Field(default=200, gt=0)
    jwt_public_key_pem: str | None = None
    """If set, JWT-bearer assertions must be RS256-signed by the matching key; else unchecked."""
