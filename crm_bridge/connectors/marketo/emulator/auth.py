"""The identity service: client-credential tokens that live on the emulator clock.

Why it matters: Marketo hands back **the same token** with its remaining life when asked again
before expiry (a client that re-authenticates on every call gets one token, not many), and calls
with an expired token answer 602, an unknown one 601, none at all 600 -- codes a connector must
tell apart to re-authenticate exactly once.

Doc: https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/authentication
"""

from __future__ import annotations

import math
import threading
import uuid
from dataclasses import dataclass

from crm_bridge.connectors.marketo.emulator.errors import MarketoError
from crm_bridge.connectors.marketo.emulator.settings import MarketoEmulatorSettings
from crm_bridge.emulators.runtime import EmulatorClock

__all__ = ["IdentityError", "Token", "TokenRegistry"]


@dataclass
class Token:
    """One issued access token (``repr`` hides the secret value)."""

    value: str
    client_id: str
    expires_at: float

    def __repr__(self) -> str:
        return f"Token(client_id={self.client_id!r}, expires_at={self.expires_at!r}, value=***)"


class IdentityError(Exception):
    """A refused token request: HTTP ``status`` with ``{"error", "error_description"}``."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


class TokenRegistry:
    """Issues and checks tokens; thread-safe (tests expire tokens from their own thread)."""

    def __init__(self, settings: MarketoEmulatorSettings, clock: EmulatorClock) -> None:
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, Token] = {}
        self._current: dict[str, Token] = {}
        self.issued = 0

    def reset(self) -> None:
        """Forget every token."""
        with self._lock:
            self._tokens.clear()
            self._current.clear()
            self.issued = 0

    def expire_all(self) -> None:
        """Every issued token is expired from now on (the next call answers 602)."""
        now = self.clock.time()
        with self._lock:
            for token in self._tokens.values():
                token.expires_at = min(token.expires_at, now)

    def grant(
        self, grant_type: str | None, client_id: str | None, client_secret: str | None
    ) -> dict[str, object]:
        """The identity answer for these credentials, or :class:`IdentityError`."""
        if grant_type != "client_credentials":
            raise IdentityError(
                400, "unsupported_grant_type", f"Unsupported grant type: {grant_type}"
            )
        s = self.settings
        if client_id != s.client_id:
            raise IdentityError(401, "invalid_client", "Bad client credentials")
        if client_secret != s.client_secret:
            raise IdentityError(401, "unauthorized", "Bad client credentials")
        now = self.clock.time()
        with self._lock:
            token = self._current.get(client_id)
            if token is None or token.expires_at <= now:
                token = Token(f"{uuid.uuid4()}:emu", client_id, now + s.token_ttl_seconds)
                self._tokens[token.value] = token
                self._current[client_id] = token
                self.issued += 1
            remaining = max(0, math.floor(token.expires_at - now))
        return {
            "access_token": token.value,
            "token_type": "bearer",
            "expires_in": remaining,
            "scope": s.api_user,
        }

    def authenticate(self, header: str | None, param: str | None) -> Token:
        """The token a call carries (header first), or 600/601/602."""
        value: str | None = None
        if header and header.lower().startswith("bearer "):
            value = header[7:].strip() or None
        elif header:
            raise MarketoError(601)
        if value is None and param:
            if not self.settings.allow_query_token:
                raise MarketoError(601)
            value = param
        if value is None:
            raise MarketoError(600)
        with self._lock:
            token = self._tokens.get(value)
        if token is None:
            raise MarketoError(601)
        if token.expires_at <= self.clock.time():
            raise MarketoError(602)
        return token
