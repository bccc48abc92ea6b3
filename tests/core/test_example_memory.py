"""The worked example honours the connector contract: the conformance kit, run on it.

This is also the shortest complete example of a kit subclass: a backend driver over the fake's
backend (a person's edits, deletes and merges, its clock, a rotated token and throttling), the
fixtures, the tested object and a record factory.  What stays hand-written below is what only
the fake has (validation rules, its clock, the kit's own failure modes).
"""

from __future__ import annotations

import importlib.metadata
import textwrap
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from crm_bridge.connector import Capability, Connector, Upsert
from crm_bridge.connectors.example_memory import (
    MemoryBackend,
    MemoryConnector,
    MemorySettings,
    TickingClock,
)
from crm_bridge.errors import RateLimitedError
from crm_bridge.testing import BackendDriver, ConnectorContract, check_capabilities_implemented

pytest_plugins = ["pytester"]

TOKEN = "kit-token"


class MemoryDriver(BackendDriver):
    """The kit's hands on a :class:`MemoryBackend`: what a person does in the vendor's UI."""

    def __init__(self, backend: MemoryBackend, clock: TickingClock) -> None:
        self.backend = backend
        self.clock = clock

    def create(self, obj: str, fields: Mapping[str, Any]) -> str:
        return self.backend.create(obj, dict(fields))

    def edit(self, obj: str, record_id: str, fields: Mapping[str, Any]) -> None:
        self.backend.human_edit(obj, record_id, dict(fields))

    def delete(self, obj: str, record_id: str) -> None:
        self.backend.delete(obj, record_id)

    def merge(self, obj: str, winner: str, loser: str) -> None:
        self.backend.merge(obj, winner, loser)

    def advance(self, seconds: float) -> None:
        self.clock.advance(timedelta(seconds=seconds))

    def inject_rate_limit(self) -> None:
        self.backend.throttle(retry_after=30.0)

    def inject_auth_failure(self) -> None:
        self.backend.token = "rotated-in-the-ui"  # the connector still presents TOKEN


class TestMemoryConformance(ConnectorContract):
    connector_class = MemoryConnector
    entry_point = "example_memory"
    object_name = "contacts"
    page_size = 3
    unknown_id = "m999999"

    @pytest.fixture
    def clock(self) -> TickingClock:
        return TickingClock()

    @pytest.fixture
    def backend(self, clock: TickingClock) -> MemoryBackend:
        return MemoryBackend(clock=clock)

    def settings(self) -> MemorySettings:
        return MemorySettings(
            page_size=self.page_size or 1, max_batch=10, api_token=SecretStr(TOKEN)
        )

    @pytest.fixture
    def connector(self, backend: MemoryBackend) -> Iterator[MemoryConnector]:
        with MemoryConnector(self.settings(), name="mem", backend=backend) as conn:
            yield conn

    @pytest.fixture
    def driver(self, backend: MemoryBackend, clock: TickingClock) -> MemoryDriver:
        return MemoryDriver(backend, clock)

    def sample_record(self, n: int) -> dict[str, Any]:
        return {"email": f"kit{n}@example.com", "title": f"Title {n}"}

    def invalid_record(self, n: int) -> dict[str, Any]:
        return {"email": f"not-an-email-{n}"}


class TestUnsortedMemoryConformance(TestMemoryConformance):
    """The same kit on a stream that declares ``Ordering.UNSORTED`` (served newest first)."""

    def settings(self) -> MemorySettings:
        return super().settings().model_copy(update={"unsorted": True})


# -- what only the fake has -----------------------------------------------------------------------


def test_reject_rules_refuse_only_the_records_they_match() -> None:
    conn = MemoryConnector(MemorySettings(max_batch=10), name="mem")
    conn.backend.reject_when(lambda obj, f: "no students" if f.get("title") == "student" else None)
    results = conn.write(
        "contacts",
        [
            Upsert(key="a", fields={"email": "a@x.io", "title": "cto"}),
            Upsert(key="c", fields={"email": "c@x.io", "title": "student"}),
        ],
    )
    assert [(r.key, r.ok, r.error) for r in results] == [
        ("a", True, None),
        ("c", False, "no students"),
    ]
    assert results[1].error_code == "VALIDATION_ERROR"
    assert list(conn.backend.live("contacts").values()) == [{"email": "a@x.io", "title": "cto"}]


