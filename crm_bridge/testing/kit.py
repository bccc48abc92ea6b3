"""The conformance kit: one test class that checks a connector keeps the whole connector contract.

Why a kit: the engine relies on promises no type signature shows -- ``since`` is inclusive, an
ascending stream really ascends (the engine stops reading it early), a rejected record is a
failed :class:`~crm_bridge.connector.WriteResult` and not an exception, a declared capability
works.  Each in-tree connector used to re-prove these in hand-written tests; a third-party author
had nothing to run.  Subclassing :class:`ConnectorContract` runs the same checks against any
connector, with the author supplying only what differs: how to build a connected connector, how
to act on the backend as a person (:class:`~crm_bridge.testing.driver.BackendDriver`), which
object to test and what a valid record of it looks like.

Two groups of tests:

* ``test_structure_*`` need no backend and no connector instance: the settings model, the
  abstract methods, declared capabilities backed by overrides, the registry's load check and the
  entry point.
* all others run against a connected instance (the author's ``connector`` fixture) and the
  backend behind it (the ``driver`` fixture).  Tests of a capability the connector does not
  declare, or needing a driver hook the author left out, are *skipped* with the reason; a
  declared capability that misbehaves *fails*.

Nothing sleeps: time moves through :meth:`BackendDriver.advance` (an emulator's or fake's
clock), and retries are expected to run on the connector's injected clock.
See docs/connectors/conformance-kit.md.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal, TypeVar

import pytest

from crm_bridge.connector import (
    ALREADY_GONE_CODES,
    Activity,
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
    unimplemented_capabilities,
)
from crm_bridge.errors import AuthError, RateLimitedError
from crm_bridge.registry import contract_problem, load_connector
from crm_bridge.testing.driver import BackendDriver, DriverUnsupported

__all__ = ["ConnectorContract", "check_capabilities_implemented"]

T = TypeVar("T")

_DELETE_MODES: tuple[tuple[Literal["hard", "archive"], Capability], ...] = (
    ("hard", Capability.HARD_DELETE),
    ("archive", Capability.ARCHIVE),
)

_TICK_SECONDS = 1.0
"""How far the kit moves the backend's clock between records it wants apart in time."""


def check_capabilities_implemented(cls: type[Connector[Any]]) -> None:
    """Fail (``AssertionError``) when ``cls`` declares a capability it leaves to the base class.

    The same rule the registry applies on load (:func:`~crm_bridge.registry.contract_problem`),
    with a message naming each capability and the methods to override or the flag to drop.
    """
    missing = unimplemented_capabilities(cls)
    lines = [
        f"Capability.{capability.name} is declared but {', '.join(f'{m}()' for m in methods)} "
        f"{'is' if len(methods) == 1 else 'are'} still the base class's NotImplementedError"
        for capability, methods in missing.items()
    ]
    assert not lines, (
        f"{cls.__name__}: "
        + "; ".join(lines)
        + " -- implement the methods or remove the capability from `capabilities`"
    )


