"""The daemon with push channels: hinted cycles between slow safety polls.

Scripted channels over two in-memory connectors (tests/sync/conftest.py) and a fake monotonic
clock that every poll moves on by its timeout, so nothing sleeps.  The vendors' real channels
are tested against their emulators.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crm_bridge.connector import ChangeFeed, ChangeHint, FeedBatch
from crm_bridge.errors import CrmBridgeError
from crm_bridge.store import Side
from crm_bridge.sync.daemon import Daemon
from crm_bridge.sync.push import PairFeeds
from tests.sync.conftest import World

AT = datetime(2026, 1, 1, tzinfo=UTC)


class Monotonic:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class ScriptedFeed(ChangeFeed):
    """A channel that says what ``script`` returns when the clock reaches each step's time."""

    def __init__(
        self, clock: Monotonic, script: list[tuple[float, Callable[[], FeedBatch]]]
    ) -> None:
        self.clock = clock
        self.script = sorted(script, key=lambda step: step[0])
        self.polls = 0
        self.offset = 0
        self.positions: list[str | None] = []
        self.closed = False

    def poll(self, position: str | None, *, timeout: float) -> FeedBatch:
        self.polls += 1
        self.positions.append(position)
        if self.script and self.clock.now >= self.script[0][0]:
            _, step = self.script.pop(0)
            return step()
        self.clock.sleep(timeout)
        return FeedBatch(position=position or "p0")

    def close(self) -> None:
        self.closed = True


def _hinted(record_id: str, position: str, event: str = "") -> Callable[[], FeedBatch]:
    return lambda: FeedBatch(
        (ChangeHint("contacts", record_id, AT, event_id=event),), position=position
    )


def _linked(world: World) -> tuple[str, str]:
    crm_id = world.crm.create("contacts", {"email": "ann@x.io", "name": "Ann", "score": "1"})
    world.sync()
    world.sync()
    (map_id,) = world.people("map")
    return crm_id, map_id


def _daemon(world: World, clock: Monotonic, feeds: PairFeeds, **kwargs: object) -> Daemon:
    return Daemon(
        runners=[world.runner],
        store=world.store,
        interval=60.0,
        safety_poll=600.0,
        monotonic=clock,
        feeds=[feeds],
        max_cycles=2,
        **kwargs,  # type: ignore[arg-type]
    )


def _feeds(world: World, clock: Monotonic, feeds: dict[Side, ChangeFeed]) -> PairFeeds:
    return PairFeeds(world.runner, feeds, monotonic=clock, pause=clock.sleep)


def test_an_edit_is_synced_by_a_hinted_cycle_long_before_the_safety_poll(world: World) -> None:
    crm_id, map_id = _linked(world)
    clock = Monotonic()
    synced_at: list[float] = []

    def edit_and_hint() -> FeedBatch:
        world.crm.human_edit("contacts", crm_id, {"name": "Ann Smith"})
        return _hinted(crm_id, "p1", "e1")()

    crm_feed = ScriptedFeed(clock, [(10.0, edit_and_hint), (10.4, _hinted(crm_id, "p2", "e1"))])
    map_feed = ScriptedFeed(clock, [])
    feeds = _feeds(world, clock, {"crm": crm_feed, "map": map_feed})

    def on_cycle(n: int, report: object, seconds: float) -> None:
        if world.people("map")[map_id]["name"] == "Ann Smith" and not synced_at:
            synced_at.append(clock.now)

    stats = _daemon(world, clock, feeds, on_cycle=on_cycle).run()

    assert stats.cycles == 2 and stats.hinted_cycles == 1  # the repeat (same event) is dropped
    assert synced_at and synced_at[0] < 15.0  # debounce 1 s after the hint, not 600 s
    assert clock.now >= 600.0  # the second full cycle waited for the safety poll
    with world.store.transaction(readonly=True) as tx:
        assert tx.get_feed_position("p", "crm") == "p2"
    assert crm_feed.closed and map_feed.closed


