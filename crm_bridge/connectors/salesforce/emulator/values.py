"""Field values on the wire and in memory.

Why datetimes are stored as strings: Salesforce sends ``2024-01-01T00:00:00.000+0000`` (UTC,
millisecond precision).  Keeping exactly that string in the record means rendering costs
nothing, and because every stamp is UTC with a fixed width, string order *is* time order, so
SOQL comparisons and ORDER BY need no parsing.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from crm_bridge.connectors.salesforce.emulator.errors import RecordError
from crm_bridge.connectors.salesforce.emulator.ids import looks_like_id, normalize_id
from crm_bridge.connectors.salesforce.emulator.schema import Field

__all__ = ["EMAIL_RE", "coerce", "format_datetime", "parse_datetime"]

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DT_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$"
)


def format_datetime(moment: datetime) -> str:
    """``2024-01-01T00:00:00.000+0000`` -- the only datetime shape the REST API sends."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


def parse_datetime(text: str) -> datetime:
    """Parse the datetime shapes clients send (``Z``, ``+00:00``, ``+0000``, with or without ms).

    Raises ``ValueError`` for anything else, including a bare date.
    """
    m = _DT_RE.match(text.strip())
    if not m:
        raise ValueError(text)
    day, clock, frac, zone = m.groups()
    if clock.count(":") == 1:
        clock += ":00"
    if zone in (None, "Z"):
        zone = "+00:00"
    elif ":" not in zone:
        zone = zone[:3] + ":" + zone[3:]
    frac = (frac or ".0")[:7]
    return datetime.fromisoformat(f"{day}T{clock}{frac}{zone}")


def _bad(f: Field, value: Any, what: str) -> RecordError:
    return RecordError(
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of {what} from VALUE_STRING value {value} or request may be "
        f"missing a required field",
        [f.name],
    )


def coerce(f: Field, value: Any, *, from_text: bool = False) -> Any:
    """Turn an incoming JSON (or CSV, ``from_text``) value into what the record stores.

    Raises :class:`RecordError` with the error code a real org uses for that mistake.
    """
    if value is None or (from_text and value == "#N/A"):
        return None
    t = f.type
    if t == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _bad(f, value, "boolean")
    if t in ("double", "currency", "percent"):
        if isinstance(value, bool):
            raise _bad(f, value, "double")
        if isinstance(value, int | float):
            return float(value)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise _bad(f, value, "double") from None
    if t == "int":
        if isinstance(value, bool):
            raise _bad(f, value, "int")
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise _bad(f, value, "int") from None
        if as_float != int(as_float):
            raise _bad(f, value, "int")
        return int(as_float)
    if t == "datetime":
        try:
            return format_datetime(parse_datetime(str(value)))
        except ValueError:
            raise _bad(f, value, "datetime") from None
    if t == "date":
        try:
            return date.fromisoformat(str(value)[:10]).isoformat()
        except ValueError:
            raise _bad(f, value, "date") from None
    if not isinstance(value, str):
        if isinstance(value, bool | int | float):
            value = str(value).lower() if isinstance(value, bool) else str(value)
        else:
            raise _bad(f, value, "String")
    if t in ("reference", "id"):
        if value == "":
            return None
        if not looks_like_id(value):
            raise RecordError(
                "MALFORMED_ID", f"{f.label}: id value of incorrect type: {value}", [f.name]
            )
        return normalize_id(value)
    if value == "":
        return None
    if f.length and len(value) > f.length:
        raise RecordError(
            "STRING_TOO_LONG",
            f"{f.label}: data value too large: {value[:40]} (max length={f.length})",
            [f.name],
        )
    if t == "email" and not EMAIL_RE.match(value):
        raise RecordError(
            "INVALID_EMAIL_ADDRESS", f"{f.label}: invalid email address: {value}", [f.name]
        )
    return value
