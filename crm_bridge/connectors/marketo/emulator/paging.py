"""Opaque offset tokens for the paged reads that are not activity reads (leads, lists, members).

Why separate from activity tokens: activity tokens are positions in the log (a date and an id);
a lead read by filter or a list-membership page is a position in a result set.  Both are opaque
to clients; ours name the read they belong to, so a token from another read answers 1003.
"""

from __future__ import annotations

import base64
import binascii
from typing import TypeVar

from crm_bridge.connectors.marketo.emulator.errors import MarketoError

__all__ = ["offset_from", "offset_token", "page"]

T = TypeVar("T")


def offset_token(kind: str, offset: int) -> str:
    """A token for "the ``kind`` read, from item ``offset``"."""
    return base64.b32encode(f"{kind}:{offset}".encode()).decode().rstrip("=")


def offset_from(kind: str, token: str | None) -> int:
    """The offset in ``token`` (0 without one); 1003 for a token of another read."""
    if not token:
        return 0
    try:
        text = base64.b32decode(token.upper() + "=" * (-len(token) % 8)).decode()
        got, _, raw = text.rpartition(":")
        if got != kind:
            raise ValueError(got)
        return int(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise MarketoError(1003, f"Invalid nextPageToken '{token}'") from None


def page(kind: str, items: list[T], token: str | None, size: int) -> tuple[list[T], str | None]:
    """One page of ``items`` and the token for the next one (``None`` when this is the last)."""
    start = offset_from(kind, token)
    chunk = items[start : start + size]
    end = start + len(chunk)
    return chunk, (offset_token(kind, end) if end < len(items) else None)
