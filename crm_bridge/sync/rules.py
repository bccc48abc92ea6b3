"""Per-field conflict rules: who wins when both sides changed the same field since the last sync.

Rules only settle *contested* fields (changed on both sides, to different values).  A field
changed on one side simply flows to the other, as far as its ``direction`` allows -- except under
``never``, where a field is written only when a record is created and never overwritten after.

``latest_wins`` compares the records' modification times; two times closer than the pair's clock
skew tolerance are a tie, and ties go to the CRM (the system of record for sales) so the outcome
never depends on which side was read first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from crm_bridge.sync.mapping import ConflictRule
from crm_bridge.sync.values import is_blank

__all__ = ["Verdict", "settle"]

Winner = Literal["crm", "map", "none"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome for one contested field: the winning side and value, and why."""

    winner: Winner
    value: Any
    reason: str


def settle(
    rule: ConflictRule,
    *,
    crm_value: Any,
    map_value: Any,
    crm_modified_at: datetime,
    map_modified_at: datetime,
    skew: timedelta,
) -> Verdict:
    """Apply ``rule`` to one contested field."""
    if rule == "crm_wins":
        return Verdict("crm", crm_value, "crm_wins")
    if rule == "map_wins":
        return Verdict("map", map_value, "map_wins")
    if rule == "crm_wins_unless_blank":
        if is_blank(crm_value):
            return Verdict("map", map_value, "crm value blank")
        return Verdict("crm", crm_value, "crm_wins_unless_blank")
    if rule == "latest_wins":
        gap = map_modified_at - crm_modified_at
        if abs(gap) <= skew:
            return Verdict("crm", crm_value, f"tie within {skew.total_seconds():g}s skew")
        if gap > timedelta(0):
            return Verdict("map", map_value, "map changed later")
        return Verdict("crm", crm_value, "crm changed later")
    return Verdict("none", None, "never: each side keeps its value")
