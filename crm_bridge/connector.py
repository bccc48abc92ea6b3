"""Everything a connector author implements, in one module.

A *connector* gives crm-bridge a uniform view of one vendor system (Salesforce, HubSpot, ...).
The engine never learns vendor field names or endpoints; it only calls these methods.

Required (abstract) -- five things:

* ``Settings``: a pydantic model of the connector's configuration; secret fields are ``SecretStr``
  and are refused when written in plain text in the TOML.
* ``objects()``: the objects it serves, as :class:`ObjectSpec` declarations.
* ``check()``: one cheap authenticated call; raises :class:`~crm_bridge.errors.AuthError` or
  returns a short description of who we are logged in as.
* ``changes(obj, since)``: a *stream* of :class:`Record` changed at or after ``since``, page by
  page, oldest first; deletes and merges come in the same stream (``deleted`` / ``merged_into``).
* ``fetch(obj, ids)``: records by id, in batches the API allows.
* ``write(obj, ops)``: a batch of :class:`Upsert` / :class:`Delete`; returns exactly one
  :class:`WriteResult` per input, **in input order**, so a rejected record never hides the others.

Optional, announced through :attr:`Connector.capabilities` so the engine branches on what a
connector can do rather than on its name: ``owners()`` (``Capability.OWNERS``), ``activities()``
(``Capability.ACTIVITIES``), ``create_task()`` and its batched form ``create_tasks()``
(``Capability.TASKS``; the batch has a default built on ``create_task``, override it when the API
takes many tasks per call), ``related()``, picklist administration, validation rules and static
lists.  Declaring one without overriding its methods is refused when the connector is loaded
(:func:`unimplemented_capabilities`); whether the required methods keep the contract (ordering,
inclusive ``since``, paging, partial failures, ...) is what the conformance kit in
:mod:`crm_bridge.testing` checks against the vendor.

Glossary: a *version token* is whatever the vendor uses to tell one version of a record from the
next (``SystemModstamp``, ``updatedAt``); the engine stores it to skip changes it already applied.
The worked example is :mod:`crm_bridge.connectors.example_memory`.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar, Generic, Literal, NotRequired, TypedDict, TypeVar

from pydantic import BaseModel, ConfigDict

from crm_bridge.errors import CrmBridgeError, RecordRejectedError

__all__ = [
    "ALREADY_GONE_CODES",
    "CAPABILITY_METHODS",
    "MOVED_ON_CODES",
    "Activity",
    "Capability",
    "ChangeFeed",
    "ChangeHint",
    "Connector",
    "ConnectorSettings",
    "Conversion",
    "Delete",
    "FeedBatch",
    "FieldChange",
    "FieldDefinition",
    "HintKind",
    "NewTask",
    "ObjectSpec",
    "Ordering",
    "Owner",
    "PicklistValue",
    "Record",
    "Upsert",
    "VersionCache",
    "WriteOp",
    "WriteResult",
    "describe_capabilities",
    "unimplemented_capabilities",
]


class Capability(enum.StrEnum):
    """What a connector can do beyond the required methods.

    Two kinds.  Some announce an optional *method* (``OWNERS`` -> ``owners()``; the table is
    :data:`CAPABILITY_METHODS`): the registry refuses a connector that declares one without
    overriding its methods.  The others describe how the *required* methods behave
    (``INCREMENTAL``, ``BATCH_UPSERT``, ``UPSERT_BY_IDENTITY``, ``HARD_DELETE``, ``ARCHIVE``,
    ``MERGE_FEED``): no signature can show those, so the conformance kit
    (:mod:`crm_bridge.testing`, docs/connectors/conformance-kit.md) runs each declared one against
    the vendor (or its emulator) and fails a claim the connector does not keep.
    """

    INCREMENTAL = "incremental"
    """``changes(since=...)`` filters server-side, so an idle cycle reads one page, not the table.

    Without it ``changes`` may ignore ``since`` (the engine skips what it took already); the kit
    checks that a record modified well before ``since`` is left out."""
    BATCH_UPSERT = "batch_upsert"
    """``write`` sends many records per call: ``ObjectSpec.max_batch`` is above 1 and a full batch
    costs fewer calls than one call per record.

    The engine sizes its batches by ``max_batch`` alone; this flag is the claim that doing so saves
    calls, and the kit checks both halves (without the flag, ``max_batch`` must be 1)."""
    UPSERT_BY_IDENTITY = "upsert_by_identity"
    """An :class:`Upsert` with ``match_on`` set to one of ``ObjectSpec.identity_fields`` (e.g.
    email, matched case-insensitively) finds-or-creates in one write, so re-running a create never
    duplicates the record (the kit writes the same upsert twice and counts one record)."""
    HARD_DELETE = "hard_delete"
    """:class:`Delete` with ``mode="hard"`` is supported (without it such a delete is a failed
    :class:`WriteResult`, and the engine archives instead)."""
    ARCHIVE = "archive"
    """:class:`Delete` with ``mode="archive"`` (soft delete, recoverable) is supported and the
    archived record comes back from ``changes`` as ``deleted=True``; without it such a delete is a
    failed :class:`WriteResult`."""
    MERGE_FEED = "merge_feed"
    """``changes`` reports merges: the loser with ``Record.merged_into`` and/or the survivor with
    ``Record.merged_from`` (the planner re-keys links from either)."""
    OWNERS = "owners"
    """``owners()`` lists the users records can be assigned to."""
    PICKLIST_ADMIN = "picklist_admin"
    """The connector can install and update picklist / enumeration fields
    (``field_definition()`` / ``ensure_field()``)."""
    ACTIVITIES = "activities"
    """``activities()`` reads calls, emails and meetings logged against records (SLA first touch)."""
    TASKS = "tasks"
    """``create_task()`` / ``create_tasks()`` put to-dos in front of records' owners (SLA reminders,
    reason nags)."""
    RELATIONS = "relations"
    """``related()`` follows links between objects, e.g. deal -> contacts (contact roles)."""
    LISTS = "lists"
    """``ensure_list()`` / ``add_to_list()`` / ``remove_from_list()`` / ``list_members()`` manage
    static lists."""
    VALIDATION_RULES = "validation_rules"
    """``ensure_validation_rule()`` installs a rule the vendor enforces on every write."""
    CHANGE_FEED = "change_feed"
    """``change_feed()`` opens the vendor's push channel (HubSpot's webhooks journal, Salesforce
    Change Data Capture): :class:`ChangeHint` s that wake the engine early.  Hints are never the
    truth -- the engine reads hinted records by id and a slow safety poll still runs."""


CAPABILITY_METHODS: Mapping[Capability, tuple[str, ...]] = MappingProxyType(
    {
        Capability.OWNERS: ("owners",),
        Capability.ACTIVITIES: ("activities",),
        # create_tasks has a default built on create_task, so create_task is what must exist.
        Capability.TASKS: ("create_task",),
        Capability.RELATIONS: ("related",),
        Capability.PICKLIST_ADMIN: ("field_definition", "ensure_field"),
        Capability.VALIDATION_RULES: ("ensure_validation_rule",),
        Capability.LISTS: ("ensure_list", "add_to_list", "remove_from_list", "list_members"),
        Capability.CHANGE_FEED: ("change_feed",),
    }
)
"""The optional methods each capability promises.  The base class's versions raise
``NotImplementedError``, so declaring the capability without overriding them would only fail
when the engine first calls one -- mid-cycle, on a customer's data.  Capabilities not listed
describe the required methods' behaviour instead (see :class:`Capability`)."""


