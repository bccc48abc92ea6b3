"""``crm-bridge explain RECORD``: everything the store (and, live, both sides) know of one record.

Why it compares *logical* values: the planner decides on values normalised the way the pair
maps them (owner ids become e-mails, picklists use the CRM vocabulary, e-mails lower-cased).
Comparing the vendors' raw fields would report differences the engine never sees (``0051...``
vs ``71000003`` for the same owner), so the current values are read through the same context the
runner builds for a cycle.

What it can say, in order of what matters (:func:`verdict`):

1. no link at all -- never matched (a dead letter says why, or it has not been read yet);
2. the link is closed (deleted or merged) -- it is not synced any more, by design;
3. an open dead letter -- a side refused the write; the reason and the fix;
4. a write whose outcome is unknown (``written``/``creating``) -- the next cycle settles it;
5. live values differ -- which side changed since the baseline (the next cycle carries it);
6. in sync.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crm_bridge.connector import Record
from crm_bridge.errors import CrmBridgeError
from crm_bridge.ops import queries
from crm_bridge.session import Session
from crm_bridge.store import AuditEntry, DeadLetter, Decision, Link, Side
from crm_bridge.sync.planner import logical_values
from crm_bridge.sync.values import canonical

__all__ = ["Explanation", "FieldView", "explain", "verdict"]

SIDES: tuple[Side, Side] = ("crm", "map")


@dataclass(frozen=True)
class FieldView:
    """One mapped field: current logical values, baselines, the last conflict decision."""

    name: str
    rule: str
    direction: str
    current: Mapping[str, Any]
    """Per side; a side missing here was not read (offline, or the record is gone)."""
    baseline: Mapping[str, Any]
    decision: Decision | None = None

    def differs(self) -> bool:
        """Both sides were read and hold different values."""
        if not all(s in self.current for s in SIDES):
            return False
        return bool(self.current["crm"] != self.current["map"])

    def changed_on(self) -> list[str]:
        """The sides whose current value is not their baseline (edited since the last cycle)."""
        return [
            s
            for s in SIDES
            if s in self.current and s in self.baseline and self.current[s] != self.baseline[s]
        ]


@dataclass
class Explanation:
    """What ``explain`` found for one record id or e-mail."""

    query: str
    link: Link | None = None
    fields: list[FieldView] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)
    records: dict[str, Record | None] = field(default_factory=dict)
    """Per side, the record as read now (``None``: not found there); absent when not read."""
    other_links: list[Link] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: str = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view (``--json``)."""
        link = self.link
        return {
            "query": self.query,
            "summary": self.summary,
            "link": None
            if link is None
            else {
                "id": link.id,
                "pair": link.pair,
                "object": link.obj,
                "crm_id": link.crm_id,
                "map_id": link.map_id,
                "status": link.status,
                "identity": link.identity,
                "crm_state": link.crm_state,
                "map_state": link.map_state,
                "updated_at": link.updated_at.isoformat(),
            },
            "fields": [
                {
                    "field": f.name,
                    "rule": f.rule,
                    "direction": f.direction,
                    "current": dict(f.current),
                    "baseline": dict(f.baseline),
                    "last_decision": None
                    if f.decision is None
                    else {
                        "rule": f.decision.rule,
                        "winner": f.decision.winner,
                        "crm_value": f.decision.crm_value,
                        "map_value": f.decision.map_value,
                        "at": f.decision.at.isoformat(),
                    },
                }
                for f in self.fields
            ],
            "dead_letters": [
                {
                    "id": d.id,
                    "status": d.status,
                    "rejected_by": d.side,
                    "record": d.record_key,
                    "code": d.error_code,
                    "reason": d.reason,
                    "attempts": d.attempts,
                    "last_seen": d.last_seen.isoformat(),
                }
                for d in self.dead_letters
            ],
            "audit": [
                {"at": a.at.isoformat(), "kind": a.kind, "subject": a.subject, "data": dict(a.data)}
                for a in self.audit
            ],
            "other_links": [o.id for o in self.other_links],
            "notes": self.notes,
        }


