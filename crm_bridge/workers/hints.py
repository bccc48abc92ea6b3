"""Change hints as JSON, so a hinted cycle can travel as a job argument to any worker.

Why a job argument and not a table: the hints are the listener's, the cycle may run on another
worker, and procrastinate already stores the arguments with the job (and keeps them through
retries and stalled-job recovery).  A hint is a handful of short fields (:class:`ChangeHint`);
a burst is bounded by the listener's debounce and ``daemon.push_max_delay_seconds``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from crm_bridge.connector import ChangeHint, HintKind
from crm_bridge.store import Side
from crm_bridge.sync.actions import SIDES

__all__ = ["decode_hints", "encode_hints"]

EncodedHints = dict[str, list[dict[str, Any]]]


def encode_hints(hints: Mapping[Side, Sequence[ChangeHint]]) -> EncodedHints:
    """``{side: [hint fields]}`` with ``occurred_at`` as ISO 8601."""
    return {
        side: [
            {
                "object": h.object,
                "record_id": h.record_id,
                "occurred_at": h.occurred_at.isoformat(),
                "kind": h.kind,
                "ours": h.ours,
                "event_id": h.event_id,
            }
            for h in found
        ]
        for side, found in hints.items()
    }


def decode_hints(data: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[Side, list[ChangeHint]]:
    """The inverse of :func:`encode_hints`; unknown sides are refused (a foreign job)."""
    decoded: dict[Side, list[ChangeHint]] = {}
    for side, found in data.items():
        if side not in SIDES:
            raise ValueError(f"hints for an unknown side {side!r}")
        decoded[side] = [
            ChangeHint(
                object=str(h["object"]),
                record_id=str(h["record_id"]),
                occurred_at=datetime.fromisoformat(str(h["occurred_at"])),
                kind=cast(HintKind, h.get("kind", "upsert")),
                ours=bool(h.get("ours", False)),
                event_id=str(h.get("event_id", "")),
            )
            for h in found
        ]
    return decoded
