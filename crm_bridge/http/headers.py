"""Response headers in the one shape the rest of the seam reads them.

Why a module of its own: every client library hands back headers differently (an httpx
``Headers``, a requests ``CaseInsensitiveDict``, urllib3's ``HTTPHeaderDict``, or a plain list of
pairs), and each vendor's limit headers are numbers sent as text.  The describers here and each
vendor's header parsers (``crm_bridge/connectors/<vendor>/limit_headers.py``) share these two
helpers so none of them re-implements case folding or lenient integer parsing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["int_header", "lower_headers"]


def lower_headers(headers: Any) -> dict[str, str]:
    """Response headers as a plain dict with lower-case keys (any mapping or pair list works)."""
    if headers is None:
        return {}
    items: Iterable[tuple[Any, Any]] = headers.items() if hasattr(headers, "items") else headers
    return {str(k).lower(): str(v) for k, v in items}


def int_header(headers: Mapping[str, str], name: str) -> int | None:
    """The integer value of header ``name`` (lower-case keys), or ``None`` if absent or junk.

    Why lenient: a limit header we cannot read must not fail the call that carried it; the
    limiter simply learns nothing from that answer.
    """
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None