def test_a_lost_channel_runs_a_full_cycle_at_once_and_resumes_from_its_new_place(
    world: World,
) -> None:
    crm_id, map_id = _linked(world)
    clock = Monotonic()

    def lost() -> FeedBatch:
        world.crm.human_edit("contacts", crm_id, {"name": "Ann Lost"})
        return FeedBatch(position="fresh", lost=True)

    crm_feed = ScriptedFeed(clock, [(5.0, lost)])
    feeds = _feeds(world, clock, {"crm": crm_feed, "map": ScriptedFeed(clock, [])})

    stats = _daemon(world, clock, feeds).run()

    assert stats.fallbacks == 1 and stats.hinted_cycles == 0
    assert world.people("map")[map_id]["name"] == "Ann Lost"
    assert "fresh" in crm_feed.positions  # polls after the fallback go on from the new place


def test_a_failing_channel_rests_while_the_poll_carries_the_pair(world: World) -> None:
    _linked(world)
    clock = Monotonic()

    def fail() -> FeedBatch:
        raise CrmBridgeError("journal unreachable")

    crm_feed = ScriptedFeed(clock, [(1.0, fail)])
    feeds = _feeds(world, clock, {"crm": crm_feed, "map": ScriptedFeed(clock, [])})

    stats = _daemon(world, clock, feeds).run()

    assert stats.cycles == 2 and stats.fallbacks == 1 and stats.failures == 0


def test_a_side_without_a_channel_keeps_the_ordinary_interval(world: World) -> None:
    _linked(world)
    clock = Monotonic()
    feeds = _feeds(world, clock, {"crm": ScriptedFeed(clock, [])})

    stats = _daemon(world, clock, feeds).run()

    assert stats.cycles == 2
    assert 60.0 <= clock.now < 600.0


@pytest.mark.parametrize("burst", [3, 12])
def test_a_burst_of_hints_becomes_one_cycle_within_the_maximum_delay(
    world: World, burst: int
) -> None:
    crm_id, _ = _linked(world)
    clock = Monotonic()
    steps = [(10.0 + 0.5 * i, _hinted(crm_id, f"p{i}", f"e{i}")) for i in range(burst)]
    feeds = _feeds(
        world, clock, {"crm": ScriptedFeed(clock, steps), "map": ScriptedFeed(clock, [])}
    )

    stats = _daemon(world, clock, feeds).run()

    # hints every 0.5 s never leave a quiet second; the 5 s cap cuts a long burst
    assert stats.hinted_cycles == (1 if burst * 0.5 <= 5.0 else 2)


def test_a_backlog_is_polled_every_interval_until_it_is_drained(tmp_path: Path) -> None:
    """A capped read (an initial load) is behind the cursor, where no channel looks."""
    world = World(tmp_path, max_records_per_cycle=2)
    try:
        for i in range(5):
            world.crm.create("contacts", {"email": f"p{i}@x.io", "name": f"P{i}", "score": "1"})
        clock = Monotonic()
        feeds = _feeds(
            world, clock, {"crm": ScriptedFeed(clock, []), "map": ScriptedFeed(clock, [])}
        )
        times: list[float] = []
        daemon = _daemon(world, clock, feeds, on_cycle=lambda n, r, s: times.append(clock.now))
        daemon.max_cycles = 8
        daemon.run()
        assert len(world.people("map")) == 5
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # Capped reads (the load, then its echoes on the other side) come back every interval;
        # once no read is capped the pair waits for the safety poll.
        fast = list(itertools.takewhile(lambda gap: gap < 100, gaps))
        assert len(fast) >= 2 and all(gap == pytest.approx(60.0, abs=1.5) for gap in fast)
        assert gaps[len(fast) :] and all(gap >= 599.0 for gap in gaps[len(fast) :])
    finally:
        world.store.close()
