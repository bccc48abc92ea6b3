"""HubSpot's error bodies, and the exception the handlers raise to produce them.

Why one place: every endpoint family answers errors in the same documented envelope
(https://developers.hubspot.com/docs/api-reference/error-handling), and crm-bridge's retry table
keys on ``status`` + ``category``.  Handlers raise :class:`HubSpotError`; the HTTP layer renders it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

__all__ = [
    "HubSpotError",
    "bad_request",
    "conflict",
    "correlation_id",
    "error_body",
    "not_found",
    "property_errors",
]


def correlation_id() -> str:
    """A fresh correlation id, as HubSpot puts in every error body."""
    return str(uuid.uuid4())


def error_body(
    message: str,
    category: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    context: dict[str, Any] | None = None,
    sub_category: str | None = None,
) -> dict[str, Any]:
    """The standard ``{"status":"error",...}`` envelope."""
    body: dict[str, Any] = {
        "status": "error",
        "message": message,
        "correlationId": correlation_id(),
        "category": category,
    }
    if sub_category is not None:
        body["subCategory"] = sub_category
    if errors:
        body["errors"] = errors
    if context:
        body["context"] = context
    return body


class HubSpotError(Exception):
    """An error answer: HTTP status plus the body HubSpot would send.

    ``body`` is complete and used as is when given (rate limits and OAuth use other shapes);
    otherwise it is built from the standard envelope.
    """

    def __init__(
        self,
        status: int,
        message: str,
        category: str = "VALIDATION_ERROR",
        *,
        errors: list[dict[str, Any]] | None = None,
        context: dict[str, Any] | None = None,
        sub_category: str | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.category = category
        self.headers = headers or {}
        self.body = body or error_body(
            message, category, errors=errors, context=context, sub_category=sub_category
        )


def bad_request(message: str, **kwargs: Any) -> HubSpotError:
    """400 VALIDATION_ERROR, the answer to most malformed requests."""
    return HubSpotError(400, message, "VALIDATION_ERROR", **kwargs)


def not_found(message: str = "resource not found", **kwargs: Any) -> HubSpotError:
    """404 OBJECT_NOT_FOUND."""
    return HubSpotError(404, message, "OBJECT_NOT_FOUND", **kwargs)


def conflict(message: str, **kwargs: Any) -> HubSpotError:
    """409 CONFLICT (duplicate unique value)."""
    return HubSpotError(409, message, "CONFLICT", **kwargs)


def property_errors(problems: list[tuple[str, str, str]]) -> HubSpotError:
    """400 for invalid property values: ``problems`` is ``(property, code, message)``.

    Why both forms: HubSpot embeds the legacy per-property JSON list in ``message``
    ("Property values were not valid: [...]") and newer responses add ``errors[]`` with ``code``
    and ``context.propertyName``; clients parse either.
    """
    legacy = [
        {"isValid": False, "message": msg, "error": code, "name": name}
        for name, code, msg in problems
    ]
    errors = [
        {"message": msg, "code": code, "context": {"propertyName": [name]}}
        for name, code, msg in problems
    ]
    return bad_request(f"Property values were not valid: {json.dumps(legacy)}", errors=errors)
