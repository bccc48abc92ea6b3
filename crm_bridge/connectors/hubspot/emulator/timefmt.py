"""Millisecond timestamps in the two shapes HubSpot uses: ISO-8601 with ms, and epoch ms.

Why milliseconds everywhere: ``lastmodifieddate`` is the incremental-sync cursor, and two writes in
the same second must still be ordered.
"""

from __future__ import annotations

import time
from datetime import datetime
from functools import lru_cache

__all__ = ["iso_ms", "parse_ms"]


@lru_cache(maxsize=65_536)
def _iso_seconds(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def iso_ms(ms: int) -> str:
    """``2024-01-31T12:00:00.123Z`` for an epoch-millisecond value.

    The seconds part is cached: rendering a page formats three stamps per record, and records
    written in the same second share it.
    """
    seconds, millis = divmod(ms, 1000)
    return f"{_iso_seconds(seconds)}.{millis:03d}Z"


def parse_ms(value: str) -> int | None:
    """Epoch ms from an ISO date/datetime or a digits-only epoch-ms string; None if neither."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit() or (value[0] == "-" and value[1:].isdigit()):
        return int(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        from datetime import UTC

        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)
