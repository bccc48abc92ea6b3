"""The end of ``crm-bridge demo``: reasons installed, captured and reported on the seeded data.

Why the demo writes reasons itself: the emulators' seed data predates the taxonomy, so its closed
opportunities and rejected leads carry no reason.  :func:`demo_report` installs the taxonomy,
gives most of those records a plausible reason (deterministically, through the CRM connector --
the same writes a rep would make), leaves a few without one so the capture has something to flag,
runs one capture cycle and returns the report as printable lines.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from crm_bridge.connector import Connector, Upsert
from crm_bridge.reasons import install
from crm_bridge.reasons.capture import PersonLinks, ReasonCapture
from crm_bridge.reasons.taxonomy import DEAL_CATEGORIES, LEAD_CATEGORIES, ReasonsSettings
from crm_bridge.reports.model import report_from_store
from crm_bridge.reports.render_text import render_lines
from crm_bridge.store import Store

__all__ = ["DEMO_TAXONOMY", "demo_report", "demo_settings"]

DEMO_TAXONOMY = """
version = 1
list_expiry_days = 90

[codes.price]
category = "lost"
label = "Price"
description = "The buyer found us too expensive."

[codes.competitor]
category = "lost"
label = "Competitor"

[codes.no_decision]
category = "lost"
label = "No decision"

[codes.other_loss]
category = "lost"
label = "Other"
requires_note = true

[codes.product_fit]
category = "won"
label = "Product fit"

[codes.relationship]
category = "won"
label = "Relationship"

[codes.not_icp]
category = "lead_rejected"
label = "Not our ICP"

[codes.no_contact]
category = "lead_rejected"
label = "Could not reach"

[codes.student]
category = "disqualified"
label = "Student / personal"
"""
MISSING_PERCENT = 15
"""Share of seeded outcomes left without a reason, so the report shows flags and completeness."""


DEMO_LINKS = PersonLinks("main", "leads")
"""The demo's sync pair (``crm_bridge.demo.sandbox``: ``main``, preset ``hubspot_salesforce``)."""


def demo_settings(crm: str, marketing: str) -> ReasonsSettings:
    """The demo taxonomy for these two connector names."""
    raw = tomllib.loads(DEMO_TAXONOMY)
    return ReasonsSettings.model_validate({**raw, "crm": crm, "marketing": marketing})


def _pick(record_id: str, options: list[str]) -> str | None:
    digest = int(hashlib.sha256(record_id.encode()).hexdigest(), 16)
    if digest % 100 < MISSING_PERCENT:
        return None
    return options[(digest // 100) % len(options)]


def _seed_reasons(settings: ReasonsSettings, crm: Connector[Any]) -> int:
    """Give seeded closed deals / rejected leads a reason, as reps would; returns writes made."""
    f = settings.crm_fields
    by_category = {
        cat: [
            c
            for c, _ in settings.codes_for(frozenset({cat}))
            if not settings.codes[c].requires_note
        ]
        for cat in (*DEAL_CATEGORIES, *LEAD_CATEGORIES)
    }
    written = 0
    jobs = (
        (
            f.opportunity_object,
            f.stage_field,
            {s: "won" for s in f.won_stages} | {s: "lost" for s in f.lost_stages},
            f.opportunity_reason_field,
        ),
        (f.lead_object, f.lead_status_field, dict(f.rejected_statuses), f.lead_reason_field),
    )
    for obj, status_field, outcome_of, reason_field in jobs:
        ops: list[Upsert] = []
        for record in crm.changes(obj, None):
            outcome = outcome_of.get(str(record.fields.get(status_field)))
            if record.deleted or outcome is None or record.fields.get(reason_field):
                continue
            code = _pick(record.id, by_category[outcome])
            if code is not None:
                ops.append(Upsert(key=record.id, id=record.id, fields={reason_field: code}))
        size = max(1, crm.object_spec(obj).max_batch)
        for start in range(0, len(ops), size):
            written += sum(1 for r in crm.write(obj, ops[start : start + size]) if r.ok)
    return written


def demo_report(
    settings: ReasonsSettings | None,
    *,
    crm: Connector[Any],
    marketing: Connector[Any],
    store: Store,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    links: PersonLinks | None = DEMO_LINKS,
) -> list[str]:
    """Install, seed reasons, capture once and return the report as printable lines.

    ``links`` is where the demo's sync keeps its people (pair ``main``, the preset's ``leads``):
    reasons are pushed only to people the sync linked.  The capture runs over all history
    (``since=None``) because the demo gives the seeded, already-closed records their reasons.
    """
    settings = settings or demo_settings(crm.name, marketing.name)
    lines: list[str] = []
    done = install.apply(settings, crm=crm, marketing=marketing)
    lines.append(f"reasons: taxonomy v{settings.version} installed ({done.changes} change(s))")
    lines.append(f"reasons: {_seed_reasons(settings, crm)} seeded records given a reason")
    report = ReasonCapture(
        settings, crm=crm, marketing=marketing, store=store, now=now, links=links, since=None
    ).run_cycle()
    lines.append(f"reasons: capture {report.summary()}")
    model = report_from_store(store, settings, generated_at=now())
    lines.extend(render_lines(model))
    return lines