class Ordering(enum.Enum):
    """How ``changes`` orders its stream; the engine only trusts a cursor when it is ascending."""

    ASCENDING = "ascending"
    UNSORTED = "unsorted"


@dataclass(frozen=True, slots=True)
class ObjectSpec:
    """One object a connector serves, declared rather than coded.

    ``name`` is the connector's own name for it (``"Lead"``, ``"contacts"``).
    ``identity_fields`` are the fields that identify the same person or deal on the other side
    (matched case-insensitively); with ``Capability.UPSERT_BY_IDENTITY`` an :class:`Upsert`
    may ``match_on`` any of them.  ``ordering`` says whether :meth:`Connector.changes` is
    ascending by ``modified_at`` (the engine stops reading an ascending stream early, so a wrong
    claim loses changes).  ``max_batch`` is the largest write batch the API takes; the engine
    never sends more in one :meth:`Connector.write`.  ``max_concurrent_writes`` is how many such
    batches the engine may have in flight at once -- leave it at 1 unless :meth:`Connector.write`
    is safe to call from several threads (the vendor's rate limits still apply: the connector's
    limiter paces every thread).  The conformance kit checks ``ordering``, ``max_batch`` and
    ``identity_fields`` against the vendor.

    Deprecated, read by nothing and kept only so existing ``ObjectSpec(...)`` calls keep working
    (they will be removed): ``primary_key``, ``cursor_field`` and ``version_field`` named the
    vendor fields behind :attr:`Record.id`, :attr:`Record.modified_at` and
    :attr:`Record.version` -- but a connector fills those attributes itself, so the engine never
    needs the vendor's field names, and a declaration nothing reads drifts unnoticed; ``label``
    was a display name nothing displays.  Leave them out of new code.
    """

    name: str
    primary_key: str = ""
    cursor_field: str = ""
    version_field: str = ""
    identity_fields: tuple[str, ...] = ()
    ordering: Ordering = Ordering.ASCENDING
    max_batch: int = 1
    label: str = ""
    max_concurrent_writes: int = 1