class ConnectorContract:
    """Subclass as ``Test<Name>Conformance`` to run the conformance kit against a connector.

    Must set: ``connector_class`` and ``object_name``; must provide the ``connector`` fixture
    (a connected instance, closed afterwards), the ``driver`` fixture (a
    :class:`~crm_bridge.testing.driver.BackendDriver` on the same backend) and
    :meth:`sample_record`.  Everything else is optional; see the attributes below and
    docs/connectors/conformance-kit.md.  The backend should start each test with none of the
    kit's sample records in it (the in-tree fixtures reset their emulators per test).
    """

    connector_class: ClassVar[type[Connector[Any]]]
    """The connector under test (the structural tests need nothing else)."""
    object_name: ClassVar[str]
    """The object the live tests read and write; pick one with identity fields if any has."""
    entry_point: ClassVar[str | None] = None
    """Its name in the ``crm_bridge.connectors`` entry-point group; ``None`` skips that check."""
    page_size: ClassVar[int | None] = None
    """Records per page of ``changes()`` as the ``connector`` fixture configures it (set it
    small); the kit seeds two pages and one record more.  ``None`` skips the paging test."""
    max_batch_limit: ClassVar[int] = 1_000
    """Largest ``ObjectSpec.max_batch`` the kit writes in full; configure the fixture's
    connector below it (a bigger one is skipped, not half-tested)."""
    since_granularity: ClassVar[timedelta] = timedelta(seconds=1)
    """How coarse the ``since`` filter may be (Salesforce SOQL literals are whole seconds): a
    few records that much before ``since`` may come back; older ones must not (INCREMENTAL)."""
    unknown_id: ClassVar[str] = "crm-bridge-kit-unknown-id"
    """An id no record has; use the vendor's id format so it reaches the API."""
    reports_modified_by: ClassVar[bool] = True
    """Set ``False`` when the vendor reports no last writer at all (skips the authorship test)."""
    relation: ClassVar[tuple[str, str] | None] = None
    """``(obj, to_obj)`` for ``related()`` when ``Capability.RELATIONS`` is declared."""
    missing_field: ClassVar[str] = "crm_bridge_kit_probe__c"
    """A custom field name that does not exist (``Capability.PICKLIST_ADMIN`` probe)."""

    # -- hooks the author provides ---------------------------------------------------------------

    @pytest.fixture
    def connector(self) -> Connector[Any]:
        """A connected instance of ``connector_class`` for one test (override it)."""
        pytest.fail(
            f"{type(self).__name__} must override the `connector` fixture: "
            "yield a connected connector (and close it afterwards)"
        )

    @pytest.fixture
    def driver(self) -> BackendDriver:
        """A backend driver acting as a person on the connector's backend (override it)."""
        pytest.fail(
            f"{type(self).__name__} must override the `driver` fixture: return a "
            "crm_bridge.testing.BackendDriver on the same backend as `connector`"
        )

    def sample_record(self, n: int) -> dict[str, Any]:
        """Vendor fields of a valid new record number ``n`` (identity values unique per ``n``)."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement sample_record(n): the fields of a valid "
            f"new {self.object_name!r} record, with identity values unique per n"
        )

    def edited_fields(self, n: int) -> dict[str, Any] | None:
        """Fields a person changes on record ``n``; ``None`` = record ``n + 100000``'s minus identity."""
        return None

    def invalid_record(self, n: int) -> dict[str, Any] | None:
        """Fields the vendor refuses (a bad picklist value, a malformed email), or ``None``."""
        return None

    # -- structural: no backend -----------------------------------------------------------------

    def test_structure_settings_are_a_strict_frozen_model(self) -> None:
        """``Settings`` derives from ConnectorSettings and still refuses unknown keys (typos)."""
        settings = getattr(self.connector_class, "Settings", None)
        assert isinstance(settings, type) and issubclass(settings, ConnectorSettings), (
            f"{self.connector_class.__name__}.Settings must be a ConnectorSettings subclass"
        )
        config = settings.model_config
        assert config.get("extra") == "forbid", (
            f"{settings.__name__} must keep extra='forbid': a misspelt key would be ignored"
        )
        assert config.get("frozen") is True, f"{settings.__name__} must stay frozen"

    def test_structure_required_methods_are_implemented(self) -> None:
        """No abstract method is left: the connector can be instantiated."""
        left = sorted(getattr(self.connector_class, "__abstractmethods__", ()))
        assert not left, f"{self.connector_class.__name__} does not implement: {', '.join(left)}"

    def test_structure_capabilities_are_a_set_of_capability(self) -> None:
        """``capabilities`` is a frozenset of :class:`Capability` (the engine tests membership)."""
        caps = self.connector_class.capabilities
        assert isinstance(caps, frozenset), "capabilities must be a frozenset"
        strays = [c for c in caps if not isinstance(c, Capability)]
        assert not strays, f"not Capability members: {strays!r}"

    def test_structure_declared_capabilities_are_implemented(self) -> None:
        """Every declared capability's methods are overridden, not the base class's raiser."""
        check_capabilities_implemented(self.connector_class)

    def test_structure_passes_the_registry_load_check(self) -> None:
        """What ``crm-bridge`` checks when it loads the connector from its entry point."""
        problem = contract_problem(self.connector_class)
        assert problem is None, f"{self.connector_class.__name__} {problem}"

    def test_structure_entry_point_loads_the_class(self) -> None:
        """The registered entry point imports this very class."""
        if self.entry_point is None:
            pytest.skip("set entry_point = '<name>' to check the crm_bridge.connectors entry point")
        loaded = load_connector(self.entry_point)
        assert loaded is self.connector_class, (
            f"entry point {self.entry_point!r} loads {loaded.__module__}.{loaded.__qualname__}, "
            f"not {self.connector_class.__module__}.{self.connector_class.__qualname__}"
        )

    # -- declarations of a live instance --------------------------------------------------------

    def test_check_answers_who_we_are(self, connector: Connector[Any]) -> None:
        """``check()`` is one authenticated call answering a description, not None."""
        answer = connector.check()
        assert isinstance(answer, str) and answer.strip(), f"check() answered {answer!r}"

    def test_object_spec_is_consistent(self, connector: Connector[Any]) -> None:
        """The tested object is served, and its declaration agrees with the capabilities."""
        spec = connector.object_spec(self.object_name)
        caps = connector.capabilities
        assert isinstance(spec, ObjectSpec) and spec.name == self.object_name
        assert isinstance(spec.ordering, Ordering), f"ordering is {spec.ordering!r}"
        assert spec.max_batch >= 1, f"max_batch is {spec.max_batch}"
        assert spec.max_concurrent_writes >= 1, (
            f"max_concurrent_writes {spec.max_concurrent_writes}"
        )
        if Capability.BATCH_UPSERT in caps:
            assert spec.max_batch > 1, "Capability.BATCH_UPSERT is declared but max_batch is 1"
        else:
            assert spec.max_batch == 1, (
                f"max_batch is {spec.max_batch} but Capability.BATCH_UPSERT is not declared: "
                "declare it, or announce max_batch=1"
            )
        if Capability.UPSERT_BY_IDENTITY in caps:
            assert spec.identity_fields, (
                f"Capability.UPSERT_BY_IDENTITY is declared but {self.object_name!r} has no "
                "identity_fields to match on"
            )
        sample = self.sample_record(0)
        absent = [f for f in spec.identity_fields if f not in sample]
        assert not absent, f"sample_record(n) must set the identity fields {absent}"

    # -- the change stream ----------------------------------------------------------------------

    def test_changes_pages_lazily_and_yields_every_record_once(
        self, connector: Connector[Any], driver: BackendDriver
    ) -> None:
        """A stream of more than two pages is fetched page by page, each record exactly once."""
        size = self.page_size
        if size is None:
            pytest.skip("set page_size to the page size the connector fixture configures")
        count = 2 * size + 1
        seeded = driver.create_many(self.object_name, [self.sample_record(i) for i in range(count)])
        assert len(set(seeded)) == count, "the driver's create_many returned duplicate ids"
        before = _calls(connector)
        stream = connector.changes(self.object_name, None)
        assert isinstance(stream, Iterator), "changes() must return an iterator (a generator)"
        first = next(stream, None)
        assert first is not None, "changes() yielded nothing although records exist"
        after_first = _calls(connector)
        records = [first, *stream]
        after_all = _calls(connector)
        assert after_first > before, "count every API call in connector.calls[family]"
        pages = math.ceil(count / size)
        assert after_all - after_first >= pages - 1, (
            f"{count} records in pages of {size} should cost {pages - 1} more calls after the "
            f"first record, not {after_all - after_first}: changes() must fetch page by page "
            "(a generator), never the whole stream before yielding"
        )
        mine = [r.id for r in records if r.id in set(seeded)]
        duplicates = sorted({i for i in mine if mine.count(i) > 1})
        assert not duplicates, f"yielded more than once: {duplicates[:5]}"
        missing = sorted(set(seeded) - set(mine))
        assert not missing, f"{len(missing)} records never came: {missing[:5]}"
        for record in records:
            _assert_well_formed(record, self.object_name)

    def test_changes_ascend_by_modified_at(
        self, connector: Connector[Any], driver: BackendDriver
    ) -> None:
        """With ``Ordering.ASCENDING`` the stream ascends by modified_at, an edit moving a record last.

        The engine stops reading an ascending stream at the first record past what it can take,
        so an out-of-order record would be skipped for good.  An id-ordered stream fails here:
        the oldest record, edited last, must come after the others.
        """
        obj = self.object_name
        first, second, third = (self._create_apart(driver, n) for n in range(3))
        driver.edit(obj, first, self._edit(connector, 0))
        records = list(connector.changes(obj, None))
        by_id = _by_id(records)
        missing = {first, second, third} - set(by_id)
        assert not missing, f"changes() left out {sorted(missing)}"
        if connector.object_spec(obj).ordering is not Ordering.ASCENDING:
            return  # an unsorted stream promises every record, nothing about their order
        stamps = [r.modified_at for r in records]
        for index, (a, b) in enumerate(itertools.pairwise(stamps)):
            assert a <= b, (
                f"Ordering.ASCENDING is declared but record {records[index + 1].id} "
                f"({b.isoformat()}) comes after {records[index].id} ({a.isoformat()})"
            )
        assert by_id[first].modified_at >= by_id[third].modified_at, (
            "a person's edit did not move modified_at past records created before it"
        )

    def test_since_is_inclusive(self, connector: Connector[Any], driver: BackendDriver) -> None:
        """``changes(since=t)`` includes the records modified exactly at ``t``."""
        obj = self.object_name
        ids = [self._create_apart(driver, n) for n in range(3)]
        everything = _by_id(connector.changes(obj, None))
        cut = everything[ids[1]].modified_at
        later = _by_id(connector.changes(obj, cut))
        assert ids[1] in later, (
            f"record {ids[1]} was modified exactly at since={cut.isoformat()} and must be "
            "included (since is inclusive: >=, not >)"
        )
        expected = {rid for rid, r in everything.items() if r.modified_at >= cut}
        assert expected <= set(later), f"left out records after since: {expected - set(later)}"

    def test_incremental_since_filters_old_records(
        self, connector: Connector[Any], driver: BackendDriver
    ) -> None:
        """With ``Capability.INCREMENTAL`` a record modified well before ``since`` is left out."""
        self._require(connector, Capability.INCREMENTAL)
        obj = self.object_name
        old = driver.create(obj, self.sample_record(0))
        gap = 2 * self.since_granularity.total_seconds() + 60
        self._optional("INCREMENTAL filtering", lambda: driver.advance(gap))
        new = driver.create(obj, self.sample_record(1))
        cut = self._read(connector, new).modified_at
        got = _by_id(connector.changes(obj, cut))
        assert new in got, "the record modified at since is missing"
        assert old not in got, (
            f"Capability.INCREMENTAL is declared but changes(since) returned a record modified "
            f"{gap:.0f}s before since: the filter must run server-side"
        )

    def test_a_persons_edit_moves_version_and_modified_at(
        self, connector: Connector[Any], driver: BackendDriver
    ) -> None:
        """The version token changes and modified_at does not go back: the cursor sees the edit."""
        rid = driver.create(self.object_name, self.sample_record(0))
        before = self._read(connector, rid)
        self._tick(driver)
        driver.edit(self.object_name, rid, self._edit(connector, 0))
        after = self._read(connector, rid)
        assert after.version != before.version, f"version stayed {before.version!r} after an edit"
        assert after.modified_at >= before.modified_at, "modified_at went back after an edit"
        seen = _by_id(connector.changes(self.object_name, before.modified_at))
        assert rid in seen and seen[rid].version == after.version, (
            "changes(since=<the record's old modified_at>) does not show the edit"
        )

    # -- reading by id --------------------------------------------------------------------------

    def test_fetch_reads_by_id_and_skips_unknown_ids(
        self, connector: Connector[Any], driver: BackendDriver
    ) -> None:
        """Unknown ids are skipped, not errors; a deleted record is skipped or marked deleted."""
        obj = self.object_name
        a = driver.create(obj, self.sample_record(0))
        b = driver.create(obj, self.sample_record(1))
        gone = driver.create(obj, self.sample_record(2))
        driver.delete(obj, gone)
        got = list(connector.fetch(obj, [a, self.unknown_id, b, gone]))
        live = sorted(r.id for r in got if not r.deleted)
        assert live == sorted([a, b]), f"fetch returned live records {live}, expected {[a, b]}"
        for record in got:
            _assert_well_formed(record, obj)
        spec = connector.object_spec(obj)
        by_id = _by_id(got)
        for n, rid in ((0, a), (1, b)):
            for name in spec.identity_fields:
                wanted = str(self.sample_record(n)[name]).casefold()
                value = str(by_id[rid].fields.get(name, "")).casefold()
                assert value == wanted, f"{rid}.{name} reads {value!r}, written {wanted!r}"

    # -- writing --------------------------------------------------------------------------------

    def test_write_answers_every_op_in_order_and_refusals_are_results(
        self, connector: Connector[Any], driver: BackendDriver
    ) -> None:
        """One result per op, in input order; a refused record is a failed result, not raised."""
        obj = self.object_name
        existing = driver.create(obj, self.sample_record(0))
        gone = driver.create(obj, self.sample_record(1))
        driver.delete(obj, gone)
        ops: list[WriteOp] = [
            Upsert("create", self.sample_record(2)),
            Upsert("update-gone", self._edit(connector, 1), id=gone),
            Upsert("update", self._edit(connector, 0), id=existing),
        ]
        invalid = self.invalid_record(3)
        if invalid is not None:
            ops.insert(2, Upsert("invalid", invalid))
        results = connector.write(obj, ops)
        assert [r.key for r in results] == [op.key for op in ops], (
            f"results {[r.key for r in results]} do not answer ops {[op.key for op in ops]} in order"
        )
        by_key = {r.key: r for r in results}
        created, updated = by_key["create"], by_key["update"]
        assert created.ok and created.id and created.created, f"the create failed: {created}"
        assert updated.ok and updated.id == existing and not updated.created, f"{updated}"
        refused = [by_key["update-gone"], *([by_key["invalid"]] if invalid else [])]
        for result in refused:
            assert not result.ok and result.error, (
                f"{result.key}: the vendor cannot accept this write, so it must be a failed "
                f"WriteResult with the vendor's message, got {result}"
            )
        landed = {r.id for r in connector.fetch(obj, [created.id, existing]) if not r.deleted}
        assert landed == {created.id, existing}, "the accepted writes did not land"
        assert connector.write(obj, []) == [], "an empty write answers []"

    def test_a_write_of_max_batch_ops_succeeds(self, connector: Connector[Any]) -> None:
        """A full batch works; with ``BATCH_UPSERT`` it costs fewer calls than one per record."""
        obj = self.object_name
        spec = connector.object_spec(obj)
        size = spec.max_batch
        if size > self.max_batch_limit:
            pytest.skip(
                f"max_batch {size} is above max_batch_limit {self.max_batch_limit}: configure "
                "the fixture's connector with a smaller batch (or raise the limit)"
            )
        _ok(connector.write(obj, [Upsert("warm-up", self.sample_record(0))]))  # tokens, metadata
        before = _calls(connector)
        _ok(connector.write(obj, [Upsert("one", self.sample_record(1))]))
        one = _calls(connector) - before
        ops = [Upsert(f"k{i}", self.sample_record(i + 2)) for i in range(size)]
        before = _calls(connector)
        results = connector.write(obj, ops)
        spent = _calls(connector) - before
        assert [r.key for r in results] == [op.key for op in ops], "results out of input order"
        _ok(results)
        assert len({r.id for r in results}) == size, "a batch of creates answered repeated ids"
        if Capability.BATCH_UPSERT in connector.capabilities and size > 1:
            assert spent < size * max(one, 1), (
                f"Capability.BATCH_UPSERT is declared but {size} records cost {spent} calls, "
                f"one record {one}: batching saves nothing"
            )

    def test_the_same_update_twice_changes_one_record(
        self, connector: Connector[Any], driver: BackendDriver
    ) -> None:
        """An update by id applied twice (a retried cycle) creates nothing."""
        obj = self.object_name
        rid = driver.create(obj, self.sample_record(0))
        before = _live_ids(connector, obj)
        op = Upsert("again", self._edit(connector, 0), id=rid)
        for attempt in (1, 2):
            (result,) = connector.write(obj, [op])
            assert result.ok and result.id == rid and not result.created, (
                f"write {attempt}: {result}"
            )
        assert _live_ids(connector, obj) == before, "updating by id created a record"

    def test_upsert_by_identity_twice_is_one_record(
        self, connector: Connector[Any], driver: BackendDriver
    ) -> None:
        """With ``UPSERT_BY_IDENTITY`` the same upsert twice finds-or-creates one record."""
        self._require(connector, Capability.UPSERT_BY_IDENTITY)
        obj = self.object_name
        spec = connector.object_spec(obj)
        assert spec.identity_fields, f"{obj!r} declares no identity_fields to match on"
        name = spec.identity_fields[0]
        fields = self.sample_record(0)
        value = str(fields[name])
        before = _live_ids(connector, obj)
        (first,) = connector.write(obj, [Upsert("a", fields, match_on=name)])
        (second,) = connector.write(obj, [Upsert("b", fields, match_on=name)])
        (third,) = connector.write(
            obj, [Upsert("c", {**fields, name: value.upper()}, match_on=name)]
        )
        assert first.ok and first.created, f"the first upsert did not create: {first}"
        for again in (second, third):
            assert again.ok and again.id == first.id and not again.created, (
                f"upsert {again.key!r} by {name} (matched case-insensitively) did not find "
                f"{first.id}: {again}"
            )
        assert _live_ids(connector, obj) - before == {first.id}, "the upserts duplicated a record"
        persons = driver.create(obj, self.sample_record(1))
        (found,) = connector.write(obj, [Upsert("p", self.sample_record(1), match_on=name)])
        assert found.ok and found.id == persons and not found.created, (
            f"an upsert by {name} did not find the record a person created: {found}"
        )

    def test_modified_by_tells_own_writes_from_a_persons(
        self, connector: Connector[Any], driver: BackendDriver
    ) -> None:
        """Own writes carry ``integration_user_id``; a person's edit carries someone else."""
        if not self.reports_modified_by:
            pytest.skip("reports_modified_by = False: the vendor names no last writer")
        obj = self.object_name
        ours = connector.integration_user_id
        (created,) = _ok(connector.write(obj, [Upsert("own", self.sample_record(0))]))
        assert created.id is not None
        rid = created.id
        mine = self._read(connector, rid)
        assert mine.modified_by == ours, (
            f"a record this connector wrote reads modified_by={mine.modified_by!r}, but "
            f"integration_user_id is {ours!r}: override Connector.integration_user_id"
        )
        self._tick(driver)
        driver.edit(obj, rid, self._edit(connector, 0))
        theirs = self._read(connector, rid)
        assert theirs.modified_by != ours, (
            f"a person's edit reads modified_by={theirs.modified_by!r}, the integration's own "
            "id: their edits could not be told from ours"
        )
        streamed = _by_id(connector.changes(obj, None))[rid]
        assert streamed.modified_by == theirs.modified_by, "changes() and fetch() disagree"
        self._tick(driver)
        _ok(connector.write(obj, [Upsert("own-again", self._edit(connector, 1), id=rid)]))
        assert self._read(connector, rid).modified_by == ours, "our write over a person's edit"

    # -- deletes and merges ---------------------------------------------------------------------

    def test_a_persons_delete_comes_through_the_change_stream(
        self, connector: Connector[Any], driver: BackendDriver
    ) -> None:
        """A deletion is a record with ``deleted=True``, modified at or after its last edit."""
        caps = connector.capabilities
        if not caps & {Capability.ARCHIVE, Capability.HARD_DELETE}:
            pytest.skip("declares neither Capability.ARCHIVE nor Capability.HARD_DELETE")
        obj = self.object_name
        keep = driver.create(obj, self.sample_record(0))
        gone = driver.create(obj, self.sample_record(1))
        last_edit = self._read(connector, gone).modified_at
        self._tick(driver)
        driver.delete(obj, gone)
        records = _by_id(connector.changes(obj, last_edit))
        assert gone in records, (
            f"a deletion of {gone} is missing from changes(since=<its last edit>): deletes must "
            "come in the stream, stamped at or after the deletion"
        )
        assert records[gone].deleted, f"{gone} was deleted but reads deleted=False"
        assert records[gone].modified_at >= last_edit
        assert keep not in records or not records[keep].deleted, "the untouched record is deleted"

    def test_archive_delete(self, connector: Connector[Any], driver: BackendDriver) -> None:
        """``Delete(mode="archive")`` works, shows in the stream, and repeating it is harmless."""
        self._require(connector, Capability.ARCHIVE)
        obj = self.object_name
        rid = driver.create(obj, self.sample_record(0))
        _ok(connector.write(obj, [Delete("archive", rid, mode="archive")]))
        records = _by_id(connector.changes(obj, None))
        assert rid in records and records[rid].deleted, "an archived record must read deleted"
        (again,) = connector.write(obj, [Delete("again", rid, mode="archive")])
        assert again.ok or again.error_code in ALREADY_GONE_CODES, (
            f"deleting a deleted record must succeed or fail with one of "
            f"{sorted(ALREADY_GONE_CODES)} (so a re-run counts it done), got {again}"
        )

    def test_hard_delete(self, connector: Connector[Any], driver: BackendDriver) -> None:
        """``Delete(mode="hard")`` works and the record is gone from reads by id."""
        self._require(connector, Capability.HARD_DELETE)
        obj = self.object_name
        rid = driver.create(obj, self.sample_record(0))
        _ok(connector.write(obj, [Delete("hard", rid, mode="hard")]))
        live = [r.id for r in connector.fetch(obj, [rid]) if not r.deleted]
        assert not live, f"{rid} still reads as a live record after a hard delete"

    def test_an_undeclared_delete_mode_is_a_failed_result(
        self, connector: Connector[Any], driver: BackendDriver
    ) -> None:
        """A delete mode whose capability is not declared is refused per op, nothing deleted."""
        caps = connector.capabilities
        modes = [mode for mode, capability in _DELETE_MODES if capability not in caps]
        if not modes:
            pytest.skip("both delete modes are declared")
        obj = self.object_name
        rid = driver.create(obj, self.sample_record(0))
        ops: list[WriteOp] = [Delete(f"delete-{m}", rid, mode=m) for m in modes]
        results = connector.write(obj, ops)
        assert [r.key for r in results] == [op.key for op in ops]
        for result in results:
            assert not result.ok and result.error, f"{result.key} must be a failed result"
        (record,) = connector.fetch(obj, [rid])
        assert not record.deleted, "a refused delete deleted the record"

    def test_merges_come_through_the_change_stream(
        self, connector: Connector[Any], driver: BackendDriver
    ) -> None:
        """With ``MERGE_FEED`` a merge reads as ``merged_into`` on the loser or ``merged_from``."""
        self._require(connector, Capability.MERGE_FEED)
        obj = self.object_name
        winner = driver.create(obj, self.sample_record(0))
        loser = driver.create(obj, self.sample_record(1))
        self._tick(driver)
        self._optional("MERGE_FEED", lambda: driver.merge(obj, winner, loser))
        records = _by_id(connector.changes(obj, None))
        lost, kept = records.get(loser), records.get(winner)
        via_loser = lost is not None and lost.merged_into == winner
        via_winner = kept is not None and loser in kept.merged_from
        assert via_loser or via_winner, (
            f"Capability.MERGE_FEED is declared but the stream shows neither "
            f"{loser}.merged_into == {winner} nor {loser} in {winner}.merged_from"
        )
        if lost is not None:
            assert lost.deleted or lost.merged_into, "the merge loser still reads as live"
        assert kept is None or not kept.deleted, "the merge survivor reads as deleted"

    # -- whole-call failures --------------------------------------------------------------------

    def test_rate_limiting_raises_rate_limited_error(
        self, connector: Connector[Any], driver: BackendDriver
    ) -> None:
        """A vendor that keeps answering 429 gives :class:`RateLimitedError` (engine backs off)."""
        connector.check()
        self._optional("rate-limit mapping", driver.inject_rate_limit)
        with pytest.raises(RateLimitedError):
            connector.check()
        with pytest.raises(RateLimitedError):
            list(connector.changes(self.object_name, None))

    def test_refused_credentials_raise_auth_error(
        self, connector: Connector[Any], driver: BackendDriver
    ) -> None:
        """A revoked token gives :class:`AuthError` (a human must act), not a retryable error."""
        connector.check()
        self._optional("auth-error mapping", driver.inject_auth_failure)
        with pytest.raises(AuthError):
            connector.check()
        with pytest.raises(AuthError):
            list(connector.changes(self.object_name, None))

    # -- optional capabilities, called for real -------------------------------------------------

    def test_capability_owners_answers(self, connector: Connector[Any]) -> None:
        """``owners()`` lists :class:`Owner` values, each with an id."""
        with self._declared(connector, Capability.OWNERS):
            owners = list(connector.owners())
            assert all(isinstance(o, Owner) and o.id for o in owners), owners[:3]

    def test_capability_activities_answers(
        self, connector: Connector[Any], driver: BackendDriver
    ) -> None:
        """``activities()`` answers for a record (no touches logged yet: possibly none)."""
        with self._declared(connector, Capability.ACTIVITIES):
            rid = driver.create(self.object_name, self.sample_record(0))
            found = list(connector.activities(self.object_name, [rid], None))
            assert all(isinstance(a, Activity) and a.record_id == rid for a in found), found[:3]

    def test_capability_tasks_answers(
        self, connector: Connector[Any], driver: BackendDriver
    ) -> None:
        """``create_task()`` and ``create_tasks()`` create a task on a record and answer its id."""
        with self._declared(connector, Capability.TASKS):
            obj = self.object_name
            rid = driver.create(obj, self.sample_record(0))
            owner = None
            if Capability.OWNERS in connector.capabilities:
                owner = next((o.id for o in connector.owners() if o.active), None)
            task_id = connector.create_task(
                obj, rid, owner_id=owner, subject="crm-bridge conformance kit"
            )
            assert isinstance(task_id, str) and task_id, f"create_task answered {task_id!r}"
            task: NewTask = {
                "record_id": rid,
                "owner_id": owner,
                "subject": "conformance kit batch",
            }
            ids = connector.create_tasks(obj, [task, task])
            assert len(ids) == 2 and all(ids) and ids[0] != ids[1], f"create_tasks answered {ids}"

    def test_capability_relations_answers(self, connector: Connector[Any]) -> None:
        """``related()`` answers a mapping for the configured ``relation``."""
        with self._declared(connector, Capability.RELATIONS):
            if self.relation is None:
                pytest.skip("set relation = (obj, to_obj) to probe related()")
            source, target = self.relation
            assert connector.related(source, [], target) == {}, "no ids must answer {}"

    def test_capability_picklist_admin_answers(self, connector: Connector[Any]) -> None:
        """``field_definition()`` answers ``None`` for a field that does not exist."""
        with self._declared(connector, Capability.PICKLIST_ADMIN):
            found = connector.field_definition(self.object_name, self.missing_field)
            assert found is None, f"field_definition of a missing field answered {found!r}"

    def test_capability_lists_round_trip(
        self, connector: Connector[Any], driver: BackendDriver
    ) -> None:
        """A static list is found again by name, and members are added and removed."""
        with self._declared(connector, Capability.LISTS):
            obj = self.object_name
            rid = driver.create(obj, self.sample_record(0))
            list_id = connector.ensure_list("crm-bridge conformance kit", obj)
            assert connector.ensure_list("crm-bridge conformance kit", obj) == list_id, (
                "ensure_list must find the list it created, not create another"
            )
            connector.add_to_list(list_id, [rid])
            assert rid in set(connector.list_members(list_id)), "the added record is not a member"
            connector.remove_from_list(list_id, [rid])
            assert rid not in set(connector.list_members(list_id)), "the removed record is a member"

    # -- helpers --------------------------------------------------------------------------------

    def _require(self, connector: Connector[Any], capability: Capability) -> None:
        if capability not in connector.capabilities:
            pytest.skip(f"Capability.{capability.name} is not declared")

    @contextlib.contextmanager
    def _declared(self, connector: Connector[Any], capability: Capability) -> Iterator[None]:
        """Skip unless ``capability`` is declared; then a ``NotImplementedError`` is a failure."""
        self._require(connector, capability)
        try:
            yield
        except DriverUnsupported:
            raise
        except NotImplementedError as exc:
            pytest.fail(
                f"Capability.{capability.name} is declared, but calling it raised "
                f"NotImplementedError: {exc}"
            )

    def _optional(self, what: str, call: Callable[[], T]) -> T:
        """Run a driver hook; skip the test, naming the hook, when the author left it out."""
        try:
            return call()
        except DriverUnsupported as exc:
            pytest.skip(f"the backend driver does not implement {exc}: {what} is untested")

    def _tick(self, driver: BackendDriver) -> None:
        """Move the backend's clock a little, when it can be moved, so stamps differ."""
        with contextlib.suppress(DriverUnsupported):
            driver.advance(_TICK_SECONDS)

    def _create_apart(self, driver: BackendDriver, n: int) -> str:
        record_id = driver.create(self.object_name, self.sample_record(n))
        self._tick(driver)
        return record_id

    def _edit(self, connector: Connector[Any], n: int) -> dict[str, Any]:
        fields = self.edited_fields(n)
        if fields is not None:
            return fields
        identity = set(connector.object_spec(self.object_name).identity_fields)
        return {k: v for k, v in self.sample_record(n + 100_000).items() if k not in identity}

    def _read(self, connector: Connector[Any], record_id: str) -> Record:
        found = list(connector.fetch(self.object_name, [record_id]))
        assert [r.id for r in found] == [record_id], f"fetch([{record_id!r}]) answered {found}"
        return found[0]


