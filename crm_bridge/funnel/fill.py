"""Filling the person event log and reading the funnel back: the two calls the CLI makes.

Why one function fills from both origins: the person directory learnt from the backfill (e-mails
of leads and contacts, who a deal belongs to) is what lets store-derived events (an SLA clock
that knows only a lead id, a won deal that knows only its id) land on the right person -- so the
backfill runs first and derivation reuses its directory, and both are appended in one
transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crm_bridge.connector import Connector
from crm_bridge.funnel.backfill import backfill_events
from crm_bridge.funnel.derive import PairSystems, derive_events
from crm_bridge.funnel.model import FunnelModel, build_funnel
from crm_bridge.funnel.people import PersonDirectory
from crm_bridge.funnel.repository import EventRepository
from crm_bridge.funnel.settings import FunnelSettings, funnel_settings
from crm_bridge.session import Session
from crm_bridge.sla.repository import ClockRow, SlaRepository
from crm_bridge.store import Store

__all__ = ["FillReport", "PairSource", "fill_log", "funnel_from_store", "pair_sources"]


@dataclass(frozen=True, slots=True)
class FillReport:
    """How many events each origin implied and how many of them were new."""

    derived: int
    backfilled: int
    added: int

    def summary(self) -> str:
        """``derived=12 backfilled=340 added=35`` for the terminal."""
        return f"derived={self.derived} backfilled={self.backfilled} added={self.added}"


@dataclass(frozen=True)
class PairSource:
    """One pair's connectors and funnel settings, for the backfill."""

    crm: Connector[Any]
    marketing: Connector[Any]
    settings: FunnelSettings
    objects: tuple[str, ...]


def pair_sources(session: Session, names: list[str]) -> dict[str, PairSource]:
    """Each pair's connectors and funnel settings (its preset's, with ``[funnel.PAIR]`` on top)."""
    settings = session.config.settings
    found = {}
    for name in names:
        pair = settings.pairs[name]
        found[name] = PairSource(
            crm=session.connector(pair.crm),
            marketing=session.connector(pair.map),
            settings=funnel_settings(pair.preset, settings.funnel.get(name)),
            objects=tuple(pair.objects),
        )
    return found


def fill_log(
    store: Store,
    pairs: Mapping[str, PairSource],
    *,
    now: Callable[[], datetime],
    backfill: bool = True,
) -> FillReport:
    """Backfill (when asked) and derive events for ``pairs``; append what is new."""
    with store.transaction(readonly=True) as tx:
        people = PersonDirectory(EventRepository(tx).people_by_record())
    filled = []
    if backfill:
        for name, source in pairs.items():
            filled.extend(
                backfill_events(
                    source.settings,
                    pair=name,
                    crm=source.crm,
                    marketing=source.marketing,
                    people=people,
                )
            )
    systems: PairSystems = {
        name: (p.crm.name, p.marketing.name, p.objects) for name, p in pairs.items()
    }
    with store.transaction() as tx:
        derived = derive_events(tx, systems, people)
        added = EventRepository(tx).append([*filled, *derived], now=now())
    return FillReport(len(derived), len(filled), added)


def funnel_from_store(
    store: Store,
    *,
    generated_at: datetime,
    crm: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    clocks: Iterable[ClockRow] | None = None,
) -> FunnelModel:
    """The funnel of every logged event (one read-only transaction).

    SLA attainment per rep comes from the clocks of ``crm`` in the same store, or from
    ``clocks`` when given (an SLA engine keeping its own store).
    """
    with store.transaction(readonly=True) as tx:
        events = EventRepository(tx).events()
        if clocks is None:
            clocks = list(SlaRepository(tx).all_clocks(crm)) if crm else []
    return build_funnel(events, generated_at=generated_at, since=since, until=until, clocks=clocks)