@dataclass(frozen=True, slots=True)
class Conversion:
    """A lead's conversion (Salesforce ``convertLead``): a person event the funnel counts.

    Reported on the converted lead (a merge loser into the contact it became), so the engine
    can record when the person became a contact, under which account and with which deal.
    """

    at: datetime
    account_id: str | None = None
    opportunity_id: str | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """One record as read from a side.

    ``fields`` holds vendor field names and plain Python values (str, int, float, bool, None,
    ISO strings for dates).  A deleted record carries ``deleted=True``; a merge loser carries
    ``merged_into`` (the surviving id); a merge survivor may list absorbed ids in ``merged_from``.
    ``modified_by`` is the vendor's user id of the last writer: a record the connector itself wrote
    carries :attr:`Connector.integration_user_id`, a person's edit carries theirs.  The engine
    does not rely on it -- it recognises echoes of its own writes by comparing values with what
    both sides last agreed on (:mod:`crm_bridge.sync.planner`), which also works for vendors that
    stamp no author -- but operators, connector-side filters (Salesforce's
    ``exclude_own_changes``) and the conformance kit do.

    ``absent`` names vendor fields this record's kind does not have, for objects that stream
    several kinds as one (Salesforce's person: a Contact has no ``Company`` or ``Status``): their
    values are unknown, not empty, so the engine neither takes them for a person clearing the
    field nor writes them there.
    """

    object: str
    id: str
    version: str
    modified_at: datetime
    fields: Mapping[str, Any]
    deleted: bool = False
    merged_into: str | None = None
    merged_from: tuple[str, ...] = ()
    modified_by: str | None = None
    absent: frozenset[str] = frozenset()
    conversion: Conversion | None = None


@dataclass(frozen=True, slots=True)
class Upsert:
    """Create or update one record.

    ``key`` is the caller's reference (echoed back in the result).  With ``id`` set it is an
    update of that record; with ``match_on`` set (and ``Capability.UPSERT_BY_IDENTITY``) the
    connector finds-or-creates by that field's value in ``fields``; otherwise it creates.
    There is no conditional write: neither Salesforce Collections nor HubSpot batch updates
    offer one, and a check-then-write costs a read per batch while still racing.  A person's
    edit that lands between the engine's read and its write is kept by the next cycle, which
    compares what it reads with the write's recorded prior values.
    """

    key: str
    fields: Mapping[str, Any]
    id: str | None = None
    match_on: str | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete one record; ``mode`` must be allowed by the connector's capabilities."""

    key: str
    id: str
    mode: Literal["hard", "archive"] = "archive"


