"""Marketo's error vocabulary: response-level errors (6xx/7xx/1xxx) and record-level reasons.

Why one place: Marketo answers almost every failure with HTTP 200 and ``success: false`` plus
``errors: [{code, message}]`` with the code as a *string*; per-record problems come back as
``status: "skipped"`` with ``reasons``.  Handlers raise :class:`MarketoError` or build a
:func:`reason`; the HTTP layer renders both.  Messages follow the vendor's error-code table.

Doc: https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/error-codes
"""

from __future__ import annotations

import secrets
import time

__all__ = [
    "MESSAGES",
    "UNCOUNTED",
    "MarketoError",
    "blank",
    "missing",
    "reason",
    "request_id",
]

MESSAGES: dict[str, str] = {
    "502": "Bad Gateway",
    "600": "Empty access token",
    "601": "Access token invalid",
    "602": "Access token expired",
    "603": "Access denied",
    "604": "Request time-out",
    "605": "HTTP Method not supported",
    "606": "Max rate limit '100' exceeded with in '20' secs",
    "607": "Daily quota reached",
    "608": "API Temporarily Unavailable",
    "609": "Invalid JSON",
    "610": "Requested resource not found",
    "611": "System error",
    "612": "Invalid Content Type",
    "613": "Invalid Multipart Request",
    "615": "Concurrent access limit reached",
    "701": "Cannot be blank",
    "702": "No data found for a given search scenario",
    "704": "Invalid date format",
    "1001": "Invalid value",
    "1002": "Missing value for the required parameter",
    "1003": "Invalid data",
    "1004": "Lead not found",
    "1005": "Lead already exists",
    "1006": "Field not found",
    "1007": "Multiple leads match the lookup criteria",
    "1011": "Field not supported",
    "1013": "Object not found",
    "1015": "Lead not in list",
    "1016": "Too many imports",
    "1017": "Object already exists",
    "1018": "CRM Enabled",
    "1025": "Program status not found",
    "1029": "Too many jobs in queue",
    "1036": "Duplicate object found in input",
    "1037": "Lead was skipped",
    "1080": "Merge leads failed",
}

UNCOUNTED = frozenset({"600", "601", "602", "604", "605", "608", "611"})
"""The codes the vendor marks with an asterisk: such calls count against neither the rate limit
nor the daily quota."""


def request_id() -> str:
    """A request id shaped like the vendor's (``e42b#14272d07d78``: 4 hex, ``#``, hex millis)."""
    return f"{secrets.token_hex(2)}#{int(time.time() * 1000):x}"


def reason(code: int | str, message: str | None = None) -> dict[str, str]:
    """One record-level reason ``{code, message}`` (code as a string, like the vendor)."""
    key = str(code)
    return {"code": key, "message": message or MESSAGES.get(key, "Error")}


class MarketoError(Exception):
    """A whole-request failure: ``success: false`` with one error, still HTTP 200."""

    def __init__(self, code: int | str, message: str | None = None) -> None:
        self.code = str(code)
        self.message = message or MESSAGES.get(self.code, "Error")
        super().__init__(f"{self.code} {self.message}")

    def as_error(self) -> dict[str, str]:
        """The ``{code, message}`` item of ``errors``."""
        return {"code": self.code, "message": self.message}


def missing(name: str) -> MarketoError:
    """1002: a required query parameter is absent."""
    return MarketoError(1002, f"Missing value for the required parameter '{name}'")


def blank(name: str) -> MarketoError:
    """701: a required member of the request body is absent or empty."""
    return MarketoError(701, f"{name} cannot be blank")
