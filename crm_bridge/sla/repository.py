"""Typed reads and writes of the SLA tables, inside a caller's :class:`~crm_bridge.store.StoreTx`.

Why a separate module rather than methods on ``StoreTx``: the store module is shared by several
features; keeping SLA statements here keeps that file stable while this feature evolves.  It
follows the store's rules: Core statements, frozen dataclasses out, aware UTC datetimes, one
transaction passed down (never opened here).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crm_bridge.store import StoreTx
from crm_bridge.store.schema import sla_actions, sla_clocks, sla_rotation

__all__ = ["ClockRow", "SlaRepository"]

_IN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class ClockRow:
    """One assignment of one lead and the state of its clocks."""

    id: int
    crm: str
    lead_id: str
    seq: int
    policy: str
    team: str
    rep: str
    owner_id: str
    assigned_at: datetime
    status: str
    source: str | None = None
    marketing_id: str | None = None
    mql_at: datetime | None = None
    crm_visible_at: datetime | None = None
    accepted_at: datetime | None = None
    rejected_at: datetime | None = None
    reject_reason: str | None = None
    first_touch_at: datetime | None = None
    accept_minutes: int | None = None
    first_touch_minutes: int | None = None
    accept_breached: bool = False
    first_touch_breached: bool = False
    reassignments: int = 0
    closed_at: datetime | None = None
    close_reason: str | None = None

    @property
    def open(self) -> bool:
        """Whether any clock of this assignment may still run."""
        return self.status == "open"


_FIELDS = tuple(ClockRow.__dataclass_fields__)


_COLUMNS = [sla_clocks.c[f] for f in _FIELDS]


def _row(r: sa.Row[Any]) -> ClockRow:
    # Selected in field order (``_COLUMNS``): positional construction is ~3x faster than by name.
    return ClockRow(*r)  # type: ignore[call-arg]


def _connection(tx: StoreTx) -> Connection:
    # The store exposes no public connection; the repository is the one sanctioned user of it.
    conn: Connection = tx._conn
    return conn


class SlaRepository:
    """SLA statements bound to one transaction."""

    def __init__(self, tx: StoreTx) -> None:
        self.tx = tx
        self.conn = _connection(tx)

    # -- clocks ----------------------------------------------------------------------------------

    def open_clock(self, *, now: datetime, **values: Any) -> ClockRow:
        """Insert a new assignment (``seq`` = previous + 1) and return it."""
        crm, lead_id = values["crm"], values["lead_id"]
        prev = self.conn.execute(
            sa.select(sa.func.max(sla_clocks.c.seq)).where(
                sla_clocks.c.crm == crm, sla_clocks.c.lead_id == lead_id
            )
        ).scalar_one_or_none()
        row = {**values, "seq": int(prev or 0) + 1, "status": "open", "updated_at": now}
        new_id = self.conn.execute(
            sa.insert(sla_clocks).values(**row).returning(sla_clocks.c.id)
        ).scalar_one()
        found = self.clock(int(new_id))
        assert found is not None
        return found

    def update_clock(self, clock_id: int, *, now: datetime, **changes: Any) -> None:
        """Set columns of one clock row."""
        unknown = set(changes) - set(_FIELDS)
        if unknown:
            raise ValueError(f"unknown sla_clocks columns: {sorted(unknown)}")
        self.conn.execute(
            sa.update(sla_clocks)
            .where(sla_clocks.c.id == clock_id)
            .values(**changes, updated_at=now)
        )

    def clock(self, clock_id: int) -> ClockRow | None:
        """One clock row by id."""
        r = self.conn.execute(sa.select(*_COLUMNS).where(sla_clocks.c.id == clock_id)).first()
        return _row(r) if r is not None else None

    def latest_by_lead(self, crm: str, lead_ids: Iterable[str]) -> dict[str, ClockRow]:
        """The newest assignment of each lead that has one (chunked ``IN`` lists)."""
        found: dict[str, ClockRow] = {}
        wanted = list(dict.fromkeys(lead_ids))
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start : start + _IN_CHUNK]
            stmt = (
                sa.select(*_COLUMNS)
                .where(sla_clocks.c.crm == crm, sla_clocks.c.lead_id.in_(chunk))
                .order_by(sla_clocks.c.seq)
            )
            for r in self.conn.execute(stmt):
                row = _row(r)
                found[row.lead_id] = row  # ascending seq: the last one wins
        return found

    def history(self, crm: str, lead_id: str) -> list[ClockRow]:
        """Every assignment of one lead, oldest first."""
        stmt = (
            sa.select(*_COLUMNS)
            .where(sla_clocks.c.crm == crm, sla_clocks.c.lead_id == lead_id)
            .order_by(sla_clocks.c.seq)
        )
        return [_row(r) for r in self.conn.execute(stmt)]

    def open_clocks(self, crm: str) -> Iterator[ClockRow]:
        """Every open assignment, in id order."""
        stmt = (
            sa.select(*_COLUMNS)
            .where(sla_clocks.c.crm == crm, sla_clocks.c.status == "open")
            .order_by(sla_clocks.c.id)
        )
        for r in self.conn.execute(stmt):
            yield _row(r)

    def all_clocks(self, crm: str, *, since: datetime | None = None) -> Iterator[ClockRow]:
        """Every assignment (reports), optionally those assigned at/after ``since``."""
        stmt = sa.select(*_COLUMNS).where(sla_clocks.c.crm == crm).order_by(sla_clocks.c.id)
        if since is not None:
            stmt = stmt.where(sla_clocks.c.assigned_at >= since)
        for r in self.conn.execute(stmt):
            yield _row(r)

    def open_counts_by_owner(self, crm: str) -> dict[str, int]:
        """Open assignments per owner id (reassignment caps)."""
        stmt = (
            sa.select(sla_clocks.c.owner_id, sa.func.count())
            .where(sla_clocks.c.crm == crm, sla_clocks.c.status == "open")
            .group_by(sla_clocks.c.owner_id)
        )
        return {str(owner): int(n) for owner, n in self.conn.execute(stmt)}

    def prior_owners(self, crm: str, lead_id: str) -> set[str]:
        """Every owner the lead had under an SLA (excluded from reassignment)."""
        stmt = sa.select(sla_clocks.c.owner_id).where(
            sla_clocks.c.crm == crm, sla_clocks.c.lead_id == lead_id
        )
        return {str(o) for (o,) in self.conn.execute(stmt)}

    # -- actions ledger --------------------------------------------------------------------------

    def actions_for(self, clock_ids: Sequence[int]) -> dict[int, set[tuple[str, str]]]:
        """``clock_id -> {(clock, action), ...}`` already taken."""
        found: dict[int, set[tuple[str, str]]] = {}
        for start in range(0, len(clock_ids), _IN_CHUNK):
            chunk = clock_ids[start : start + _IN_CHUNK]
            stmt = sa.select(
                sla_actions.c.clock_id, sla_actions.c.clock, sla_actions.c.action
            ).where(sla_actions.c.clock_id.in_(chunk))
            for cid, clock, action in self.conn.execute(stmt):
                found.setdefault(int(cid), set()).add((str(clock), str(action)))
        return found

    def all_actions(self, crm: str) -> dict[int, set[tuple[str, str]]]:
        """The whole ledger of open clocks of ``crm`` in one query (the cycle's hot path)."""
        stmt = (
            sa.select(sla_actions.c.clock_id, sla_actions.c.clock, sla_actions.c.action)
            .join(sla_clocks, sla_clocks.c.id == sla_actions.c.clock_id)
            .where(sla_clocks.c.crm == crm, sla_clocks.c.status == "open")
        )
        found: dict[int, set[tuple[str, str]]] = {}
        for cid, clock, action in self.conn.execute(stmt):
            found.setdefault(int(cid), set()).add((str(clock), str(action)))
        return found

    def record_action(
        self, clock_id: int, clock: str, action: str, *, now: datetime, data: Mapping[str, Any]
    ) -> bool:
        """Add a ledger row; False if that step was already recorded (nothing written)."""
        exists = self.conn.execute(
            sa.select(sla_actions.c.id).where(
                sla_actions.c.clock_id == clock_id,
                sla_actions.c.clock == clock,
                sla_actions.c.action == action,
            )
        ).first()
        if exists is not None:
            return False
        self.conn.execute(
            sa.insert(sla_actions).values(
                clock_id=clock_id, clock=clock, action=action, at=now, data=dict(data)
            )
        )
        return True

    def action_log(self, clock_ids: Sequence[int]) -> list[tuple[int, str, str, datetime, Any]]:
        """``(clock_id, clock, action, at, data)`` rows in time order (``explain``)."""
        if not clock_ids:
            return []
        stmt = (
            sa.select(
                sla_actions.c.clock_id,
                sla_actions.c.clock,
                sla_actions.c.action,
                sla_actions.c.at,
                sla_actions.c.data,
            )
            .where(sla_actions.c.clock_id.in_(list(clock_ids)))
            .order_by(sla_actions.c.at, sla_actions.c.id)
        )
        return [(int(a), str(b), str(c), d, e) for a, b, c, d, e in self.conn.execute(stmt)]

    # -- round robin -----------------------------------------------------------------------------

    def last_rep(self, crm: str, team: str) -> str | None:
        """The rep the team's rotation picked last."""
        value: str | None = self.conn.execute(
            sa.select(sla_rotation.c.last_rep).where(
                sla_rotation.c.crm == crm, sla_rotation.c.team == team
            )
        ).scalar_one_or_none()
        return value

    def set_last_rep(self, crm: str, team: str, rep: str, *, now: datetime) -> None:
        """Move the team's rotation pointer."""
        updated = self.conn.execute(
            sa.update(sla_rotation)
            .where(sla_rotation.c.crm == crm, sla_rotation.c.team == team)
            .values(last_rep=rep, updated_at=now)
        ).rowcount
        if not updated:
            self.conn.execute(
                sa.insert(sla_rotation).values(crm=crm, team=team, last_rep=rep, updated_at=now)
            )
