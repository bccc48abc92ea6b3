"""Salesforce record ids: 15 case-sensitive characters plus a 3-character case-safe suffix.

Why bother with the real checksum: crm-bridge (and people reading logs) compare, truncate and
upgrade ids between their 15- and 18-character forms; a fake id format would hide bugs there.
"""

from __future__ import annotations

import string
from functools import lru_cache

__all__ = ["KEY_PREFIXES", "looks_like_id", "make_id", "normalize_id", "prefix_of"]

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_SUFFIX_ALPHABET = string.ascii_uppercase + "012345"

KEY_PREFIXES: dict[str, str] = {
    "Lead": "00Q",
    "Contact": "003",
    "Account": "001",
    "Opportunity": "006",
    "OpportunityContactRole": "00K",
    "Task": "00T",
    "Event": "00U",
    "User": "005",
    "CustomField": "00N",
    "ValidationRule": "03d",
    "BulkJob": "750",
    "QueryLocator": "01g",
}
"""Object name -> key prefix, as a real org assigns them."""

_POD = "5g"  # two characters a real org puts after the prefix (instance / pod)


_PAIRS = [a + b for a in _BASE62 for b in _BASE62]


@lru_cache(maxsize=4096)
def _chunk_char(chunk: str) -> str:
    bits = 0
    for i, ch in enumerate(chunk):
        if "A" <= ch <= "Z":
            bits |= 1 << i
    return _SUFFIX_ALPHABET[bits]


def _suffix(id15: str) -> str:
    """The case-safe suffix: one character per 5-character chunk, encoding its upper-case mask."""
    return _chunk_char(id15[:5]) + _chunk_char(id15[5:10]) + _chunk_char(id15[10:15])


def make_id(prefix: str, counter: int) -> str:
    """The 18-character id number ``counter`` for a key prefix, e.g. ``00Q5g00000AbCdEFGH``."""
    n, r1 = divmod(counter, 3844)
    n, r2 = divmod(n, 3844)
    n, r3 = divmod(n, 3844)
    n, r4 = divmod(n, 3844)
    r5 = n % 3844
    id15 = prefix + _POD + _PAIRS[r5] + _PAIRS[r4] + _PAIRS[r3] + _PAIRS[r2] + _PAIRS[r1]
    return id15 + _suffix(id15)


def normalize_id(value: str) -> str:
    """Upgrade a 15-character id to 18 characters; 18-character ids come back unchanged."""
    if len(value) == 15:
        return value + _suffix(value)
    return value


def looks_like_id(value: object) -> bool:
    """Whether ``value`` is shaped like a Salesforce id (15 or 18 alphanumerics)."""
    return isinstance(value, str) and len(value) in (15, 18) and value.isalnum()


def prefix_of(value: str) -> str:
    """The key prefix (first three characters) of an id."""
    return value[:3]
