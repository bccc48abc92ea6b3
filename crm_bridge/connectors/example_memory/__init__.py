"""The worked example connector: a complete, in-memory implementation of the connector API.

Read this file top to bottom when writing a connector: settings, declared objects, the five
required methods and two optional capabilities -- owners, and tasks with their batched form
(``create_tasks``: one call per batch, ``None`` for a refused task) -- nothing else.  It is also
the fake the engine's tests use, so it models what real systems do that a sync engine must
survive:

* a *backend* (:class:`MemoryBackend`) that plays the remote system and that tests edit directly,
  as a human in the vendor's UI would (``human_edit``, ``delete``, ``merge``);
* version tokens and modification times that move on every write;
* deletes and merges reported in the change stream;
* per-record rejections (``reject_when``) that must land in the dead-letter store, not abort a batch;
* whole-call failures a person or the vendor causes: a rotated API token (``token``: every call
  answers :class:`~crm_bridge.errors.AuthError`) and throttling (``throttle``: every call answers
  :class:`~crm_bridge.errors.RateLimitedError`).

``tests/core/test_example_memory.py`` runs the conformance kit (:mod:`crm_bridge.testing`)
against it: the shortest complete example of a kit subclass and its backend driver.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field, SecretStr

from crm_bridge.connector import (
    Capability,
    Connector,
    ConnectorSettings,
    Delete,
    NewTask,
    ObjectSpec,
    Ordering,
    Owner,
    Record,
    Upsert,
    WriteOp,
    WriteResult,
)
from crm_bridge.errors import AuthError, RateLimitedError, RecordRejectedError

__all__ = ["MemoryBackend", "MemoryConnector", "MemorySettings", "TickingClock"]

INTEGRATION_USER = "integration"


class MemorySettings(ConnectorSettings):
    """Settings of the in-memory connector."""

    objects: list[str] = Field(
        default_factory=lambda: ["contacts", "deals"],
        description="Object names this instance serves.",
    )
    identity_field: str = Field("email", description="Field that identifies a person across sides.")
    max_batch: int = Field(100, ge=1, le=10_000, description="Largest write batch accepted.")
    page_size: int = Field(200, ge=1, description="Records per page of the change stream.")
    unsorted: bool = Field(
        False,
        description="Serve the change stream newest first and declare Ordering.UNSORTED, like "
        "an API that cannot sort by modification time.",
    )
    api_token: SecretStr | None = Field(
        None,
        description="Optional; when set, every call demands the backend's token (shows secrets).",
    )


class TickingClock:
    """A deterministic clock: every call is ``step`` later than the last (no wall time)."""

    def __init__(
        self, start: datetime = datetime(2026, 1, 1, tzinfo=UTC), step: timedelta | None = None
    ) -> None:
        self._now = start
        self._step = step or timedelta(milliseconds=1)

    def __call__(self) -> datetime:
        self._now += self._step
        return self._now

    def advance(self, delta: timedelta) -> None:
        """Jump forward, e.g. to let the engine's overlap window pass."""
        self._now += delta


@dataclass
class _Row:
    fields: dict[str, Any]
    version: int
    modified_at: datetime
    modified_by: str
    deleted: bool = False
    merged_into: str | None = None
    merged_from: list[str] = field(default_factory=list)


RejectRule = Callable[[str, dict[str, Any]], str | None]
"""(object, fields) -> an error message to refuse the write with, or None to accept it."""


