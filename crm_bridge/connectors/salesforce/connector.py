"""The Salesforce connector: the five connector methods on top of auth, reading and writing.

Why this module is thin: the decisions live next to what they decide -- tokens and transport in
:mod:`.auth`, SOQL and row conversion in :mod:`.reading`, batching in :mod:`.writing`.  Here every
HTTP call is wrapped once in :func:`~crm_bridge.http.call_with_retries` (with the connector's
clock, the retry table -- generic rows plus Salesforce's, :data:`.errors.SALESFORCE_POLICY` --
and a single token refresh on 401), and nothing touches the network before the first method
call, so ``crm-bridge connectors list`` can build an instance with no settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from more_itertools import chunked
from simple_salesforce.util import call_salesforce

from crm_bridge.connector import (
    Activity,
    Capability,
    ChangeFeed,
    Connector,
    ConnectorSettings,
    NewTask,
    ObjectSpec,
    Ordering,
    Owner,
    Record,
    Upsert,
    WriteOp,
    WriteResult,
)
from crm_bridge.errors import (
    AuthError,
    ConfigError,
    ConfigProblem,
    CrmBridgeError,
    RecordRejectedError,
    TransientError,
)
from crm_bridge.http import Clock, DailyBudget, RetryPolicy, SystemClock, call_with_retries

from . import activities as _activities
from . import contact_roles as _roles
from .admin import SalesforceAdminMixin
from .auth import SalesforceAuth
from .bulk_read import BulkSnapshot, csv_rows
from .errors import SALESFORCE_POLICY
from .people import (
    CONVERSION_FIELDS,
    KINDS,
    PERSON,
    PersonKind,
    as_person,
    kind_of,
    merged_stream,
    union_description,
)
from .reading import (
    ObjectDescription,
    by_ids_soql,
    changes_soql,
    parse_sf_datetime,
    quote,
    select_list,
    to_record,
    valid_id,
)
from .settings import COLLECTION_SIZE, COLLECTIONS_PER_COMPOSITE, SalesforceSettings
from .writing import BatchWriter, query_rows, query_subrequest, wait_for_job

__all__ = ["SalesforceConnector"]

T = TypeVar("T")

_IDENTITY: Mapping[str, tuple[str, ...]] = {
    "Lead": ("Email",),
    "Contact": ("Email",),
    PERSON: ("Email",),
}
_MAX_LOCATOR_RESTARTS = 3
_CSV = "text/csv; charset=UTF-8"


class SalesforceConnector(SalesforceAdminMixin, Connector[SalesforceSettings]):
    """Leads, contacts, accounts, opportunities (and more) of one Salesforce org."""

    Settings: ClassVar[type[ConnectorSettings]] = SalesforceSettings
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.INCREMENTAL,
            Capability.BATCH_UPSERT,
            Capability.UPSERT_BY_IDENTITY,
            Capability.ARCHIVE,
            Capability.MERGE_FEED,
            Capability.OWNERS,
            # SLA (.activities): Task/Event first touches, reminder tasks
            Capability.ACTIVITIES,
            Capability.TASKS,
            # reason codes (.admin): Tooling API fields and rules, contact roles
            Capability.PICKLIST_ADMIN,
            Capability.VALIDATION_RULES,
            Capability.RELATIONS,
            # push (.cdc): Change Data Capture over the Pub/Sub API, when settings.cdc is on
            Capability.CHANGE_FEED,
        }
    )
    description: ClassVar[str] = (
        "Salesforce REST: queryAll change stream, Composite + sObject Collections writes "
        "(1,000 records per call), Bulk API 2.0 for large batches."
    )

    def __init__(
        self,
        settings: SalesforceSettings,
        *,
        name: str,
        clock: Clock | None = None,
        policy: RetryPolicy = SALESFORCE_POLICY,
    ) -> None:
        super().__init__(settings, name=name)
        self.clock: Clock = clock or SystemClock()
        self.policy = policy
        self.budget = DailyBudget(
            reserve_fraction=settings.daily_reserve_fraction, name=f"{name}: Salesforce daily API"
        )
        self._auth: SalesforceAuth | None = None
        self._descriptions: dict[str, ObjectDescription] = {}
        self._role_cache = _roles.RoleCache()
        self._touched_reads = _roles.TouchedReads()
        self._snapshots: dict[str, BulkSnapshot] = {}

    # -- plumbing -------------------------------------------------------------------------------

    @property
    def auth(self) -> SalesforceAuth:
        """Tokens, session and client, created on first use (no network until then)."""
        if self._auth is None:
            self._auth = SalesforceAuth(
                self.settings, calls=self.calls, budget=self.budget, clock=self.clock
            )
        return self._auth

    def _call(self, fn: Callable[[], T], *, idempotent: bool) -> T:
        """One logical request through the retry table; errors name this connector."""
        auth = self.auth
        try:
            return call_with_retries(
                fn,
                idempotent=idempotent,
                describe=auth.describe,
                policy=self.policy,
                clock=self.clock,
                on_refresh=auth.refresh,
            )
        except CrmBridgeError as exc:
            if exc.connector is None:
                exc.connector = self.name
            raise

    def _query(self, soql: str, *, all_rows: bool) -> Mapping[str, Any]:
        headers = {"Sforce-Query-Options": f"batchSize={self.settings.query_batch_size}"}
        result: Mapping[str, Any] = self._call(
            lambda: self.auth.client.query(soql, include_deleted=all_rows, headers=headers),
            idempotent=True,
        )
        return result

    def _query_more(self, next_url: str) -> Mapping[str, Any]:
        headers = {"Sforce-Query-Options": f"batchSize={self.settings.query_batch_size}"}
        result: Mapping[str, Any] = self._call(
            lambda: self.auth.client.query_more(next_url, identifier_is_url=True, headers=headers),
            idempotent=True,
        )
        return result

    def _pages(self, soql: str, *, all_rows: bool) -> Iterator[list[Mapping[str, Any]]]:
        """Query pages one at a time, following ``nextRecordsUrl`` (never all in memory)."""
        page = self._query(soql, all_rows=all_rows)
        while True:
            yield list(page.get("records") or [])
            next_url = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return
            page = self._query_more(str(next_url))

    def _configured_fields(self, obj: str) -> list[str] | None:
        for name, fields in (self.settings.fields or {}).items():
            if name == obj:
                return list(fields)
        return None

    def describe_object(self, obj: str) -> ObjectDescription:
        """The object's describe (one call per object per connector instance, then cached).

        ``Person`` is described as the union of Lead and Contact (:mod:`.people`).
        """
        if obj == PERSON:
            return union_description({kind: self.describe_object(kind) for kind in KINDS})
        cached = self._descriptions.get(obj)
        if cached is None:
            body = self._call(
                lambda: self.auth.client.restful(f"sobjects/{obj}/describe"), idempotent=True
            )
            cached = ObjectDescription.from_describe(body)
            if obj == _roles.OPPORTUNITY and self._roles_on():
                cached = _with_roles_field(cached)
            self._descriptions[obj] = cached
        return cached

    def _roles_on(self) -> bool:
        """Whether opportunities carry their contact roles (:mod:`.contact_roles`)."""
        served = self.settings.objects
        return (
            self.settings.contact_roles
            and _roles.OPPORTUNITY in served
            and _roles.ROLE_OBJECT in served
        )

    def _run_queries(self, statements: Sequence[str]) -> Iterator[Mapping[str, Any]]:
        """Rows of several ``queryAll`` statements, five per Composite call."""
        prefix = f"/services/data/v{self.settings.api_version}"
        api = _WriteApi(self)
        for start in range(0, len(statements), COLLECTIONS_PER_COMPOSITE):
            batch = statements[start : start + COLLECTIONS_PER_COMPOSITE]
            subs = [
                query_subrequest(prefix, soql, ref=f"q{n}", all_rows=True)
                for n, soql in enumerate(batch)
            ]
            for answer in api.composite(subs, idempotent=True):
                yield from query_rows(answer, self._query_more)

    # -- the connector API ----------------------------------------------------------------------

    def objects(self) -> Sequence[ObjectSpec]:
        """One spec per configured object: keyed by ``Id``, versioned by ``SystemModstamp``."""
        return [
            ObjectSpec(
                name=obj,
                primary_key="Id",
                cursor_field="SystemModstamp",
                version_field="SystemModstamp",
                identity_fields=_IDENTITY.get(obj, ()),
                ordering=Ordering.ASCENDING,
                max_batch=self.settings.max_batch,
                label=obj,
            )
            for obj in self.settings.objects
        ]

    def check(self) -> str:
        """Fetch a token and read our own User row: ``user (org ..., api usage N/M)``."""
        user_id = self.auth.user_id
        page = self._query(
            f"SELECT Id, Username FROM User WHERE Id = {quote(user_id)}", all_rows=False
        )
        rows = list(page.get("records") or [])
        username = str(rows[0].get("Username")) if rows else user_id
        snap = self.budget.snapshot()
        usage = f"{snap.estimated_used}/{snap.limit}" if snap.limit is not None else "unknown"
        return f"{username} (org {self.auth.org_id}, api usage {usage})"

    def changes(self, obj: str, since: datetime | None) -> Iterator[Record]:
        """``queryAll`` ordered by ``SystemModstamp, Id``; deletes and merge losers included.

        ``Person`` merges the Lead and Contact streams on that order (:mod:`.people`).
        """
        self.object_spec(obj)
        if obj == _roles.OPPORTUNITY and self._roles_on():
            return self._opportunity_changes(since)
        if obj != PERSON:
            return self._stream(obj, since, self._select(obj))
        return self._person_changes(since)

    def _opportunity_changes(self, since: datetime | None) -> Iterator[Record]:
        """Opportunities changed, merged with those whose contact roles changed; roles attached.

        Both streams' first pages come in one Composite call, so an idle cycle still costs one.
        """
        fields = self._select(_roles.OPPORTUNITY)
        role_fields = select_list(
            self.describe_object(_roles.ROLE_OBJECT), ["OpportunityId", "ContactId"]
        )
        first_opps, first_roles = self._first_pages(
            [(_roles.OPPORTUNITY, fields), (_roles.ROLE_OBJECT, role_fields)], since
        )
        opportunities = self._stream(_roles.OPPORTUNITY, since, fields, first=first_opps)
        # The role stream's first page is in hand: when it is the whole stream, the opportunities
        # it names are the only ones whose cached roles may be out of date, and they are read
        # with their roles at once (one call), for both streams.
        body = first_roles.get("body")
        complete = isinstance(body, Mapping) and bool(body.get("done", False))
        rows = (body.get("records") or []) if isinstance(body, Mapping) else []
        named = sorted({str(row.get("OpportunityId")) for row in rows if row.get("OpportunityId")})
        read: dict[str, tuple[Record, _roles.Roles]] = {}
        if complete and named:
            reused = self._touched_reads.get(rows, first_opps.get("body"))
            if reused is None:
                read = self._fetch_with_roles(fields, named)
                self._touched_reads.put(rows, read)
            else:
                read = reused  # an idle cycle re-reading the same role rows: no call

        def fetch(ids: Sequence[str]) -> list[Record]:
            missing = [i for i in ids if i not in read]
            if missing:
                read.update(self._fetch_with_roles(fields, missing))
            return [read[i][0] for i in ids if i in read]

        touched = _roles.touched_opportunities(
            self._stream(_roles.ROLE_OBJECT, since, role_fields, first=first_roles), fetch
        )
        once = _roles.first_sightings(merged_stream(opportunities, touched))
        yield from _roles.attach_roles(
            once,
            self._run_queries,
            self._role_cache,
            untouched=lambda opp: complete and opp not in read,
            known={opp: roles for opp, (_, roles) in read.items()},
        )

    def _first_pages(
        self, streams: Sequence[tuple[str, list[str]]], since: datetime | None
    ) -> list[Mapping[str, Any]]:
        """The first change page of several sObjects in one Composite call (``queryAll``)."""
        prefix = f"/services/data/v{self.settings.api_version}"
        subs = [
            query_subrequest(
                prefix,
                self._changes_soql(obj, fields, since),
                ref=f"c{n}",
                all_rows=True,
                batch_size=self.settings.query_batch_size,
            )
            for n, (obj, fields) in enumerate(streams)
        ]
        return _WriteApi(self).composite(subs, idempotent=True)

    def _person_changes(self, since: datetime | None) -> Iterator[Record]:
        """Leads and Contacts, merged in ``(SystemModstamp, Id)`` order.

        Both kinds' first pages come in one Composite call, so an idle cycle costs one call as
        a single object's read does; later pages follow each stream's own locator.
        """
        kinds = self._person_kinds()
        firsts = self._first_pages([(kind, fields) for kind, fields, _ in kinds], since)
        yield from merged_stream(
            *(
                self._person_stream(kind, since, fields, absent, first)
                for (kind, fields, absent), first in zip(kinds, firsts, strict=True)
            )
        )

    def _person_stream(
        self,
        kind: str,
        since: datetime | None,
        fields: list[str],
        absent: frozenset[str],
        first: Mapping[str, Any],
    ) -> Iterator[Record]:
        for record in self._stream(kind, since, fields, first=first):
            yield as_person(record, absent)

    def _stream(
        self,
        obj: str,
        since: datetime | None,
        fields: list[str],
        *,
        first: Mapping[str, Any] | None = None,
    ) -> Iterator[Record]:
        """One sObject's change stream (``first``: its first page, already read in a Composite).

        A large read (more rows than ``bulk_query_threshold`` by the first page's
        ``totalSize``) goes on from a Bulk 2.0 snapshot instead of REST pages (:mod:`.bulk_read`).
        """
        snapshot = self._snapshots.get(obj)
        if snapshot is not None and not snapshot.serves(fields, since):
            snapshot.close()
            del self._snapshots[obj]
            snapshot = None
        if snapshot is None and self._bulk_reads(fields):
            if first is None:
                page = self._query(self._changes_soql(obj, fields, since), all_rows=True)
                first = {"httpStatusCode": 200, "body": page}
            body = first.get("body")
            if (
                isinstance(body, Mapping)
                and not body.get("done", True)
                and int(body.get("totalSize") or 0) > self.settings.bulk_query_threshold
            ):
                snapshot = self._take_snapshot(obj, fields, since)
        if snapshot is not None:
            yield from self._snapshot_stream(snapshot, since)
            return
        yield from self._rest_stream(obj, since, fields, first=first)

    def _changes_soql(
        self, obj: str, fields: Sequence[str], since: datetime | None, *, ordered: bool = True
    ) -> str:
        exclude = self.auth.user_id if self.settings.exclude_own_changes else None
        return changes_soql(obj, fields, since=since, exclude_user=exclude, ordered=ordered)

    def _bulk_reads(self, fields: Sequence[str]) -> bool:
        """Whether a large read may use Bulk (not for relationship paths: CSV flattens them)."""
        return self.settings.bulk_query_threshold > 0 and not any("." in f for f in fields)

    def _take_snapshot(self, obj: str, fields: list[str], since: datetime | None) -> BulkSnapshot:
        """Run one Bulk queryAll job for the read and spool its rows (one page in memory)."""
        api = _WriteApi(self)
        soql = self._changes_soql(obj, fields, since, ordered=False)
        job = api.query_job_create(soql)
        job_id = str(job["id"])
        info = api.query_job_wait(job_id, self.settings.bulk_timeout_seconds)
        created = info.get("createdDate") or job.get("createdDate")
        cut = parse_sf_datetime(str(created)) if created else self.clock.now()
        snapshot = BulkSnapshot(obj, fields, since, cut)
        try:
            description = self.describe_object(obj)
            for page in api.query_job_pages(job_id, self.settings.bulk_query_page):
                snapshot.add(csv_rows(page, description))
        except BaseException:
            snapshot.close()
            raise
        self._snapshots[obj] = snapshot
        return snapshot

    def _snapshot_stream(self, snapshot: BulkSnapshot, since: datetime | None) -> Iterator[Record]:
        """The snapshot's rows from ``since`` merged with the REST changes after its cut-off.

        The REST part is read first (it is what changed while the load ran: few rows), so a
        record in both is served once, as its newer REST row.
        """
        obj = snapshot.obj
        description = self.describe_object(obj)
        later = list(self._rest_stream(obj, snapshot.cut, list(snapshot.fields)))
        newer = {record.id for record in later}
        spooled = (
            to_record(obj, row, description)
            for row in snapshot.rows_from(since)
            if str(row["Id"]) not in newer
        )
        yield from merged_stream(spooled, later)

    def _rest_stream(
        self,
        obj: str,
        since: datetime | None,
        fields: list[str],
        *,
        first: Mapping[str, Any] | None = None,
    ) -> Iterator[Record]:
        """One sObject's change stream through REST ``queryAll`` pages.

        If Salesforce forgets the query locator mid-stream (``INVALID_QUERY_LOCATOR``: it idled
        past 15 minutes while the engine worked), the query is re-issued from the last modstamp
        seen and rows already yielded are skipped, so the stream neither repeats nor loses rows.
        """
        description = self.describe_object(obj)
        last: tuple[datetime, str] | None = None
        restarts = 0
        start = since
        while True:
            soql = self._changes_soql(obj, fields, start)
            rows: Iterable[Mapping[str, Any]] = (
                query_rows(first, self._query_more)
                if first is not None
                else (row for page in self._pages(soql, all_rows=True) for row in page)
            )
            first = None  # a restart queries afresh
            try:
                for row in rows:
                    record = to_record(obj, row, description)
                    position = (record.modified_at, record.id)
                    if last is not None and position <= last:
                        continue
                    last = position
                    yield record
                return
            except RecordRejectedError as exc:
                if exc.code != "INVALID_QUERY_LOCATOR" or restarts >= _MAX_LOCATOR_RESTARTS:
                    raise
                restarts += 1
                start = last[0] if last is not None else since

    def _select(self, obj: str) -> list[str]:
        selected = select_list(self.describe_object(obj), self._configured_fields(obj))
        return [name for name in selected if name != _roles.ROLES_FIELD]

    def _person_kinds(self) -> list[tuple[PersonKind, list[str], frozenset[str]]]:
        """Per kind: the fields to select, and the person's fields that kind does not have."""
        wanted = self._configured_fields(PERSON)
        kinds = {kind: self.describe_object(kind) for kind in KINDS}
        every = wanted or union_description(kinds).readable_fields()
        out: list[tuple[PersonKind, list[str], frozenset[str]]] = []
        for kind, description in kinds.items():
            known = {name.lower() for name in description.field_types}
            has = [name for name in every if name.lower() in known]
            if kind == "Lead":
                has += [f for f in CONVERSION_FIELDS if f.lower() in known]
            absent = frozenset(name for name in every if name.lower() not in known)
            out.append((kind, select_list(description, has), absent))
        return out

    def fetch(self, obj: str, ids: Iterable[str]) -> Iterator[Record]:
        """``queryAll`` by ``Id IN (...)``: 200 ids per query, five queries per Composite call.

        So 1,000 ids cost one API call (a ``Person``'s Leads and Contacts share the calls).
        Unknown ids are skipped; malformed ones are dropped before they can break (or inject
        into) the SOQL.
        """
        self.object_spec(obj)
        wanted = [i for i in dict.fromkeys(ids) if valid_id(i)]
        if not wanted:
            return iter(())
        if obj == _roles.OPPORTUNITY and self._roles_on():
            rows = self._fetch([(obj, self._select(obj), wanted, None)])
            return _roles.attach_roles(rows, self._run_queries, self._role_cache)
        if obj != PERSON:
            return self._fetch([(obj, self._select(obj), wanted, None)])
        groups = [
            (kind, fields, [i for i in wanted if kind_of(i) == kind], absent)
            for kind, fields, absent in self._person_kinds()
        ]
        return self._fetch([g for g in groups if g[2]])

    def _fetch(
        self, groups: Sequence[tuple[str, list[str], list[str], frozenset[str] | None]]
    ) -> Iterator[Record]:
        prefix = f"/services/data/v{self.settings.api_version}"
        api = _WriteApi(self)
        queries = [
            (obj, fields, chunk, absent)
            for obj, fields, ids, absent in groups
            for chunk in chunked(ids, COLLECTION_SIZE)
        ]
        for start in range(0, len(queries), COLLECTIONS_PER_COMPOSITE):
            batch = queries[start : start + COLLECTIONS_PER_COMPOSITE]
            subs = [
                query_subrequest(
                    prefix, by_ids_soql(obj, fields, chunk), ref=f"f{n}", all_rows=True
                )
                for n, (obj, fields, chunk, _) in enumerate(batch)
            ]
            for (obj, _, _, absent), answer in zip(
                batch, api.composite(subs, idempotent=True), strict=True
            ):
                description = self.describe_object(obj)
                for row in query_rows(answer, self._query_more):
                    record = to_record(obj, row, description)
                    yield record if absent is None else as_person(record, absent)

    def _fetch_with_roles(
        self, fields: list[str], ids: list[str]
    ) -> dict[str, tuple[Record, _roles.Roles]]:
        """Opportunities by id with their roles: both queries of a chunk in one Composite call."""
        prefix = f"/services/data/v{self.settings.api_version}"
        api = _WriteApi(self)
        subs: list[tuple[str, dict[str, Any]]] = []
        for n, chunk in enumerate(chunked(ids, COLLECTION_SIZE)):
            opp_soql = by_ids_soql(_roles.OPPORTUNITY, fields, chunk)
            subs.append(("opp", query_subrequest(prefix, opp_soql, ref=f"o{n}", all_rows=True)))
            role_soql = _roles.roles_soql(chunk)
            subs.append(("role", query_subrequest(prefix, role_soql, ref=f"r{n}", all_rows=True)))
        description = self.describe_object(_roles.OPPORTUNITY)
        records: list[Record] = []
        role_rows: list[Mapping[str, Any]] = []
        for start in range(0, len(subs), COLLECTIONS_PER_COMPOSITE - 1):  # pairs stay together
            batch = subs[start : start + COLLECTIONS_PER_COMPOSITE - 1]
            answers = api.composite([sub for _, sub in batch], idempotent=True)
            for (kind, _), answer in zip(batch, answers, strict=True):
                rows = list(query_rows(answer, self._query_more))
                if kind == "opp":
                    records.extend(to_record(_roles.OPPORTUNITY, r, description) for r in rows)
                else:
                    role_rows.extend(rows)
        roles = _roles.collect_roles(ids, role_rows)
        out: dict[str, tuple[Record, _roles.Roles]] = {}
        for r in records:
            found = roles.get(r.id, _roles.Roles())
            if not r.deleted:
                self._role_cache.put(r, found)  # keyed by the opportunity's own stamp
            out[r.id] = (r if r.deleted else _roles.with_roles(r, found), found)
        return out

    def write(self, obj: str, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """Composite + Collections (1,000 per call), or Bulk 2.0 past ``bulk_threshold``."""
        spec = self.object_spec(obj)
        if len(ops) > spec.max_batch:
            raise ValueError(f"batch of {len(ops)} exceeds max_batch {spec.max_batch}")
        if not ops:
            return []
        writer = BatchWriter(
            _WriteApi(self),
            api_version=self.settings.api_version,
            policy=self.policy,
            bulk_threshold=self.settings.bulk_threshold,
            poll_seconds=self.settings.bulk_poll_seconds,
            bulk_timeout=self.settings.bulk_timeout_seconds,
        )
        if obj == _roles.OPPORTUNITY and self._roles_on():
            return self._write_opportunities(writer, ops)
        if obj != PERSON:
            return writer.write(obj, ops, self.describe_object(obj))
        return self._write_people(writer, ops)

    def _write_opportunities(
        self, writer: BatchWriter, ops: Sequence[WriteOp]
    ) -> list[WriteResult]:
        """The opportunities' own fields, then their contact roles (:mod:`.contact_roles`).

        An update that only changes roles sends no opportunity write at all.
        """
        wanted: dict[int, list[str]] = {}
        sent: list[int] = []
        plain: list[WriteOp] = []
        for i, op in enumerate(ops):
            if isinstance(op, Upsert) and _roles.ROLES_FIELD in op.fields:
                wanted[i] = [str(c) for c in op.fields[_roles.ROLES_FIELD] or []]
                op = replace(
                    op, fields={k: v for k, v in op.fields.items() if k != _roles.ROLES_FIELD}
                )
                if op.id and not op.fields:
                    continue
            sent.append(i)
            plain.append(op)
        results: list[WriteResult] = [WriteResult.success(op.key, str(op.id)) for op in ops]
        description = self.describe_object(_roles.OPPORTUNITY)
        for i, result in zip(
            sent, writer.write(_roles.OPPORTUNITY, plain, description), strict=True
        ):
            results[i] = result
        targets = {str(results[i].id): i for i in wanted if results[i].ok and results[i].id}
        for opp, i in list(targets.items()):
            leads = [c for c in wanted[i] if kind_of(c) == "Lead"]
            if leads:  # a role names a Contact: the person must be converted first
                del targets[opp]
                results[i] = WriteResult.failure(
                    ops[i].key,
                    f"contact roles of {opp}: {', '.join(leads)} is a Lead, and a contact role "
                    "needs a Contact; convert the lead (the deal is replayed after that)",
                    code="ROLE_NEEDS_CONTACT",
                )
        if not targets:
            return results
        current = _roles.roles_by_opportunity(list(targets), self._run_queries)
        role_ops, owner = _roles.role_ops({opp: wanted[i] for opp, i in targets.items()}, current)
        if role_ops:
            done = writer.write(
                _roles.ROLE_OBJECT, role_ops, self.describe_object(_roles.ROLE_OBJECT)
            )
            for opp, failure in _roles.failed_opportunities(done, owner).items():
                i = targets[opp]
                results[i] = WriteResult.failure(
                    ops[i].key,
                    f"contact roles of {opp}: {failure.error}",
                    code=failure.error_code,
                    retryable=failure.retryable,
                )
        return results

    def _write_people(self, writer: BatchWriter, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """Each op to its kind's sObject (by id prefix; creates as ``person_create_as``)."""
        results: list[WriteResult | None] = [None] * len(ops)
        by_kind: dict[PersonKind, list[int]] = {}
        for i, op in enumerate(ops):
            kind = kind_of(op.id) if op.id else self.settings.person_create_as
            if kind is None:
                results[i] = WriteResult.failure(
                    op.key, f"{op.id!r} is neither a Lead nor a Contact id", code="MALFORMED_ID"
                )
            else:
                by_kind.setdefault(kind, []).append(i)
        parts: list[tuple[str, Sequence[WriteOp], ObjectDescription]] = []
        for kind, indexes in by_kind.items():
            description = self.describe_object(kind)
            known = {name.lower() for name in description.field_types}
            sub: list[WriteOp] = [
                replace(op, fields={k: v for k, v in op.fields.items() if k.lower() in known})
                if isinstance(op := ops[i], Upsert)
                else op
                for i in indexes
            ]
            parts.append((kind, sub, description))
        # one Composite call carries both kinds' Collections where they fit
        for indexes, written in zip(by_kind.values(), writer.write_many(parts), strict=True):
            for i, result in zip(indexes, written, strict=True):
                results[i] = result
        return [r for r in results if r is not None]

    def owners(self) -> Iterator[Owner]:
        """Every User (active or not), matched across sides by e-mail."""
        for page in self._pages("SELECT Id, Email, Name, IsActive FROM User", all_rows=False):
            for row in page:
                yield Owner(
                    id=str(row["Id"]),
                    email=str(row.get("Email") or ""),
                    name=str(row.get("Name") or ""),
                    active=bool(row.get("IsActive", True)),
                )

    def activities(
        self, obj: str, record_ids: Sequence[str], since: datetime | None
    ) -> Iterator[Activity]:
        """Tasks and events on ``record_ids`` (by ``WhoId``), created at/after ``since``."""
        self.object_spec(obj)
        return _activities.activities(self, record_ids, since)

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
        """A Task on the record for ``owner_id``; returns the new Task's id."""
        return _activities.create_task(
            self, obj, record_id, owner_id=owner_id, subject=subject, body=body, due=due
        )

    def create_tasks(self, obj: str, tasks: Sequence[NewTask]) -> list[str | None]:
        """Batched :meth:`create_task`, 1,000 per Composite call instead of one call per task."""
        return _activities.create_tasks(self, obj, tasks)

    def change_feed(self, objects: Sequence[str]) -> ChangeFeed:
        """Change Data Capture on ``cdc_channel`` over the Pub/Sub API, as hints (:mod:`.cdc`).

        Refused (a ConfigError the daemon logs, then polls this side) unless ``cdc = true`` and
        the ``salesforce-cdc`` extra is installed.  Opening it costs nothing; the first
        ``poll`` subscribes.
        """
        if not self.settings.cdc:
            raise ConfigError(
                [
                    ConfigProblem(
                        key=f"connectors.{self.name}.cdc",
                        problem="Change Data Capture is off for this Salesforce connector",
                        fix="set cdc = true (and select the objects for CDC in Setup)",
                    )
                ],
                heading=f"{self.name}: Change Data Capture is off (cdc = false)",
            )
        from .cdc import PubSubCredentials, SalesforceCdcFeed

        def credentials() -> PubSubCredentials:
            auth = self.auth
            auth.client  # noqa: B018 - a valid token (and the identity URL naming the org)
            current = auth.tokens.current
            org_id = auth.org_id
            if current is None or org_id is None:
                raise AuthError(f"{self.name}: the token response named no org for Pub/Sub")
            return PubSubCredentials(
                access_token=current.access_token.get_secret_value(),
                instance_url=current.instance_url or self.settings.instance_url,
                tenant_id=org_id,
            )

        return SalesforceCdcFeed(
            endpoint=self.settings.pubsub_endpoint,
            channel=self.settings.cdc_channel,
            objects=objects,
            client_id=self.settings.call_options_client,
            credentials=credentials,
            refresh=lambda: self.auth.refresh(),
            calls=self.calls,
            ca_bundle=self.settings.ca_bundle,
            batch_size=self.settings.cdc_batch_size,
        )

    def close(self) -> None:
        """Close the HTTP session and the token client, and drop any Bulk read snapshot."""
        for snapshot in self._snapshots.values():
            snapshot.close()
        self._snapshots.clear()
        if self._auth is not None:
            self._auth.close()
            self._auth = None

    @property
    def integration_user_id(self) -> str:
        """The integration user's id (what ``Record.modified_by`` shows for our own writes)."""
        return self.auth.user_id

    @staticmethod
    def parse_version(version: str) -> datetime:
        """A version token (``SystemModstamp``) as an aware datetime."""
        return parse_sf_datetime(version)


class _WriteApi:
    """The calls :class:`~.writing.BatchWriter` needs, each through the connector's retry loop."""

    def __init__(self, connector: SalesforceConnector) -> None:
        self.connector = connector
        self.clock = connector.clock

    def composite(self, subrequests: list[dict[str, Any]], *, idempotent: bool) -> list[Any]:
        body = {"allOrNone": False, "compositeRequest": subrequests}
        c = self.connector
        answer = c._call(
            lambda: c.auth.client.restful("composite", method="POST", json=body),
            idempotent=idempotent,
        )
        responses = answer.get("compositeResponse") if isinstance(answer, Mapping) else None
        if not isinstance(responses, list) or len(responses) != len(subrequests):
            raise TransientError("Salesforce answered a Composite request without results")
        return responses

    def query_more(self, next_url: str) -> Mapping[str, Any]:
        return self.connector._query_more(next_url)

    def bulk_create(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        # Creating a job applies no data; a retried create at worst leaves an empty job open.
        c = self.connector
        result: Mapping[str, Any] = c._call(
            lambda: c.auth.client.restful("jobs/ingest", method="POST", json=dict(body)),
            idempotent=True,
        )
        return result

    def bulk_upload(self, job_id: str, data: str) -> None:
        c = self.connector

        def upload() -> None:
            client = c.auth.client
            headers = {**client.headers, "Content-Type": _CSV, "Accept": "application/json"}
            response = call_salesforce(
                url=f"{client.bulk2_url}ingest/{job_id}/batches",
                method="PUT",
                session=client.session,
                headers=headers,
                data=data.encode("utf-8"),
            )
            if response.status_code != 201:
                raise TransientError(
                    f"Bulk upload for job {job_id} answered {response.status_code}"
                )

        # Nothing is processed before the job is closed, so resending the upload is safe.
        c._call(upload, idempotent=True)

    def bulk_close(self, job_id: str) -> Mapping[str, Any]:
        c = self.connector
        result: Mapping[str, Any] = c._call(
            lambda: c.auth.client.restful(
                f"jobs/ingest/{job_id}", method="PATCH", json={"state": "UploadComplete"}
            ),
            idempotent=True,
        )
        return result

    def bulk_get(self, job_id: str) -> Mapping[str, Any]:
        c = self.connector
        result: Mapping[str, Any] = c._call(
            lambda: c.auth.client.restful(f"jobs/ingest/{job_id}"), idempotent=True
        )
        return result

    def query_job_create(self, soql: str) -> Mapping[str, Any]:
        # Creating a query job changes no data: a retried create at worst leaves a spare job.
        c = self.connector
        body = {"operation": "queryAll", "query": soql}
        result: Mapping[str, Any] = c._call(
            lambda: c.auth.client.restful("jobs/query", method="POST", json=body),
            idempotent=True,
        )
        return result

    def query_job_wait(self, job_id: str, timeout: float) -> Mapping[str, Any]:
        """Poll the job until ``JobComplete``; a failed or aborted job is an error."""
        c = self.connector
        info = wait_for_job(
            lambda: c._call(lambda: c.auth.client.restful(f"jobs/query/{job_id}"), idempotent=True),
            self.clock,
            first_delay=c.settings.bulk_poll_seconds,
            timeout=timeout,
            late=f"Bulk query job {job_id}",
        )
        state = str(info.get("state"))
        if state != "JobComplete":
            raise CrmBridgeError(
                f"Bulk query job {job_id} ended {state}: {info.get('errorMessage') or ''}"
            )
        return info

    def query_job_pages(self, job_id: str, page_rows: int) -> Iterator[str]:
        """The job's CSV results, one ``maxRecords`` page per call, following ``Sforce-Locator``."""
        c = self.connector
        locator: str | None = None
        while True:

            def fetch(locator: str | None = locator) -> tuple[str, str]:
                client = c.auth.client
                params = {"maxRecords": str(page_rows)}
                if locator:
                    params["locator"] = locator
                response = call_salesforce(
                    url=f"{client.bulk2_url}query/{job_id}/results",
                    method="GET",
                    session=client.session,
                    headers={**client.headers, "Accept": _CSV},
                    params=params,
                )
                return str(response.text), str(response.headers.get("Sforce-Locator") or "null")

            text, locator = c._call(fetch, idempotent=True)
            yield text
            if not locator or locator == "null":
                return

    def bulk_results(self, job_id: str, kind: str) -> str:
        c = self.connector

        def fetch() -> str:
            client = c.auth.client
            headers = {**client.headers, "Accept": _CSV}
            response = call_salesforce(
                url=f"{client.bulk2_url}ingest/{job_id}/{kind}",
                method="GET",
                session=client.session,
                headers=headers,
            )
            return str(response.text)

        return c._call(fetch, idempotent=True)


def _with_roles_field(description: ObjectDescription) -> ObjectDescription:
    """Opportunity's describe with the contact-roles field (readable and writable, never selected)."""
    field = _roles.ROLES_FIELD
    return replace(
        description,
        field_types={**description.field_types, field: "references"},
        createable=description.createable | {field},
        updateable=description.updateable | {field},
    )
