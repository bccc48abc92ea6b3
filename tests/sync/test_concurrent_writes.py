"""Write batches in flight at once: bounded, all recorded, stoppable, failures surface."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from crm_bridge.connector import ObjectSpec, WriteOp, WriteResult
from crm_bridge.connectors.example_memory import MemoryConnector, MemorySettings
from crm_bridge.errors import TransientError
from tests.sync.conftest import World


class ThreadedConnector(MemoryConnector):
    """A thread-safe memory connector that lets ``workers`` batches overlap and counts them."""

    def __init__(self, *args: object, workers: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.workers = workers
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.gate = threading.Barrier(workers, timeout=5)
        self.fail_on_batch: int | None = None
        self.on_batch: Callable[[int], None] = lambda number: None
        self.batches = 0

    def objects(self) -> Sequence[ObjectSpec]:
        return [
            dataclasses.replace(spec, max_concurrent_writes=self.workers)
            for spec in super().objects()
        ]

    def write(self, obj: str, ops: Sequence[WriteOp]) -> list[WriteResult]:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.batches += 1
            number = self.batches
        try:
            self.on_batch(number)
            if number <= self.workers:
                self.gate.wait()  # the first `workers` batches meet: they really overlap
            if number == self.fail_on_batch:
                raise TransientError("connection reset by peer")
            with self.lock:
                return super().write(obj, ops)
        finally:
            with self.lock:
                self.in_flight -= 1


def _world(tmp_path: Path, workers: int) -> tuple[World, ThreadedConnector]:
    w = World(tmp_path)
    conn = ThreadedConnector(
        MemorySettings(objects=["contacts"], max_batch=2),
        name="map",
        backend=w.map,
        workers=workers,
    )
    w.map_conn = conn
    w.runner = w.new_runner()
    return w, conn


def test_batches_overlap_up_to_the_limit_and_every_outcome_is_recorded(tmp_path: Path) -> None:
    w, conn = _world(tmp_path, workers=3)
    for i in range(13):
        w.crm.create("contacts", {"email": f"p{i}@x.io", "name": f"P{i}"})
    report = w.sync()
    assert conn.peak == 3 and conn.batches == 7  # 13 creates in batches of 2
    assert report.counts["created"] == 13
    with w.store.transaction(readonly=True) as tx:
        links = list(tx.iter_links("p", "people"))
        assert tx.pending_links("p", "people") == []
    assert len(links) == 13 and all(link.map_id in w.people("map") for link in links)
    w.sync()
    writes = w.map.writes
    w.sync()
    assert w.map.writes == writes  # nothing left to write: zero echo writes
    w.store.close()


def test_a_failing_batch_surfaces_after_the_others_land_and_a_rerun_completes(
    tmp_path: Path,
) -> None:
    w, conn = _world(tmp_path, workers=2)
    conn.fail_on_batch = 2
    for i in range(8):
        w.crm.create("contacts", {"email": f"p{i}@x.io", "name": f"P{i}"})
    with pytest.raises(TransientError):
        w.sync()
    assert 0 < len(w.people("map")) < 8  # the batch beside the failed one landed
    conn.fail_on_batch = None
    w.runner = w.new_runner()
    w.sync()
    w.sync()
    assert len(w.people("map")) == 8  # no duplicates, nothing lost
    with w.store.transaction(readonly=True) as tx:
        assert tx.count_links("p", "people") == 8
    w.store.close()


def test_a_stop_request_lets_the_batches_in_flight_finish(tmp_path: Path) -> None:
    w, conn = _world(tmp_path, workers=2)
    for i in range(10):
        w.crm.create("contacts", {"email": f"p{i}@x.io", "name": f"P{i}"})
    conn.on_batch = lambda number: w.runner.request_stop() if number == 2 else None
    w.sync()
    assert conn.batches == 2 and len(w.people("map")) == 4
    with w.store.transaction(readonly=True) as tx:
        assert tx.count_links("p", "people") == 4  # both finished batches were recorded
    conn.on_batch = lambda number: None
    w.runner = w.new_runner()
    w.sync()
    assert len(w.people("map")) == 10
    w.store.close()