def test_throttling_carries_retry_after_and_lifts() -> None:
    conn = MemoryConnector(MemorySettings(), name="mem")
    conn.backend.throttle(retry_after=12.5)
    with pytest.raises(RateLimitedError) as info:
        list(conn.fetch("contacts", ["m1"]))
    assert info.value.retry_after == 12.5 and info.value.connector == "mem"
    conn.backend.throttle(None)
    assert conn.check().startswith("in-memory backend")


def test_ticking_clock_moves_per_call_and_jumps() -> None:
    backend = MemoryBackend()
    a = backend.create("deals", {})
    backend.clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
    b = backend.create("deals", {})
    ra, rb = backend.to_record("deals", a), backend.to_record("deals", b)
    assert rb.modified_at - ra.modified_at > timedelta(minutes=59)


# -- the kit fails a capability that is declared but not implemented ---------------------------


class ListsInName(MemoryConnector):
    """Declares static lists, implements none of their four methods."""

    capabilities = MemoryConnector.capabilities | {Capability.LISTS}


class OwnersAssignedBack(MemoryConnector):
    """Declares OWNERS but puts the base class's raiser back (a subtler slip)."""

    owners = Connector.owners


def test_the_kit_check_names_each_unimplemented_capability() -> None:
    check_capabilities_implemented(MemoryConnector)  # the real one passes
    with pytest.raises(AssertionError, match=r"Capability\.LISTS is declared but ensure_list\(\)"):
        check_capabilities_implemented(ListsInName)
    with pytest.raises(AssertionError, match=r"Capability\.OWNERS is declared but owners\(\) is"):
        check_capabilities_implemented(OwnersAssignedBack)


KIT_ON_MEMORY = """
from datetime import timedelta

import pytest

from crm_bridge.connector import Capability
from crm_bridge.connectors.example_memory import (
    MemoryBackend, MemoryConnector, MemorySettings, TickingClock,
)
from crm_bridge.testing import BackendDriver, ConnectorContract


class Driver(BackendDriver):
    def __init__(self, backend, clock):
        self.backend, self.clock = backend, clock

    def create(self, obj, fields):
        return self.backend.create(obj, dict(fields))

    def edit(self, obj, record_id, fields):
        self.backend.human_edit(obj, record_id, dict(fields))

    def delete(self, obj, record_id):
        self.backend.delete(obj, record_id)

    def advance(self, seconds):
        self.clock.advance(timedelta(seconds=seconds))


class Kit(ConnectorContract):
    object_name = "contacts"
    page_size = 3

    @pytest.fixture
    def clock(self):
        return TickingClock()

    @pytest.fixture
    def backend(self, clock):
        return MemoryBackend(clock=clock)

    @pytest.fixture
    def connector(self, backend):
        settings = MemorySettings(max_batch=10, page_size=self.page_size)
        return self.connector_class(settings, name="kit", backend=backend)

    @pytest.fixture
    def driver(self, backend, clock):
        return Driver(backend, clock)

    def sample_record(self, n):
        return {"email": f"kit{n}@example.com"}

    def invalid_record(self, n):
        return {"email": "not-an-email"}
"""
"""A kit subclass over the memory backend, for running the kit on deliberately broken connectors."""


def _run_kit(pytester: pytest.Pytester, connectors: str) -> pytest.RunResult:
    pytester.makepyfile(test_kit=KIT_ON_MEMORY + textwrap.dedent(connectors))
    return pytester.runpytest("-p", "no:cacheprovider", "-rfs")


def _failed(result: pytest.RunResult) -> set[str]:
    return {
        line.split()[1].split("::", 1)[1]
        for line in result.outlines
        if line.startswith("FAILED ") and "::" in line
    }


def test_running_the_kit_on_a_connector_lacking_a_declared_capability_fails(
    pytester: pytest.Pytester,
) -> None:
    """The whole kit, as an author runs it: the structural checks and the live probe fail."""
    result = _run_kit(
        pytester,
        """
        class Broken(MemoryConnector):
            capabilities = MemoryConnector.capabilities | {Capability.LISTS}


        class TestBroken(Kit):
            connector_class = Broken
        """,
    )
    assert _failed(result) == {
        "TestBroken::test_structure_declared_capabilities_are_implemented",
        "TestBroken::test_structure_passes_the_registry_load_check",
        "TestBroken::test_capability_lists_round_trip",
    }, result.stdout.str()
    result.stdout.fnmatch_lines(
        ["*Capability.LISTS is declared, but calling it raised NotImplementedError*"]
    )
    # everything the memory connector really does still passes; untested claims are skips
    assert result.parseoutcomes()["passed"] >= 20
    result.stdout.fnmatch_lines(["*does not implement merge()*MERGE_FEED is untested*"])


