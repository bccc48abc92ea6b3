"""Errors in the two shapes Salesforce uses.

Why two classes: a whole-request failure is an HTTP error whose body is a JSON *array* of
``{"message","errorCode","fields"}`` (simple-salesforce indexes ``[0]`` on a 401, so a non-list
body crashes it), while a per-record failure inside sObject Collections, Bulk 2.0 or a save
result is ``{"statusCode","message","fields"}`` -- same facts, different key.
Doc: https://developer.salesforce.com/docs/platform/api-rest/guide/errorcodes.html
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ApiError", "RecordError", "invalid_session", "not_found"]


@dataclass
class RecordError(Exception):
    """One record could not be saved; the request as a whole may still succeed."""

    status_code: str
    message: str
    fields: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_save_error(self) -> dict[str, Any]:
        """The ``errors[]`` entry of a SaveResult (sObject Collections, composite)."""
        return {
            **self.extra,
            "statusCode": self.status_code,
            "message": self.message,
            "fields": list(self.fields),
        }

    def as_api_error(self, status: int = 400) -> ApiError:
        """The same failure reported as a single-record REST call reports it."""
        return ApiError(status, self.status_code, self.message, list(self.fields), dict(self.extra))


@dataclass
class ApiError(Exception):
    """A failed REST call: HTTP ``status`` with a one-element error array."""

    status: int
    error_code: str
    message: str
    fields: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self) -> list[dict[str, Any]]:
        """The JSON array Salesforce answers with."""
        item: dict[str, Any] = {**self.extra, "message": self.message, "errorCode": self.error_code}
        if self.fields is not None:
            item["fields"] = list(self.fields)
        return [item]


def not_found() -> ApiError:
    """The answer to an unknown resource path."""
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")


def invalid_session() -> ApiError:
    """The answer to a missing, unknown, revoked or expired access token."""
    return ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
