"""The typed actions the planner emits and the executor carries out.

Actions are plain frozen data: the planner never calls a connector or the store, so every
decision it makes can be tested, printed by ``crm-bridge sync --plan``, and replayed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from crm_bridge.connector import Conversion
from crm_bridge.store import DecisionIn, PendingWrite, Side

__all__ = [
    "SIDES",
    "Action",
    "Adopt",
    "Converted",
    "Create",
    "FlagDeleted",
    "Forget",
    "LinkRefresh",
    "MarkMerged",
    "Pairing",
    "Plan",
    "Reject",
    "Rekey",
    "Remove",
    "Update",
    "other",
]


SIDES: tuple[Side, Side] = ("crm", "map")


def other(side: Side) -> Side:
    """The opposite side."""
    return "map" if side == "crm" else "crm"


@dataclass(frozen=True, slots=True)
class Create:
    """Create a record on ``target`` for the unlinked ``source_id``; link them on success.

    ``match_on`` (a vendor field on ``target``) makes the create an upsert by identity, which is
    what keeps a re-run after a crash from creating a duplicate.  Before the create is sent the
    executor records a *pending* link (``source_id`` and no target id); ``link_id`` names that
    link when the create is re-sent for one a crash left behind.
    """

    target: Side
    source_id: str
    source_version: str | None
    fields: Mapping[str, Any]
    synced: Mapping[str, Mapping[str, Any]]
    match_on: str | None = None
    identity: str | None = None
    link_id: int | None = None
    written: frozenset[str] = frozenset()
    waiting: str | None = None
    """Why part of this write waits (members of a set not linked yet): after it lands the
    source record is dead-lettered ``REFERENCE_NOT_LINKED`` and replayed to send the rest."""
    """The logical fields the create carries: what finds the record again after a crash."""
    deferred: bool = False
    """The target side was not read to the end this cycle, so its unread part may hold this
    person's record -- deleted, say, which the create would bring back.  The pending link is
    recorded but nothing is sent; the cycle that reads the target to its end decides (see the
    planner's pending creates)."""


@dataclass(frozen=True, slots=True)
class Update:
    """Write changed fields to the linked record ``target_id`` on ``target``."""

    target: Side
    target_id: str
    source_id: str
    source_version: str | None
    fields: Mapping[str, Any]
    synced: Mapping[str, Mapping[str, Any]]
    """New baselines: the target's (after the write) and, when confirmed, the source's."""
    link_id: int | None = None
    identity: str | None = None
    written: PendingWrite = field(default_factory=lambda: PendingWrite(frozenset(), {}))
    """The logical fields this write carries and what the target held in them before."""
    waiting: str | None = None
    """As :attr:`Create.waiting`: members of a set left out until they link."""
    still_pending: PendingWrite | None = None
    """An earlier unconfirmed write to the target that this one does not cover (the target was
    not read this cycle): the target stays ``written`` with it after this write lands."""
    outflow: frozenset[str] = frozenset()
    """The target's own changes flowing to the source in the source's write: their baseline
    on the target stays as stored until that write lands (it advances them, see
    ``source_holds``), so a crash in between cannot absorb them."""
    rewrite: bool = False
    """The target is already ``written`` (an earlier write's outcome is unknown): this write's
    intent replaces it in the store *before* it is sent, so if it fails too the next read is
    compared with what this write meant, not with a plan two cycles old."""
    source_holds: Mapping[str, Any] = field(default_factory=dict)
    """When the source gets a write of its own (``synced`` then has no source baseline): the
    fields of this write the source holds as read.  Once this write lands they are in step, so
    they join the source's baseline -- otherwise a person's later edit of one of them back to
    the old baseline value would look like no change at all."""
    settled: Mapping[Side, PendingWrite] = field(default_factory=dict)
    """Sides whose unconfirmed write this cycle's read settled in part: the fields still to
    redo.  Stored before any batch is sent, so a failed batch leaves no stale prior behind (a
    person setting a settled field back to that prior would look like our write not landing)."""


@dataclass(frozen=True, slots=True)
class Pairing:
    """Link two unlinked records found to be the same (matched by identity) before any write.

    ``pending`` names the sides that get a write right after: they are stored as ``written``
    (outcome unknown) until that write is acknowledged or read back.
    """

    crm_id: str
    map_id: str
    crm_version: str | None
    map_version: str | None
    synced: Mapping[Side, Mapping[str, Any]]
    identity: str | None = None
    pending: Mapping[Side, PendingWrite] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LinkRefresh:
    """Nothing to write (an echo, or both sides already agree): remember what was read.

    ``confirmed`` holds the sides read this cycle with the version read: their baselines are
    now confirmed.  A side not read keeps its state.
    """

    link_id: int
    confirmed: Mapping[Side, str | None]
    synced: Mapping[Side, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Remove:
    """Delete (or archive) the counterpart of a record deleted (or merged away) on the other side.

    On success the link ``link_id`` closes: as ``deleted``, or as ``merge`` says when the source
    was a merge loser.  ``unlinked`` is set when no link held the two records yet (a delete
    made before the first cycle that could pair them): the executor links them just before
    sending the removal, so a crash in between leaves a link whose deleted side the next cycle
    follows like any other delete.  ``pending``: ``link_id`` is a pending create of a merged
    person whose create landed (this removal's target): it is forgotten once the removal lands.
    """

    target: Side
    target_id: str
    link_id: int | None
    mode: Literal["hard", "archive"]
    source_id: str
    merge: MarkMerged | None = None
    unlinked: Tombstone | None = None
    pending: bool = False


@dataclass(frozen=True, slots=True)
class FlagDeleted:
    """Delete policy ``flag``: keep the counterpart, close the link and record why."""

    link_id: int
    deleted_side: Side
    deleted_id: str


@dataclass(frozen=True, slots=True)
class Tombstone:
    """One person's records that were never linked, one of them deleted: record the pair closed.

    Without it the live record would be taken for a new person and re-created on the side
    that just deleted it (a delete made before the first cycle that could pair them completed).
    Planned on its own under the ``flag`` delete policy; otherwise it rides on the
    :class:`Remove` of the live record (``Remove.unlinked``).
    """

    crm_id: str | None
    map_id: str | None
    """``None`` on the live side when that record was not in the same read: the deleted one is
    remembered alone (a half link) until the live one is read."""
    identity: str | None
    deleted_side: Side


@dataclass(frozen=True, slots=True)
class Rekey:
    """A merge whose survivor was not linked yet: the loser's link now points at the survivor."""

    link_id: int
    side: Side
    new_id: str
    old_id: str


@dataclass(frozen=True, slots=True)
class MarkMerged:
    """A merge whose loser was linked: the loser's link closes into the survivor's link.

    ``into_link_id`` is ``None`` when the survivor has no link yet but is matched elsewhere (its
    identity belongs to another pair): the loser's link then simply closes.
    """

    link_id: int
    into_link_id: int | None
    side: Side
    loser_id: str
    survivor_id: str


@dataclass(frozen=True, slots=True)
class Converted:
    """A linked lead was converted (``Record.conversion``): recorded as a person event.

    Planned once, on the read that finds the link still on the lead (the merge path re-keys or
    closes it in the same plan), and audited as ``sync.person.converted`` for the funnel.
    """

    link_id: int
    side: Side
    lead_id: str
    into_id: str
    conversion: Conversion


@dataclass(frozen=True, slots=True)
class Adopt:
    """A pending link's create did land (the process died before recording it): fill in its id.

    ``synced`` is the new baseline for ``side``: the fields the create wrote, marked pending, so
    the first read confirms them and adopts whatever the vendor filled in.  ``owed``: fields the
    source changed after the create was sent -- the side is then recorded as written (baseline
    what it should hold, ``owed.prior`` what the create put there) and the write is redone.
    """

    link_id: int
    side: Side
    record_id: str
    synced: Mapping[str, Any]
    owed: PendingWrite | None = None


@dataclass(frozen=True, slots=True)
class Forget:
    """Drop a pending link whose source is gone before its create was confirmed or found."""

    link_id: int
    source_id: str


@dataclass(frozen=True, slots=True)
class Reject:
    """A change that cannot be written as it is: it goes to the dead-letter store."""

    target: Side
    source_id: str
    reason: str
    code: str
    payload: Mapping[str, Any] = field(default_factory=dict)


Action = (
    Create
    | Update
    | Pairing
    | LinkRefresh
    | Remove
    | FlagDeleted
    | Tombstone
    | Rekey
    | MarkMerged
    | Converted
    | Reject
    | Adopt
    | Forget
)


@dataclass
class Plan:
    """Everything one object of one pair needs this cycle, plus what the planner observed."""

    pair: str
    obj: str
    actions: list[Action] = field(default_factory=list)
    decisions: list[DecisionIn] = field(default_factory=list)
    echoes: int = 0
    already_applied: int = 0
    skipped: int = 0

    def count(self, kind: type[Any]) -> int:
        """How many actions of ``kind``."""
        return sum(1 for a in self.actions if isinstance(a, kind))

    def deletes(self) -> int:
        """Deletes the plan would propagate (for the delete-ratio guard)."""
        return self.count(Remove) + self.count(FlagDeleted)