WriteOp = Upsert | Delete

ALREADY_GONE_CODES: frozenset[str] = frozenset(
    {"ENTITY_IS_DELETED", "OBJECT_NOT_FOUND", "NOT_FOUND"}
)
"""Error codes meaning "that record is already deleted": the engine counts a :class:`Delete`
failing with one of them as done, so a re-run after a crash is idempotent.  Report an
already-deleted target with one of these codes."""

MOVED_ON_CODES: frozenset[str] = frozenset({"CANNOT_UPDATE_CONVERTED_LEAD", "MERGED_AWAY"})
"""Error codes meaning "that record became another one" (a converted lead, a merge loser): an
update refused so is no dead letter -- the change stream reports the move (``merged_into``), the
engine re-keys the link and writes the change to the record that carries the person on."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The outcome for one input of :meth:`Connector.write`, returned in input order.

    On success ``id`` and ``version`` describe the record as written (``version`` may be
    ``None`` when the API does not return it; the engine then reads it back lazily).
    On failure ``error`` is the vendor's message and ``error_code`` its code; ``retryable`` says
    whether the same write may succeed later unchanged (e.g. ``UNABLE_TO_LOCK_ROW``).
    """

    key: str
    ok: bool
    id: str | None = None
    version: str | None = None
    created: bool = False
    error: str | None = None
    error_code: str | None = None
    retryable: bool = False

    @classmethod
    def success(
        cls, key: str, id: str, *, version: str | None = None, created: bool = False
    ) -> WriteResult:
        """A successful write."""
        return cls(key=key, ok=True, id=id, version=version, created=created)

    @classmethod
    def failure(
        cls, key: str, error: str, *, code: str | None = None, retryable: bool = False
    ) -> WriteResult:
        """A refused write, with the vendor's reason."""
        return cls(key=key, ok=False, error=error, error_code=code, retryable=retryable)


@dataclass(frozen=True, slots=True)
class Owner:
    """A user records can be assigned to; matched across sides by e-mail."""

    id: str
    email: str
    name: str = ""
    active: bool = True


@dataclass(frozen=True, slots=True)
class Activity:
    """A logged touch on a record: what kind, when, and by whom (``owner_id``)."""

    id: str
    record_id: str
    kind: Literal["call", "email", "meeting", "task", "note", "other"]
    occurred_at: datetime
    owner_id: str | None = None
    subject: str = ""


class NewTask(TypedDict):
    """One task for :meth:`Connector.create_tasks`: the arguments of :meth:`Connector.create_task`.

    A plain mapping rather than a dataclass so callers build a batch from literals and connectors
    read it with ``task["subject"]`` / ``task.get("due")``; ``body`` and ``due`` may be left out.
    """

    record_id: str
    owner_id: str | None
    subject: str
    body: NotRequired[str]
    due: NotRequired[datetime | None]


@dataclass(frozen=True, slots=True)
class PicklistValue:
    """One allowed value of a picklist / enumeration field; inactive values stay on old records."""

    value: str
    label: str
    active: bool = True


@dataclass(frozen=True, slots=True)
class FieldDefinition:
    """A custom field crm-bridge installs (reason-code picklists and their note fields)."""

    object: str
    name: str
    label: str
    kind: Literal["picklist", "text"]
    values: tuple[PicklistValue, ...] = ()
    restricted: bool = True
    description: str = ""


FieldChange = Literal["created", "updated", "unchanged"]


HintKind = Literal["upsert", "delete", "merge", "gap"]


