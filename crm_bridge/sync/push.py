"""The push channels of one pair: hints collected, debounced, and their positions kept.

Why hints and not events: a push channel (HubSpot's webhooks journal, Salesforce Change Data
Capture) drops, repeats and reorders, and forgets after a few days, while the poll is complete.
So the daemon treats what a channel says as "read these ids soon" (``SyncRunner.run_cycle(hints=
...)``) and keeps a slow safety poll for the truth.  A burst of edits becomes one cycle: after the
first hint the collector keeps listening until the channels are quiet for ``debounce`` seconds,
or ``max_delay`` seconds have passed since that first hint.

A channel's position is stored only after the cycle that handled its hints, so a crash re-reads
them (a handled version is skipped, so re-reading costs reads, never writes).  A channel that
cannot resume (``FeedBatch.lost``) or fails asks for a full cycle; a failing channel is left
alone for ``retry_after`` seconds while the poll carries the pair.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from crm_bridge.connector import Capability, ChangeFeed, ChangeHint, FeedBatch
from crm_bridge.errors import CrmBridgeError
from crm_bridge.log import get_logger
from crm_bridge.store import Side
from crm_bridge.sync.actions import SIDES
from crm_bridge.sync.runner import SyncRunner

__all__ = ["Acted", "Collected", "PairFeeds", "act_on", "poll_every"]

_log = get_logger("crm_bridge.push")

R = TypeVar("R")
Acted = Literal["fallback", "hinted", "moved", "idle"]
"""What :func:`act_on` did: a full cycle for a lost channel, a hinted cycle, a position stored."""


@dataclass
class Collected:
    """What the channels of one pair said during one :meth:`PairFeeds.collect`."""

    hints: dict[Side, list[ChangeHint]] = field(default_factory=lambda: {"crm": [], "map": []})
    positions: dict[Side, str] = field(default_factory=dict)
    lost: bool = False

    @property
    def empty(self) -> bool:
        """Nothing to act on: no hint and no lost channel."""
        return not self.lost and not any(self.hints.values())


class PairFeeds:
    """The open push channels of one pair's sides, and where each one resumes."""

    def __init__(
        self,
        runner: SyncRunner,
        feeds: dict[Side, ChangeFeed],
        *,
        debounce: float = 1.0,
        max_delay: float = 5.0,
        retry_after: float = 60.0,
        slice_seconds: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
        pause: Callable[[float], object] = time.sleep,
    ) -> None:
        self.runner = runner
        self.feeds = feeds
        self.debounce = debounce
        self.max_delay = max_delay
        self.retry_after = retry_after
        self.slice_seconds = slice_seconds
        self.monotonic = monotonic
        self.pause = pause
        self.positions: dict[Side, str | None] = {}
        self._resting: dict[Side, float] = {}
        self._seen: set[tuple[Side, str]] = set()

    @classmethod
    def open(cls, runner: SyncRunner, **options: Any) -> PairFeeds | None:
        """The pair's channels, one per side whose connector has one; ``None`` when none has.

        A connector that announces a channel but is not set up for it (no app credentials, no
        endpoint) says why in a warning; that side is polled as before.
        """
        feeds: dict[Side, ChangeFeed] = {}
        for side in SIDES:
            conn = runner.connectors[side]
            if Capability.CHANGE_FEED not in conn.capabilities:
                continue
            objects = sorted(
                {
                    objmap.crm_object if side == "crm" else objmap.map_object
                    for objmap in runner.settings.objects.values()
                }
            )
            try:
                feeds[side] = conn.change_feed(objects)
            except CrmBridgeError as exc:
                _log.warning("push.feed.unavailable", pair=runner.name, side=side, error=exc)
        if not feeds:
            return None
        made = cls(runner, feeds, **options)
        with runner.store.transaction(readonly=True) as tx:
            made.positions = {s: tx.get_feed_position(runner.name, s) for s in feeds}
        return made

    @property
    def complete(self) -> bool:
        """Whether every side has a channel: only then may the poll slow to the safety interval."""
        return set(self.feeds) == set(SIDES)

    def start(self) -> Collected:
        """Positions to begin from, for sides that never stored one: "now", before the first poll.

        Taken before the daemon's first full cycle, so a change during that cycle is hinted
        after it rather than lost between the two.
        """
        started = Collected()
        for side, feed in self.feeds.items():
            if self.positions.get(side) is None:
                batch = self._poll(side, feed, None, 0.0)
                if batch is not None and batch.position is not None:
                    started.positions[side] = batch.position
        return started

    def collect(self, wait: float) -> Collected:
        """Listen up to ``wait`` seconds; after a first hint, until quiet or ``max_delay``."""
        got = Collected()
        now = self.monotonic()
        deadline = now + wait
        first: float | None = None
        quiet_since = now
        while True:
            heard = False
            for side, feed in self.feeds.items():
                if self._resting.get(side, 0.0) > self.monotonic():
                    continue
                left = max(0.0, min(deadline, self._hard_stop(first)) - self.monotonic())
                position = got.positions.get(side, self.positions.get(side))
                batch = self._poll(side, feed, position, min(self.slice_seconds, left))
                if batch is None:
                    got.lost = True
                    continue
                if batch.position is not None:
                    got.positions[side] = batch.position
                if batch.lost:
                    got.lost = True
                for hint in batch.hints:
                    key = (side, hint.event_id) if hint.event_id else None
                    if key is not None and key in self._seen:
                        continue
                    if key is not None:
                        self._seen.add(key)
                    got.hints[side].append(hint)
                    heard = True
            now = self.monotonic()
            if heard:
                quiet_since = now
                first = now if first is None else first
            if got.lost:
                return got
            if first is None:
                if now >= deadline:
                    return got
                if not self._listening():  # every channel rests after a failure
                    self.pause(max(0.0, min(deadline, self._rest_ends()) - now))
                continue
            if now - quiet_since >= self.debounce or now >= self._hard_stop(first):
                return got

    def commit(self, collected: Collected) -> None:
        """Store the positions ``collected`` reached; call it after the cycle that handled it."""
        if not collected.positions:
            return
        with self.runner.store.transaction() as tx:
            for side, position in collected.positions.items():
                tx.set_feed_position(self.runner.name, side, position, now=self.runner.now())
        self.positions.update(collected.positions)
        if len(self._seen) > 100_000:  # event ids before a stored position never come again
            self._seen.clear()

    def close(self) -> None:
        """Close every channel."""
        for feed in self.feeds.values():
            feed.close()

    def _hard_stop(self, first: float | None) -> float:
        return float("inf") if first is None else first + self.max_delay

    def _listening(self) -> bool:
        now = self.monotonic()
        return any(self._resting.get(side, 0.0) <= now for side in self.feeds)

    def _rest_ends(self) -> float:
        return min(self._resting.get(side, 0.0) for side in self.feeds)

    def _poll(
        self, side: Side, feed: ChangeFeed, position: str | None, timeout: float
    ) -> FeedBatch | None:
        try:
            return feed.poll(position, timeout=timeout)
        except CrmBridgeError as exc:
            _log.warning(
                "push.feed.failed",
                pair=self.runner.name,
                side=side,
                error=exc,
                retry_in=self.retry_after,
            )
            self._resting[side] = self.monotonic() + self.retry_after
            return None


