"""Immutable values the store hands back to callers.

Rows are converted into frozen, slotted dataclasses at the store boundary so the sync engine never
holds a live SQLAlchemy row (which would tie it to an open connection) and cannot mutate state
except through :class:`~crm_bridge.store.StoreTx` methods.  Every datetime is timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "AuditEntry",
    "ChangeCursor",
    "CursorPhase",
    "DeadLetter",
    "DeadLetterStatus",
    "Decision",
    "DecisionIn",
    "Keyset",
    "Link",
    "LinkStatus",
    "PendingWrite",
    "Run",
    "RunStatus",
    "Side",
    "SideState",
]

Side = Literal["crm", "map"]
"""Which system a record id / version / state belongs to: the CRM or the marketing platform."""

LinkStatus = Literal["active", "deleted", "merged"]
SideState = Literal["synced", "written", "creating"]
"""What a link knows of one side's record.

``synced``: the side's baseline is what it holds -- read back at ``*_version``, or written by us
and acknowledged (version ``None`` until read back: any read is then compared with the baseline,
and every difference is a person's edit).  ``written``: a write to the side was planned (and
perhaps sent) but its outcome is unknown -- a crash or a failed batch came in between; the
baseline is what the side *should* hold and :class:`PendingWrite` says what it held before.
``creating``: a create was announced and its record id is not known yet."""


@dataclass(frozen=True, slots=True)
class PendingWrite:
    """A write to one side whose outcome is unknown (the side's state is ``written``/``creating``).

    ``fields`` are the logical fields the write carries; ``prior`` what the side held in them
    when the write was planned (absent for a create, or when not known).  On the next read, a
    field equal to the baseline landed, one equal to its prior did not (it is written again),
    and any other value is a person's edit made since -- which must win over our stale plan.
    """

    fields: frozenset[str]
    prior: Mapping[str, Any]
    sent: bool = True
    """``False`` for a create held back (the target's read stopped at the cap): nothing went
    out, so a record found later by identity is the person's own, not one we made."""

    def to_json(self) -> dict[str, Any]:
        """The JSON the store keeps."""
        out: dict[str, Any] = {"fields": sorted(self.fields), "prior": dict(self.prior)}
        if not self.sent:
            out["sent"] = False
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> PendingWrite | None:
        """Back from the store's JSON (``None`` stays ``None``)."""
        if data is None:
            return None
        return cls(
            frozenset(data.get("fields", ())),
            dict(data.get("prior", {})),
            bool(data.get("sent", True)),
        )


Keyset = tuple[datetime, str]
"""A position in a change stream: (modified_at, record id), compared as a tuple."""

CursorPhase = Literal["scanning", "overlap", "settled"]
"""Where a change cursor stands (see :class:`ChangeCursor`)."""


@dataclass(frozen=True, slots=True)
class ChangeCursor:
    """How far the sync has read one side's changes of one object.

    ``newest`` is the greatest (modified_at, id) ever read.  ``phase``:

    * ``scanning``: a read was capped by ``max_records_per_cycle``; the next one continues
      strictly after ``position``, the last record it took (a keyset, so a capped read always
      moves on, however many records share one timestamp).  ``found_newer`` says whether this
      scan has met anything beyond the ``newest`` it started from.
    * ``overlap``: a scan reached the end of the stream having found new changes; the next read
      goes over the ``overlap_seconds`` behind ``newest`` again (late commits, clock skew).
    * ``settled``: the last scan found nothing new; the next read starts at ``newest``'s
      instant, so an idle cycle re-reads only the records of that instant.
    """

    newest: Keyset
    phase: CursorPhase
    position: Keyset | None = None
    found_newer: bool = False
    seen_through: datetime | None = None
    """In the ``overlap`` phase: the read that set it saw every change up to this instant, so
    the re-read starts here rather than ``overlap_seconds`` behind ``newest`` (never earlier
    than that, never later than ``newest``; see :mod:`crm_bridge.sync.cursor`)."""


DeadLetterStatus = Literal["open", "replayed", "dismissed"]
RunStatus = Literal["running", "ok", "failed", "aborted"]


@dataclass(frozen=True, slots=True)
class Link:
    """The pairing of one CRM record with one marketing-platform record.

    ``crm_id`` or ``map_id`` is ``None`` while the create on that side is still pending (never
    both; that side's state is then ``creating``).  ``*_version`` is the opaque change token last
    seen on that side (e.g. SystemModstamp or HubSpot's ``updatedAt``), ``None`` when not known.
    ``synced`` holds, per side, the mapped field values that side was last known to hold (``{}``
    if never recorded): the baseline that tells which side changed a field, and what echo
    suppression compares a read with.  ``*_state`` and ``*_pending`` say whether that baseline is
    confirmed (see :data:`SideState`).
    """

    id: int
    pair: str
    obj: str
    crm_id: str | None
    map_id: str | None
    crm_version: str | None
    map_version: str | None
    synced: Mapping[str, Any]
    status: LinkStatus
    merged_into: int | None
    created_at: datetime
    updated_at: datetime
    identity: str | None = None
    """The normalised identity (e.g. e-mail) the link was matched on, for duplicate checks."""
    crm_state: SideState = "synced"
    map_state: SideState = "synced"
    crm_pending: PendingWrite | None = None
    map_pending: PendingWrite | None = None

    @property
    def active(self) -> bool:
        """Whether the link still pairs two live records (lookups may return tombstones)."""
        return self.status == "active"

    def id_on(self, side: Side) -> str | None:
        """The record id on ``side``."""
        return self.crm_id if side == "crm" else self.map_id

    def version_on(self, side: Side) -> str | None:
        """The last seen version token on ``side``."""
        return self.crm_version if side == "crm" else self.map_version

    def state_on(self, side: Side) -> SideState:
        """What the link knows of ``side``'s record."""
        return self.crm_state if side == "crm" else self.map_state

    def pending_on(self, side: Side) -> PendingWrite | None:
        """The write to ``side`` whose outcome is unknown, if any."""
        return self.crm_pending if side == "crm" else self.map_pending


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record change that the target side rejected, parked for retry or a human.

    ``side`` is the side that *rejected* the write; ``record_key`` is the id of the *source*
    record, so a replay can re-read it.  ``attempts`` counts how many times the same open item
    failed; ``next_retry_at`` of ``None`` means "no automatic retry" (manual replay only).
    """

    id: int
    pair: str
    side: Side
    obj: str
    record_key: str
    operation: str
    payload: Mapping[str, Any]
    reason: str
    error_code: str | None
    attempts: int
    first_seen: datetime
    last_seen: datetime
    status: DeadLetterStatus
    next_retry_at: datetime | None
    resolved_at: datetime | None
    """When the item was closed (replayed/dismissed); ``None`` while open."""


@dataclass(frozen=True, slots=True)
class Run:
    """One sync run of a pair: when, how it ended, what it did and which API calls it spent."""

    id: int
    pair: str
    started_at: datetime
    finished_at: datetime | None
    status: RunStatus
    counts: Mapping[str, int]
    calls: Mapping[str, int]
    error: str | None


@dataclass(frozen=True, slots=True)
class DecisionIn:
    """A conflict decision to record: both values, both modification times, the rule, the winner.

    ``crm_value`` / ``map_value`` may be any JSON-serialisable value.  ``run_id`` and ``link_id``
    are optional so decisions made outside a run (e.g. a replay) can still be logged.
    """

    pair: str
    obj: str
    field: str
    crm_value: Any
    map_value: Any
    rule: str
    winner: str
    at: datetime
    run_id: int | None = None
    link_id: int | None = None
    crm_modified_at: datetime | None = None
    map_modified_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """A recorded conflict decision (see :class:`DecisionIn`), with its row id."""

    id: int
    run_id: int | None
    pair: str
    obj: str
    link_id: int | None
    field: str
    crm_value: Any
    map_value: Any
    crm_modified_at: datetime | None
    map_modified_at: datetime | None
    rule: str
    winner: str
    at: datetime


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An append-only audit record, e.g. ``kind="sla.reminder"``, ``subject=<lead id>``."""

    id: int
    at: datetime
    kind: str
    subject: str
    pair: str | None
    data: Mapping[str, Any]