@dataclass(frozen=True, slots=True)
class ChangeHint:
    """A push channel's word that one record changed: a reason to read it soon, never its data.

    Why only a hint: push channels drop, repeat and reorder events and forget them after a few
    days, while the poll (``changes``) is complete and ordered.  So the engine treats a hint as
    "read this id now" and keeps its cursors for the truth.  ``kind`` is what the vendor says
    happened (``"gap"``: the vendor lost the details and only names the record, a Salesforce gap
    event).  ``ours`` is set when the vendor names our own integration as the writer (HubSpot's
    ``changeSource``/``sourceId``, Salesforce's ``changeOrigin`` client id): the engine skips
    such a hint without reading the record back.  ``event_id`` lets a reader drop duplicates.
    """

    object: str
    record_id: str
    occurred_at: datetime
    kind: HintKind = "upsert"
    ours: bool = False
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class FeedBatch:
    """What one :meth:`ChangeFeed.poll` brought.

    ``position`` is the opaque point to resume after these hints (a journal offset, a replay id);
    the engine stores it only once the hinted records are handled, so a crash re-reads them.
    ``lost`` says the feed could not continue from the position it was given (the offset or
    replay id expired, the vendor overflowed): events may be missing, and the engine runs a full
    poll cycle at once instead of trusting the feed.
    """

    hints: tuple[ChangeHint, ...] = ()
    position: str | None = None
    lost: bool = False


class ChangeFeed(ABC):
    """One open push channel of a connector, read as batches of hints.

    Opened by :meth:`Connector.change_feed` for some objects; ``poll`` waits at most ``timeout``
    seconds for events after ``position`` (``None``: start from now) and returns them oldest
    first.  A feed never raises for a position it cannot resume -- it answers ``lost=True`` with
    a fresh position, so the engine falls back to polling and carries on.
    """

    @abstractmethod
    def poll(self, position: str | None, *, timeout: float) -> FeedBatch:
        """Hints after ``position``, waiting up to ``timeout`` seconds for the first."""

    def close(self) -> None:
        """Release the channel (a stream, a connection); the default has nothing to release."""
        return None