def verdict(ex: Explanation) -> str:
    """The one line: whether the record is in sync, and if not, why."""
    link = ex.link
    open_letters = [d for d in ex.dead_letters if d.status == "open"]
    if link is None:
        if open_letters:
            d = open_letters[-1]
            return (
                f"not synced: {d.side} refused it ({d.error_code or 'no code'}): {d.reason} -- "
                f"fix that, then `crm-bridge dlq replay {d.id}`"
            )
        return (
            f"not synced: no link for {ex.query!r} -- it has not been matched or created on the "
            "other side yet (not read since it changed, outside every pair's objects, or "
            "filtered out)"
        )
    where = f"link {link.id} ({link.pair}/{link.obj})"
    if link.status != "active":
        return f"not synced: {where} is closed ({link.status}); changes to it are no longer synced"
    if open_letters:
        d = open_letters[-1]
        return (
            f"not in sync: {d.side} refused the last write ({d.error_code or 'no code'}, "
            f"{d.attempts} attempt(s)): {d.reason} -- fix that, then `crm-bridge dlq replay {d.id}`"
        )
    for side in SIDES:
        state = link.state_on(side)
        if state != "synced":
            return (
                f"pending: a write to {side} is {state} (its outcome is not confirmed); the next "
                "cycle reads it back and settles it"
            )
    for side in SIDES:
        if side in ex.records and ex.records[side] is None:
            return f"not in sync: the {side} record {link.id_on(side)} is gone (deleted?)"
    differing = [f for f in ex.fields if f.differs()]
    if differing:
        names = ", ".join(f.name for f in differing)
        changed = sorted({s for f in differing for s in f.changed_on()})
        one_way = [f.name for f in differing if f.direction != "both"]
        if changed:
            return (
                f"not in sync yet: {names} differ; changed on {'/'.join(changed)} since the last "
                "cycle -- the next cycle carries the change"
            )
        if one_way:
            return f"in sync as configured: {', '.join(one_way)} only flow one way"
        return f"not in sync: {names} differ although neither side changed since the baseline"
    if not ex.records:
        return (
            f"in sync as far as the store knows: {where} has no open dead letter or pending write"
        )
    return f"in sync: both sides hold the same values for all {len(ex.fields)} mapped fields"


def _pick(links: Sequence[Link], pair: str | None) -> list[Link]:
    chosen = [link for link in links if pair is None or link.pair == pair]
    # The active link first, then the most recently changed.
    return sorted(chosen, key=lambda link: (link.status != "active", -link.updated_at.timestamp()))


def explain(
    session: Session, query: str, *, pair: str | None = None, live: bool = True
) -> Explanation:
    """Look ``query`` (a CRM id, a marketing id or an e-mail) up and explain its sync state."""
    store = session.store
    ex = Explanation(query=query)
    found = _pick(queries.find_links(store, query), pair)
    pairs = session.config.settings.pairs
    found = [link for link in found if link.pair in pairs]
    if found:
        ex.link, ex.other_links = found[0], found[1:]
    ids = {query}
    if ex.link is not None:
        ids |= {i for i in (ex.link.crm_id, ex.link.map_id) if i}
    ex.dead_letters = [
        d
        for d in queries.dead_letters_for_records(store, ids)
        if (pair is None or d.pair == pair) and (ex.link is None or d.obj == ex.link.obj)
    ]
    ex.audit = queries.audit_for(store, ids)
    link = ex.link
    if link is not None:
        objmap = pairs[link.pair].objects.get(link.obj)
        if objmap is None:
            ex.notes.append(f"object {link.obj!r} is no longer in pair {link.pair!r}'s config")
        else:
            decisions: dict[str, Decision] = {}
            for d in queries.decisions_for_link(store, link.id):
                decisions.setdefault(d.field, d)  # newest first: keep the first seen
            current: dict[str, dict[str, Any]] = {"crm": {}, "map": {}}
            if live:
                current = _read_current(session, link, ex)
            for name, fm in objmap.fields.items():
                baseline: dict[str, Any] = {
                    s: link.synced.get(s, {}).get(name)
                    for s in SIDES
                    if name in link.synced.get(s, {})
                }
                now: dict[str, Any] = {
                    s: canonical(current[s][name], fm.kind) for s in SIDES if name in current[s]
                }
                ex.fields.append(
                    FieldView(
                        name=name,
                        rule=fm.rule,
                        direction=fm.direction,
                        current=now,
                        baseline={s: canonical(v, fm.kind) for s, v in baseline.items()},
                        decision=decisions.get(name),
                    )
                )
    ex.summary = verdict(ex)
    return ex


def _read_current(session: Session, link: Link, ex: Explanation) -> dict[str, dict[str, Any]]:
    """Both records as they are now, as logical values (the planner's own conversion)."""
    runner = session.runner(link.pair)
    objmap = runner.settings.objects[link.obj]
    objects = {"crm": objmap.crm_object, "map": objmap.map_object}
    records: dict[Side, list[Record]] = {"crm": [], "map": []}
    values: dict[str, dict[str, Any]] = {"crm": {}, "map": {}}
    try:
        for side in SIDES:
            rid = link.id_on(side)
            if rid is None:
                continue
            got = [r for r in runner.connectors[side].fetch(objects[side], [rid]) if r.id == rid]
            live = [r for r in got if not r.deleted]
            ex.records[side] = live[0] if live else None
            records[side] = live
        # The same context a cycle builds: owner e-mails, picklist vocabularies, references.
        ctx = runner.value_context(link.obj, records)
        for side in SIDES:
            record = ex.records.get(side)
            if record is not None:
                values[side] = logical_values(ctx, side, record)
    except CrmBridgeError as exc:
        ex.notes.append(f"could not read the records now ({exc}); showing the store only")
        ex.records.clear()
        return {"crm": {}, "map": {}}
    return values
