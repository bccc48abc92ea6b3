"""A feature job runs at most once per interval, even when two copies of it were queued."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import pytest

from crm_bridge.errors import CrmBridgeError
from crm_bridge.store import Store
from crm_bridge.workers.features import FeatureJobs

pytestmark = pytest.mark.postgres

START = dt.datetime(2026, 12, 8, 9, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.at = START

    def __call__(self) -> dt.datetime:
        return self.at


@pytest.fixture
def store(pg_schema: Callable[[], str]) -> Iterator[Store]:
    opened = Store.open(pg_schema())
    yield opened
    opened.close()


def _jobs(store: Store, job: Callable[[], str], clock: Clock) -> FeatureJobs:
    jobs = FeatureJobs(store, {"reasons": job}, worker="w1", interval=60.0, lock_wait=5.0)
    jobs.runs.now = clock
    return jobs


def test_a_late_second_copy_skips_itself_until_an_interval_has_passed(store: Store) -> None:
    """The race in scheduling: a copy deferred while the first ran, due at once, runs after it."""
    calls: list[dt.datetime] = []
    clock = Clock()
    jobs = _jobs(store, lambda: calls.append(clock.at) or "read=1", clock)
    assert jobs.run("reasons") == "read=1"
    clock.at += dt.timedelta(seconds=1)
    assert jobs.run("reasons").startswith("skipped: the last run started 1.0 s ago")
    assert calls == [START] and len(jobs.runs.history("reasons")) == 1
    clock.at = START + dt.timedelta(seconds=60)
    assert jobs.run("reasons") == "read=1"
    assert calls == [START, clock.at] and len(jobs.runs.history("reasons")) == 2


def test_a_failed_run_does_not_hold_its_retry_back(store: Store) -> None:
    clock = Clock()
    outcomes = iter([CrmBridgeError("HubSpot said 503"), "read=2"])

    def job() -> str:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    jobs = _jobs(store, job, clock)
    with pytest.raises(CrmBridgeError, match="503"):
        jobs.run("reasons")
    clock.at += dt.timedelta(seconds=5)  # the queue's retry backoff, well inside the interval
    assert jobs.run("reasons") == "read=2"
    assert [r["status"] for r in jobs.runs.history("reasons")] == ["failed", "ok"]