class MemoryBackend:
    """The "remote system" behind one or more :class:`MemoryConnector` instances."""

    def __init__(self, *, clock: Callable[[], datetime] | None = None, prefix: str = "m") -> None:
        self.clock = clock or TickingClock()
        self.tables: dict[str, dict[str, _Row]] = {}
        self.owners: list[Owner] = []
        self.token: str | None = None
        self.reject_rules: list[RejectRule] = []
        self.tasks: dict[str, NewTask] = {}
        self.writes = 0
        self.throttled: float | None = None
        self._ids = itertools.count(1)
        self._prefix = prefix

    # -- what a human (or a test) does in the vendor's UI ---------------------------------------
    def create(self, obj: str, fields: dict[str, Any], *, user: str = "human") -> str:
        """Create a record as ``user``; returns its id."""
        record_id = f"{self._prefix}{next(self._ids)}"
        self.tables.setdefault(obj, {})[record_id] = _Row(
            fields=dict(fields), version=1, modified_at=self.clock(), modified_by=user
        )
        return record_id

    def human_edit(self, obj: str, record_id: str, changes: dict[str, Any]) -> None:
        """Edit a record as a person would, bumping its version."""
        self._touch(obj, record_id, changes, user="human")

    def delete(self, obj: str, record_id: str, *, user: str = "human") -> None:
        """Soft-delete a record: it stays visible to the change stream as deleted."""
        row = self.tables[obj][record_id]
        row.deleted = True
        row.version += 1
        row.modified_at = self.clock()
        row.modified_by = user

    def merge(self, obj: str, winner: str, loser: str, *, user: str = "human") -> None:
        """Merge ``loser`` into ``winner`` the way CRMs do: the loser is deleted and points on."""
        rows = self.tables[obj]
        rows[loser].merged_into = winner
        self.delete(obj, loser, user=user)
        rows[winner].merged_from.append(loser)
        self._touch(obj, winner, {}, user=user)

    def throttle(self, retry_after: float | None = 30.0) -> None:
        """Answer every call with "slow down, retry after ``retry_after`` s"; ``None`` lifts it."""
        self.throttled = retry_after

    def reject_when(self, rule: RejectRule) -> None:
        """Refuse future writes for which ``rule`` returns a message (a validation rule)."""
        self.reject_rules.append(rule)

    def live(self, obj: str) -> dict[str, dict[str, Any]]:
        """Non-deleted records of ``obj`` by id (for assertions)."""
        return {rid: dict(r.fields) for rid, r in self.tables.get(obj, {}).items() if not r.deleted}

    def _touch(self, obj: str, record_id: str, changes: dict[str, Any], *, user: str) -> None:
        row = self.tables[obj][record_id]
        row.fields.update(changes)
        row.version += 1
        row.modified_at = self.clock()
        row.modified_by = user

    def to_record(self, obj: str, record_id: str) -> Record:
        """The record as the connector reports it."""
        row = self.tables[obj][record_id]
        return Record(
            object=obj,
            id=record_id,
            version=str(row.version),
            modified_at=row.modified_at,
            fields=dict(row.fields),
            deleted=row.deleted,
            merged_into=row.merged_into,
            merged_from=tuple(row.merged_from),
            modified_by=row.modified_by,
        )


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class MemoryConnector(Connector[MemorySettings]):
    """An in-memory connector; pass a shared :class:`MemoryBackend` to observe or edit its data."""

    Settings: ClassVar[type[ConnectorSettings]] = MemorySettings
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.INCREMENTAL,
            Capability.BATCH_UPSERT,
            Capability.UPSERT_BY_IDENTITY,
            Capability.HARD_DELETE,
            Capability.ARCHIVE,
            Capability.MERGE_FEED,
            Capability.OWNERS,
            Capability.TASKS,
        }
    )
    description: ClassVar[str] = "In-memory example connector (the worked example and test fake)."

    def __init__(
        self, settings: MemorySettings, *, name: str, backend: MemoryBackend | None = None
    ) -> None:
        super().__init__(settings, name=name)
        self.backend = backend or MemoryBackend()

    @property
    def integration_user_id(self) -> str:
        """The user the backend stamps on this connector's writes (a person's are ``human``)."""
        return INTEGRATION_USER

    def objects(self) -> Sequence[ObjectSpec]:
        """One spec per configured object, all matched on the identity field."""
        return [
            ObjectSpec(
                name=obj,
                identity_fields=(self.settings.identity_field,),
                max_batch=self.settings.max_batch,
                ordering=Ordering.UNSORTED if self.settings.unsorted else Ordering.ASCENDING,
            )
            for obj in self.settings.objects
        ]

    def check(self) -> str:
        """One call, answered like any other: a refused token or throttling raises."""
        self._call("check")
        return f"in-memory backend with {sum(map(len, self.backend.tables.values()))} records"

    def changes(self, obj: str, since: datetime | None) -> Iterator[Record]:
        """Pages of records ordered by (modified_at, id), like a SystemModstamp query."""
        self.object_spec(obj)
        rows = self.backend.tables.get(obj, {})
        ordered = sorted(
            (
                (r.modified_at, rid)
                for rid, r in rows.items()
                if since is None or r.modified_at >= since
            ),
            reverse=self.settings.unsorted,
        )
        for start in range(0, max(len(ordered), 1), self.settings.page_size):
            self._call("changes")  # one call per page, an empty stream's included
            for _, rid in ordered[start : start + self.settings.page_size]:
                yield self.backend.to_record(obj, rid)

    def fetch(self, obj: str, ids: Iterable[str]) -> Iterator[Record]:
        """Records by id; unknown ids are skipped."""
        self._call("fetch")
        rows = self.backend.tables.get(obj, {})
        for rid in ids:
            if rid in rows:
                yield self.backend.to_record(obj, rid)

    def write(self, obj: str, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """Apply a batch; every op gets its own result, rejected ones included."""
        spec = self.object_spec(obj)
        if len(ops) > spec.max_batch:
            raise ValueError(f"batch of {len(ops)} exceeds max_batch {spec.max_batch}")
        self._call("write")
        return [self._apply(obj, op) for op in ops]

    def owners(self) -> Iterator[Owner]:
        """The backend's owners."""
        self._call("owners")
        yield from self.backend.owners

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
        """One call per task; a missing record is refused the way a vendor answers 404."""
        self._call("tasks")
        task: NewTask = {
            "record_id": record_id,
            "owner_id": owner_id,
            "subject": subject,
            "body": body,
            "due": due,
        }
        task_id = self._add_task(obj, task)
        if task_id is None:
            raise RecordRejectedError(
                "entity is deleted", code="ENTITY_IS_DELETED", connector=self.name
            )
        return task_id

    def create_tasks(self, obj: str, tasks: Sequence[NewTask]) -> list[str | None]:
        """One call per ``max_batch`` tasks instead of one per task, like a vendor batch endpoint.

        Shows the batch contract: ids in input order, ``None`` where a task was refused, and a
        refused task never stops the others.
        """
        size = self.object_spec(obj).max_batch
        ids: list[str | None] = []
        for start in range(0, len(tasks), size):
            self._call("tasks")
            ids.extend(self._add_task(obj, task) for task in tasks[start : start + size])
        return ids

    # -- internals --------------------------------------------------------------------------------
    def _call(self, family: str) -> None:
        """Count one API call of ``family``, then answer it as the backend would."""
        self.calls[family] += 1
        self._answer()

    def _answer(self) -> None:
        """Raise what a real API answers a whole call with: 401 for a rotated token, 429 throttled.

        Why every call and not just ``check()``: a token revoked mid-cycle fails the next read or
        write, and that is where the engine must see an :class:`AuthError`.
        """
        expected = self.settings.api_token
        if expected is not None and self.backend.token not in (None, expected.get_secret_value()):
            raise AuthError("token refused by the in-memory backend", connector=self.name)
        if self.backend.throttled is not None:
            raise RateLimitedError(
                "the in-memory backend is throttling this integration",
                retry_after=self.backend.throttled,
                connector=self.name,
            )

    def _add_task(self, obj: str, task: NewTask) -> str | None:
        row = self.backend.tables.get(obj, {}).get(task["record_id"])
        if row is None or row.deleted:
            return None
        task_id = f"task{len(self.backend.tasks) + 1}"
        self.backend.tasks[task_id] = task.copy()
        return task_id

    def _apply(self, obj: str, op: WriteOp) -> WriteResult:
        rows = self.backend.tables.setdefault(obj, {})
        if isinstance(op, Delete):
            if op.id not in rows or rows[op.id].deleted:
                return WriteResult.failure(op.key, "entity is deleted", code="ENTITY_IS_DELETED")
            if op.mode == "hard":
                del rows[op.id]
            else:
                self.backend.delete(obj, op.id, user=INTEGRATION_USER)
            self.backend.writes += 1
            return WriteResult.success(op.key, op.id)
        problem = self._validate(obj, op)
        if problem is not None:
            return WriteResult.failure(op.key, problem, code="VALIDATION_ERROR")
        target = op.id or self._match(obj, op)
        self.backend.writes += 1
        if target is None:
            new_id = self.backend.create(obj, dict(op.fields), user=INTEGRATION_USER)
            return WriteResult.success(op.key, new_id, version="1", created=True)
        row = rows.get(target)
        if row is not None and row.merged_into is not None:
            # Like a converted lead: the record lives on as another one (MOVED_ON_CODES).
            return WriteResult.failure(op.key, f"merged into {row.merged_into}", code="MERGED_AWAY")
        if row is None or row.deleted:
            return WriteResult.failure(op.key, "entity is deleted", code="ENTITY_IS_DELETED")
        self.backend._touch(obj, target, dict(op.fields), user=INTEGRATION_USER)
        return WriteResult.success(op.key, target, version=str(row.version))

    def _validate(self, obj: str, op: Upsert) -> str | None:
        email = op.fields.get(self.settings.identity_field)
        if self.settings.identity_field == "email" and email and not _EMAIL.match(str(email)):
            return f"invalid email address: {email!r}"
        for rule in self.backend.reject_rules:
            message = rule(obj, dict(op.fields))
            if message:
                return message
        return None

    def _match(self, obj: str, op: Upsert) -> str | None:
        if op.match_on is None:
            return None
        wanted = op.fields.get(op.match_on)
        if wanted in (None, ""):
            return None
        needle = str(wanted).casefold()
        for rid, row in self.backend.tables.get(obj, {}).items():
            value = row.fields.get(op.match_on)
            if not row.deleted and value is not None and str(value).casefold() == needle:
                return rid
        return None