def test_the_kit_fails_connectors_that_break_the_contract(pytester: pytest.Pytester) -> None:
    """Each broken promise fails the kit tests about it, and nothing else."""
    result = _run_kit(
        pytester,
        """
        import dataclasses

        from crm_bridge.errors import TransientError


        class ExclusiveSince(MemoryConnector):
            def changes(self, obj, since):
                return (r for r in super().changes(obj, since) if since is None or r.modified_at > since)


        class IdOrdered(MemoryConnector):  # still declares Ordering.ASCENDING
            def changes(self, obj, since):
                yield from sorted(super().changes(obj, since), key=lambda r: int(r.id[1:]))


        class RaisesOnRefusal(MemoryConnector):
            def write(self, obj, ops):
                results = super().write(obj, ops)
                for result in results:
                    if not result.ok:
                        raise TransientError(result.error or "refused")
                return results


        class OwnWritesLookHuman(MemoryConnector):
            @property
            def integration_user_id(self):
                return "human"


        class HidesDeletes(MemoryConnector):
            def changes(self, obj, since):
                return (r for r in super().changes(obj, since) if not r.deleted)


        class TestExclusiveSince(Kit):
            connector_class = ExclusiveSince


        class TestIdOrdered(Kit):
            connector_class = IdOrdered


        class TestRaisesOnRefusal(Kit):
            connector_class = RaisesOnRefusal


        class TestOwnWritesLookHuman(Kit):
            connector_class = OwnWritesLookHuman


        class TestHidesDeletes(Kit):
            connector_class = HidesDeletes


        class TestHonest(Kit):
            connector_class = MemoryConnector
        """,
    )
    assert _failed(result) == {
        "TestExclusiveSince::test_since_is_inclusive",
        "TestExclusiveSince::test_incremental_since_filters_old_records",
        "TestIdOrdered::test_changes_ascend_by_modified_at",
        "TestIdOrdered::test_changes_pages_lazily_and_yields_every_record_once",  # sorts eagerly
        "TestRaisesOnRefusal::test_write_answers_every_op_in_order_and_refusals_are_results",
        "TestRaisesOnRefusal::test_archive_delete",  # deleting twice refuses, so it raises
        "TestOwnWritesLookHuman::test_modified_by_tells_own_writes_from_a_persons",
        "TestHidesDeletes::test_a_persons_delete_comes_through_the_change_stream",
        "TestHidesDeletes::test_archive_delete",
    }, result.stdout.str()


# -- the pytest plugin --------------------------------------------------------------------------


def _plugin_args() -> list[str]:
    """``-p crm_bridge.testing.plugin`` unless the installed entry point already loads it.

    Loading the module a second time under another name would make pytest refuse it.
    """
    installed = any(
        entry.value == "crm_bridge.testing.plugin"
        for entry in importlib.metadata.entry_points(group="pytest11")
    )
    return [] if installed else ["-p", "crm_bridge.testing.plugin"]


def test_the_plugin_marks_the_kit_tests_conformance(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mixed=textwrap.dedent(
            """
            from crm_bridge.connectors.example_memory import MemoryConnector
            from crm_bridge.testing import ConnectorContract


            class TestKit(ConnectorContract):
                connector_class = MemoryConnector
                object_name = "contacts"


            def test_not_from_the_kit():
                pass
            """
        )
    )
    base = [*_plugin_args(), "-p", "no:cacheprovider", "--strict-markers"]
    kit_only = pytester.runpytest(*base, "-m", "conformance", "-k", "structure")
    kit_only.assert_outcomes(passed=5, skipped=1, deselected=kit_only.parseoutcomes()["deselected"])
    assert "test_not_from_the_kit" not in kit_only.stdout.str()
    others = pytester.runpytest(*base, "-m", "not conformance", "-v")
    others.assert_outcomes(passed=1, deselected=others.parseoutcomes()["deselected"])
    others.stdout.fnmatch_lines(["*test_not_from_the_kit PASSED*"])
