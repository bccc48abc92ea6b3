"""A deliberately naive funnel, computed straight from raw events, to check the model against.

Written without any of :mod:`crm_bridge.funnel.model`'s helpers: every number is a loop over the
raw event list, per the definitions in the model's docstring.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from statistics import median
from typing import Any

from crm_bridge.funnel.events import PersonEvent

PATH = ["mql", "sal", "sql", "opportunity", "won"]
LEAVES_FROM = {"rejected": "mql", "disqualified": "sal", "lost": "opportunity"}


def _real_person(events: Sequence[PersonEvent], e: PersonEvent) -> str:
    if not e.person.startswith("deal:"):
        return e.person
    for other in sorted(events, key=lambda x: x.at):
        if other.deal_id == e.deal_id and not other.person.startswith("deal:"):
            return other.person
    return e.person


def _depth(stage: str) -> int:
    if stage in PATH:
        return PATH.index(stage)
    if stage in LEAVES_FROM:
        return PATH.index(LEAVES_FROM[stage])
    return -1


def brute_funnel(raw: Sequence[PersonEvent], now: datetime) -> dict[str, Any]:
    events = [e for e in raw if e.at <= now]
    people: dict[str, list[PersonEvent]] = {}
    for e in events:
        people.setdefault(_real_person(events, e), []).append(e)
    people = {
        p: es
        for p, es in people.items()
        if not p.startswith("deal:") and max(_depth(e.stage) for e in es) >= 0
    }
    out: dict[str, Any] = {"people": len(people)}

    def reached(p: str, stage: str) -> bool:
        return max(_depth(e.stage) for e in people[p]) >= PATH.index(stage)

    def first(p: str, stage: str) -> datetime | None:
        times = [e.at for e in people[p] if e.stage == stage]
        return min(times) if times else None

    for i, stage in enumerate(PATH):
        n = sum(1 for p in people if reached(p, stage))
        out[f"count.{stage}"] = n
        if i:
            prev = PATH[i - 1]
            n_prev = sum(1 for p in people if reached(p, prev))
            out[f"conv.{stage}"] = n / n_prev if n_prev else None
            days = []
            for p in people:
                a, b = first(p, prev), first(p, stage)
                if a is not None and b is not None and b >= a:
                    days.append((b - a).total_seconds() / 86400)
            out[f"days.{stage}"] = median(days) if days else None
    for loss, at in LEAVES_FROM.items():
        reasons: dict[str, int] = {}
        for es in people.values():
            mine = sorted((e for e in es if e.stage == loss), key=lambda e: e.at)
            if mine:
                why = mine[-1].reason or "(no valid reason)"
                reasons[why] = reasons.get(why, 0) + 1
        base = sum(1 for p in people if reached(p, at))
        out[f"loss.{loss}"] = sum(reasons.values())
        out[f"loss_rate.{loss}"] = sum(reasons.values()) / base if base else None
        out[f"top.{loss}"] = max(reasons.values()) if reasons else 0
    pipeline: dict[str, float] = {}
    won: set[str] = set()
    for es in people.values():
        for e in es:
            if e.deal_id and e.stage in ("opportunity", "won"):
                pipeline[e.deal_id] = max(pipeline.get(e.deal_id, 0.0), e.amount or 0.0)
            if e.deal_id and e.stage == "won":
                won.add(e.deal_id)
    out["pipeline"] = sum(pipeline.values())
    out["won_amount"] = sum(pipeline[d] for d in won)
    by_source: dict[str, list[str]] = {}
    for p, es in people.items():
        named = [e for e in sorted(es, key=lambda e: e.at) if e.source]
        by_source.setdefault(named[0].source if named else "(none)", []).append(p)  # type: ignore[arg-type]
    for source, ps in by_source.items():
        out[f"source.{source}.mql"] = sum(1 for p in ps if reached(p, "mql"))
        out[f"source.{source}.won"] = sum(1 for p in ps if reached(p, "won"))
    by_bucket: dict[str, list[str]] = {}
    for p, es in people.items():
        counts = [e.engagement for e in es if e.engagement is not None]
        top = max(counts) if counts else None
        bucket = (
            "(unknown)"
            if top is None
            else "0"
            if top == 0
            else "1-2"
            if top <= 2
            else "3-5"
            if top <= 5
            else "6+"
        )
        by_bucket.setdefault(bucket, []).append(p)
    for bucket, ps in by_bucket.items():
        mql = sum(1 for p in ps if reached(p, "mql"))
        sal = sum(1 for p in ps if reached(p, "sal"))
        w = sum(1 for p in ps if reached(p, "won"))
        lost = sum(1 for p in ps if any(e.stage == "lost" for e in people[p]))
        out[f"bucket.{bucket}.sal_rate"] = sal / mql if mql else None
        out[f"bucket.{bucket}.win_rate"] = w / (w + lost) if w + lost else None
    return out
