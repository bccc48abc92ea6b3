"""Normalising values so both sides compare equal when they mean the same thing.

HubSpot sends every property as a string ("1200.50", "2026-03-01T00:00:00Z", "true"); Salesforce
sends JSON numbers, dates and booleans.  Comparing raw values would make every cycle look like a
change -- an echo loop.  Values are normalised per field kind into a canonical *logical* value
before any comparison, hash or decision.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from crm_bridge.sync.mapping import FieldKind

__all__ = ["canonical", "is_blank"]


def is_blank(value: Any) -> bool:
    """None, empty or whitespace-only: what "unless blank" means."""
    return value is None or (isinstance(value, str) and not value.strip())


def canonical(value: Any, kind: FieldKind) -> Any:
    """The logical form of ``value`` for a field of ``kind`` (None for blank)."""
    if kind == "references" and isinstance(value, list | tuple | set | frozenset):
        members = sorted({text for v in value if (text := str(v).strip())})
        return ";".join(members) or None
    if is_blank(value):
        return None
    if kind == "number":
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            return str(value).strip()
        normal = number.normalize()
        return format(normal, "f") if normal == normal.to_integral() else str(normal)
    if kind == "date":
        return _date(value)
    if kind == "bool":
        text = str(value).strip().lower()
        return "true" if text in ("true", "1", "yes") else "false"
    if kind in ("email", "owner"):
        return str(value).strip().lower()
    if kind == "domain":
        return _domain(str(value))
    return str(value).strip() if isinstance(value, str) else str(value)


def _date(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    text = str(value).strip()
    if text.isdigit():  # HubSpot date properties may be epoch milliseconds
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC).date().isoformat()
    return text[:10]


def _domain(value: str) -> str:
    """A web address reduced to its host.

    Salesforce's ``Website`` holds what a rep typed, HubSpot's ``domain`` a bare host; the
    company is the same when the hosts are (``https://www.Acme.com/about`` is ``acme.com``).
    """
    text = value.strip().lower()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    text = text.rsplit("@", 1)[-1].split(":", 1)[0].rstrip(".")
    return text.removeprefix("www.")
