"""One funnel event: a person reached a stage at a time, with what was known about them then.

Why one flat record for every origin: the funnel model must not care whether an MQL came from a
HubSpot lifecycle date or an SLA clock, only *who*, *when* and *in which context* -- so the
derivation and backfill modules translate their sources into this shape and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from crm_bridge.store.schema import FUNNEL_STAGES

__all__ = ["FUNNEL_STAGES", "LOSS_STAGES", "MAIN_PATH", "PersonEvent", "person_key"]

MAIN_PATH: tuple[str, ...] = ("mql", "sal", "sql", "opportunity", "won")
"""The waterfall, in order; reaching a stage implies having passed every earlier one."""

LOSS_STAGES: dict[str, str] = {"rejected": "mql", "disqualified": "sal", "lost": "opportunity"}
"""Where each way out of the funnel leaves it: rejected at MQL->SAL, disqualified after SAL,
lost at the opportunity.  Loss % of a stage divides by the people who reached it."""


def person_key(email: str | None, system: str, record_id: str) -> str:
    """The person an event belongs to: the normalised e-mail when known, else ``system:id``.

    Why the e-mail: it is what links the two systems (the sync matches on it too), so a HubSpot
    MQL date and a Salesforce conversion of the same person land on the same key.
    """
    text = (email or "").strip().lower()
    return text if "@" in text else f"{system}:{record_id}"


@dataclass(frozen=True, slots=True)
class PersonEvent:
    """A row of ``person_events`` (see ``crm_bridge/store/schema.py``)."""

    key: str
    person: str
    stage: str
    at: datetime
    origin: str
    pair: str | None = None
    system: str | None = None
    record_id: str | None = None
    deal_id: str | None = None
    source: str | None = None
    campaign: str | None = None
    owner: str | None = None
    amount: float | None = None
    engagement: int | None = None
    reason: str | None = None
    segments: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.stage not in FUNNEL_STAGES:
            raise ValueError(f"unknown funnel stage {self.stage!r}; one of {FUNNEL_STAGES}")
        if self.at.tzinfo is None:
            raise ValueError(f"naive event time {self.at!r}")
