"""Marketo's timestamp formats, and the US Central day the daily quota resets on.

Why here: lead ``createdAt``/``updatedAt`` and activity dates are ISO 8601 in UTC with a ``Z``
(``2024-01-31T12:00:00Z``); the REST params accept several ISO shapes; the quota resets at
midnight in US Central time, not UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

__all__ = ["central_day", "iso", "parse_iso"]

_CENTRAL = ZoneInfo("America/Chicago")


def iso(epoch: float) -> str:
    """``2024-01-31T12:00:00Z`` (seconds precision, as the vendor answers)."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> float:
    """An ISO 8601 date or date-time (``Z``, ``+0000`` or ``+00:00``; naive = UTC) as epoch.

    Raises ``ValueError`` on anything else (the handlers turn that into a 1003/704).
    """
    raw = text.strip().replace(" ", "+")
    if raw.endswith("Z"):
        raw = raw[:-1] + "+00:00"
    if len(raw) > 5 and raw[-5] in "+-" and raw[-4:].isdigit() and ":" not in raw[-5:]:
        raw = f"{raw[:-2]}:{raw[-2:]}"
    parsed = datetime.fromisoformat(raw)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def central_day(epoch: float) -> date:
    """The US Central calendar day of an instant (the daily quota's unit)."""
    return datetime.fromtimestamp(epoch, tz=_CENTRAL).date()