class ConnectorSettings(BaseModel):
    """Base for connector settings: frozen, unknown keys refused (typos surface at once)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


SettingsT = TypeVar("SettingsT", bound=ConnectorSettings)
T = TypeVar("T")


class Connector(ABC, Generic[SettingsT]):
    """The contract between the engine and one vendor system.

    Subclasses set ``Settings`` and ``capabilities`` as class attributes and implement the
    abstract methods.  They count every HTTP call they make in :attr:`calls` (by endpoint family),
    which is how ``crm-bridge status`` and ``bench/`` report API usage.
    """

    Settings: ClassVar[type[ConnectorSettings]]
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    description: ClassVar[str] = ""

    def __init__(self, settings: SettingsT, *, name: str) -> None:
        self.settings = settings
        self.name = name
        self.calls: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    @abstractmethod
    def objects(self) -> Sequence[ObjectSpec]:
        """The objects this connector serves."""

    @abstractmethod
    def check(self) -> str:
        """Make one cheap authenticated call; return who we are (e.g. a user name or portal id)."""

    @abstractmethod
    def changes(self, obj: str, since: datetime | None) -> Iterator[Record]:
        """Stream records of ``obj`` changed at or after ``since`` (all when ``None``), oldest first.

        Must be a generator that fetches page by page, so a million changes never sit in memory.
        Deleted records and merge losers are included while the vendor still reports them.
        """

    @abstractmethod
    def fetch(self, obj: str, ids: Iterable[str]) -> Iterator[Record]:
        """Read records by id; unknown ids are skipped, not errors."""

    @abstractmethod
    def write(self, obj: str, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """Apply ``ops`` (at most ``ObjectSpec.max_batch`` of them); one result per op, in order.

        A record the vendor rejects is a failed :class:`WriteResult`, never an exception; raise
        only for what affects the whole batch (auth, rate limit exhausted, transport failure).
        """

    def owners(self) -> Iterator[Owner]:
        """List assignable users (requires ``Capability.OWNERS``)."""
        raise self._lacks(Capability.OWNERS)

    # -- optional capabilities used by the SLA and reason-code features --------------------------
    def activities(
        self, obj: str, record_ids: Sequence[str], since: datetime | None
    ) -> Iterator[Activity]:
        """Touches logged against ``record_ids`` at or after ``since`` (``Capability.ACTIVITIES``)."""
        raise self._lacks(Capability.ACTIVITIES)

    def create_task(
        self,
        obj: str,
        record_id: str,
        *,
        owner_id: str | None,
        subject: str,
        body: str = "",
        due: datetime | None = None,
    ) -> str:
        """Create a task for the record's owner; returns its id (``Capability.TASKS``).

        Raise :class:`~crm_bridge.errors.RecordRejectedError` when the vendor refuses this one
        task (bad owner, record gone), so :meth:`create_tasks` can tell it from a failed call.
        """
        raise self._lacks(Capability.TASKS)

    def create_tasks(self, obj: str, tasks: Sequence[NewTask]) -> list[str | None]:
        """Create many tasks; the new ids in input order, ``None`` where one was refused (TASKS).

        Why a batch: the SLA engine may remind hundreds of owners in one cycle, and one call per
        task spends the vendor's API allocation (and the cycle's time) on what most APIs take in
        one request: Salesforce 1,000 tasks per Composite call, HubSpot 100 per batch create.
        Override this when the API has such an endpoint; the cost is then one call per batch
        instead of one per task.

        The default calls :meth:`create_task` once per item, so a connector with only that still
        works.  A refused task (``RecordRejectedError``) is ``None`` and the rest go on.  Any other
        :class:`~crm_bridge.errors.CrmBridgeError` (auth, rate limit, transport) would fail every
        remaining task too: it is raised when nothing was created yet; otherwise the loop stops
        and the rest are ``None`` (the caller tries them again later), because raising would
        drop the ids already created and make the caller create those tasks twice.
        """
        ids: list[str | None] = []
        for task in tasks:
            try:
                ids.append(
                    self.create_task(
                        obj,
                        task["record_id"],
                        owner_id=task["owner_id"],
                        subject=task["subject"],
                        body=task.get("body", ""),
                        due=task.get("due"),
                    )
                )
            except RecordRejectedError:
                ids.append(None)
            except CrmBridgeError:
                if not any(ids):
                    raise
                break
        return ids + [None] * (len(tasks) - len(ids))

    def related(self, obj: str, ids: Sequence[str], to_obj: str) -> dict[str, list[str]]:
        """For each id of ``obj``, the ids of ``to_obj`` linked to it (``Capability.RELATIONS``)."""
        raise self._lacks(Capability.RELATIONS)

    def field_definition(self, obj: str, name: str) -> FieldDefinition | None:
        """The installed definition of a custom field, or None (``Capability.PICKLIST_ADMIN``)."""
        raise self._lacks(Capability.PICKLIST_ADMIN)

    def ensure_field(self, definition: FieldDefinition) -> FieldChange:
        """Create or update a field so it matches ``definition``; idempotent (PICKLIST_ADMIN).

        Values missing from ``definition`` are deactivated, never deleted, so historic records
        keep them.
        """
        raise self._lacks(Capability.PICKLIST_ADMIN)

    def ensure_validation_rule(
        self, obj: str, name: str, formula: str, message: str
    ) -> FieldChange:
        """Install or update a vendor-enforced validation rule (``Capability.VALIDATION_RULES``)."""
        raise self._lacks(Capability.VALIDATION_RULES)

    def ensure_list(self, name: str, obj: str) -> str:
        """The id of the static list called ``name`` of ``obj`` records, created if needed (LISTS)."""
        raise self._lacks(Capability.LISTS)

    def add_to_list(self, list_id: str, ids: Sequence[str]) -> None:
        """Add records to a static list (``Capability.LISTS``); members already in it are fine."""
        raise self._lacks(Capability.LISTS)

    def remove_from_list(self, list_id: str, ids: Sequence[str]) -> None:
        """Remove records from a static list (``Capability.LISTS``)."""
        raise self._lacks(Capability.LISTS)

    def list_members(self, list_id: str) -> Iterator[str]:
        """Ids of a static list's members (``Capability.LISTS``)."""
        raise self._lacks(Capability.LISTS)

    def change_feed(self, objects: Sequence[str]) -> ChangeFeed:
        """Open the push channel for ``objects`` (``Capability.CHANGE_FEED``)."""
        raise self._lacks(Capability.CHANGE_FEED)

    @property
    def integration_user_id(self) -> str | None:
        """The :attr:`Record.modified_by` the vendor stamps on this connector's own writes.

        ``None`` (the default) means the vendor stamps no user on them -- HubSpot private apps
        leave ``hs_updated_by_user_id`` empty -- so a record whose ``modified_by`` is ``None`` was
        last written by us.  Override it when the vendor names the integration user (Salesforce's
        ``LastModifiedById``).  Why it is part of the contract: telling our writes from a
        person's is what a connector-side "skip our own changes" filter and an operator reading
        a record's history need, and the conformance kit checks own writes carry this value
        while a person's edit does not.
        """
        return None

    def _lacks(self, capability: Capability) -> NotImplementedError:
        if capability in self.capabilities:  # declared, yet this method was never overridden
            return NotImplementedError(
                f"{type(self).__name__} declares Capability.{capability.name} but does not "
                "implement this method"
            )
        return NotImplementedError(
            f"{type(self).__name__} does not declare Capability.{capability.name}"
        )

    def object_spec(self, obj: str) -> ObjectSpec:
        """The declaration of ``obj``; raises ``KeyError`` naming the served objects."""
        for spec in self.objects():
            if spec.name == obj:
                return spec
        served = ", ".join(s.name for s in self.objects())
        raise KeyError(f"{self.name}: no object {obj!r}; served: {served}")

    def close(self) -> None:
        """Release connections; the default has nothing to release."""

    def __enter__(self) -> Connector[SettingsT]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VersionCache(Generic[T]):
    """What a connector read *about* a record (its associations, its roles), per record version.

    For data a record's own read does not carry and costs a call of its own: read again at
    the same version, the record gets the value cached -- sound only where any change to that
    data moves the version, or is otherwise detected (say so where it is used).  Bounded: the
    oldest entries go past ``size``.
    """

    def __init__(self, size: int = 50_000) -> None:
        self.size = size
        self._entries: dict[tuple[str, str], tuple[str, T]] = {}

    def get(self, record: Record) -> T | None:
        """The value stored for ``record``'s very version, if any."""
        entry = self._entries.get((record.object, record.id))
        return entry[1] if entry is not None and entry[0] == record.version else None

    def put(self, record: Record, value: T) -> None:
        """Remember ``value`` as read for ``record`` at its version."""
        key = (record.object, record.id)
        self._entries.pop(key, None)
        self._entries[key] = (record.version, value)
        while len(self._entries) > self.size:
            del self._entries[next(iter(self._entries))]


def unimplemented_capabilities(cls: type[Connector[Any]]) -> dict[Capability, tuple[str, ...]]:
    """Declared capabilities whose methods ``cls`` leaves to the base class, with those methods.

    Empty when every declared capability is backed by an override.  A method counts as missing
    when the class resolves it to :class:`Connector`'s own function (the ``_lacks`` raiser), also
    when a subclass assigns it back (``owners = Connector.owners``).
    """
    missing: dict[Capability, tuple[str, ...]] = {}
    for capability in sorted(cls.capabilities, key=lambda c: c.value):
        methods = tuple(
            method
            for method in CAPABILITY_METHODS.get(capability, ())
            if getattr(cls, method, None) is getattr(Connector, method)
        )
        if methods:
            missing[capability] = methods
    return missing


def describe_capabilities(capabilities: Iterable[Capability]) -> str:
    """Capabilities as a stable, comma-separated string for the CLI."""
    return ", ".join(sorted(c.value for c in capabilities))