def _calls(connector: Connector[Any]) -> int:
    return sum(connector.calls.values())


def _by_id(records: Iterable[Record]) -> dict[str, Record]:
    """Records by id; a record seen twice (an overlapping page) keeps its last version."""
    return {r.id: r for r in records}


def _live_ids(connector: Connector[Any], obj: str) -> set[str]:
    return {r.id for r in connector.changes(obj, None) if not r.deleted and not r.merged_into}


def _ok(results: Sequence[WriteResult]) -> Sequence[WriteResult]:
    failed = [r for r in results if not r.ok]
    assert not failed, f"{len(failed)} writes failed, e.g. {failed[:3]}"
    return results


def _assert_well_formed(record: Record, obj: str) -> None:
    """The fields of a Record the engine and the store rely on."""
    assert isinstance(record, Record), f"not a Record: {record!r}"
    assert record.object == obj, f"{record.id}: object is {record.object!r}, not {obj!r}"
    assert isinstance(record.id, str) and record.id, f"bad id {record.id!r}"
    assert isinstance(record.version, str) and record.version, f"{record.id}: empty version"
    assert (
        isinstance(record.modified_at, datetime) and record.modified_at.utcoffset() is not None
    ), f"{record.id}: modified_at must be a timezone-aware datetime, got {record.modified_at!r}"
    assert isinstance(record.fields, Mapping), f"{record.id}: fields is not a mapping"
    assert record.merged_into != record.id, f"{record.id} is merged into itself"