def act_on(
    feeds: PairFeeds,
    collected: Collected,
    cycle: Callable[[Mapping[Side, Sequence[ChangeHint]] | None], R | None],
) -> tuple[Acted, R | None]:
    """The one rule for what the channels said, shared by the daemon and the workers' listener.

    A lost channel asks for a full cycle (``cycle(None)``), hints for a hinted one
    (``cycle(hints)``); the positions are stored only when that cycle succeeded (``cycle``
    returned something), so a crash or a failed cycle re-reads them.  Positions that moved with
    nothing to act on are stored at once.  Returns what was done and the cycle's result.
    """
    if collected.lost:
        result = cycle(None)
        if result is not None:
            feeds.commit(collected)
        return "fallback", result
    if not collected.empty:
        result = cycle(collected.hints)
        if result is not None:
            feeds.commit(collected)
        return "hinted", result
    if collected.positions:
        feeds.commit(collected)
        return "moved", None
    return "idle", None


def poll_every(interval: float, safety_poll: float, *, complete: bool, capped: bool) -> float:
    """Seconds from a pair's full cycle to its next one, with push channels.

    Every ``interval`` while a read was capped (an initial load, a backlog after an outage):
    the channels only name records changed from now on, and the backlog is behind the cursor.
    Otherwise a pair whose every side has a channel waits ``safety_poll``; one with a side that
    has none keeps ``interval`` (that side has nothing else to bring its changes).
    """
    if capped:
        return interval
    return safety_poll if complete else interval
