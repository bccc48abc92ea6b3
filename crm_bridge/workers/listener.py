"""Push channels for workers: one listener per pair across the fleet, hinted cycles as jobs.

Why one listener per pair and not one per worker: every worker serves every pair, and N
listeners would turn each hint into N cycles.  A worker's listener thread takes the store lock
``push:<pair>`` (:func:`listener_lock_name`) for each pair it can; the holder's death releases
it (a PostgreSQL session lock), and another worker's listener takes the pair over on its next
claim round (``--stalled-after`` seconds), resuming from the stored feed positions.

What a listener does with what its channels say is the daemon's rule, the same code
(:func:`crm_bridge.sync.push.act_on`): hints become a **hinted cycle**, a lost channel (and a
side that never stored a position) a **full cycle**, and the positions are stored only after
that cycle succeeded.  The cycle is not run by the listener but deferred as a pair job with a
high priority (:func:`~crm_bridge.workers.queue.defer_hinted`, the hints in its arguments), so
it still runs under the pair's queue lock and store lock, on whichever worker is free, with the
pair jobs' retries; the listener waits for the job's outcome before it commits.

Whether a pair is fully fed (every side has a channel) is recorded in ``push_listeners`` so
every worker's scheduler polls such a pair only every ``daemon.safety_poll_seconds``
(:func:`fed_pairs`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crm_bridge.config import DaemonSettings
from crm_bridge.connector import ChangeHint
from crm_bridge.log import get_logger
from crm_bridge.session import Session
from crm_bridge.store import Side, StoreLockedError
from crm_bridge.store.schema import push_listeners
from crm_bridge.store.schema import workers as workers_table
from crm_bridge.sync.push import Acted, PairFeeds, act_on
from crm_bridge.workers.hints import EncodedHints, encode_hints

__all__ = ["PushListener", "fed_pairs", "job_outcome", "listener_lock_name"]

_log = get_logger("crm_bridge.worker")

Submit = Callable[[str, EncodedHints | None], int]
"""Defer a push job of ``pair`` (hints, or ``None`` for a full cycle); its job id."""
PushCallback = Callable[[str, str, Acted, bool], None]
"""``(worker, pair, what was done, whether its cycle succeeded)``: metrics and output."""


def listener_lock_name(pair: str) -> str:
    """The store lock of the one listener of ``pair``'s channels: ``push:<pair>``."""
    return f"push:{pair}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def fed_pairs(engine: Engine, *, stale_after: float) -> set[str]:
    """Pairs whose every side a live worker listens to (heartbeat within ``stale_after`` s)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(push_listeners.c.pair, workers_table.c.heartbeat_at)
            .join(workers_table, workers_table.c.name == push_listeners.c.worker)
            .where(push_listeners.c.complete, workers_table.c.stopped_at.is_(None))
        ).all()
    fresh = _utcnow() - timedelta(seconds=stale_after)
    return {str(pair) for pair, beat in rows if beat >= fresh}


def job_outcome(engine: Engine, job_id: int) -> bool | None:
    """How push job ``job_id`` ended: ``True`` succeeded, ``False`` failed for good, ``None`` not yet.

    A missing row counts as success: workers delete the jobs that succeed.
    """
    with engine.connect() as conn:
        status = conn.execute(
            sa.text("SELECT status::text FROM procrastinate_jobs WHERE id = :id"), {"id": job_id}
        ).scalar()
    if status is None or status == "succeeded":
        return True
    if status in ("todo", "doing"):
        return None
    return False


class PushListener:
    """The listener thread of one worker: claims pairs, listens, defers their push jobs."""

    def __init__(
        self,
        session: Session,
        pairs: Sequence[str],
        settings: DaemonSettings,
        *,
        worker: str,
        submit: Submit,
        stop: threading.Event,
        poll: float = 1.0,
        claim_every: float = 30.0,
        listen_seconds: float = 1.0,
        on_push: PushCallback | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.pairs = list(pairs)
        self.settings = settings
        self.worker = worker
        self.submit = submit
        self.stop = stop
        self.poll = poll
        self.claim_every = claim_every
        self.listen_seconds = listen_seconds
        self.on_push = on_push
        self.monotonic = monotonic
        self.engine = session.store.engine
        self.held: dict[str, PairFeeds] = {}
        self._locks: dict[str, contextlib.ExitStack] = {}
        self._without: set[str] = set()

    # -- the thread ------------------------------------------------------------------------------

    def run(self) -> None:
        """Claim, listen and act until ``stop`` is set; then release every pair."""
        claim_due = 0.0
        try:
            while not self.stop.is_set():
                if self.monotonic() >= claim_due:
                    self.claim()
                    claim_due = self.monotonic() + self.claim_every
                if not self.held:
                    self.stop.wait(max(0.0, claim_due - self.monotonic()))
                    continue
                self.listen_once()
        finally:
            self.release()

    def claim(self) -> list[str]:
        """Take the listener lock of every unclaimed pair that has channels; the pairs taken."""
        taken = []
        for pair in self.pairs:
            if pair in self.held or pair in self._without or self.stop.is_set():
                continue
            stack = contextlib.ExitStack()
            try:
                stack.enter_context(self.session.store.writer_lock(listener_lock_name(pair)))
            except StoreLockedError:
                continue  # another worker listens to this pair
            feeds = PairFeeds.open(
                self.session.runner(pair),
                debounce=self.settings.push_debounce_seconds,
                max_delay=self.settings.push_max_delay_seconds,
                pause=self.stop.wait,
            )
            if feeds is None:
                stack.close()
                self._without.add(pair)  # no channel set up: the poll carries it, as without push
                continue
            self._locks[pair], self.held[pair] = stack, feeds
            self._register(pair, feeds.complete)
            _log.info("worker.push.listen", worker=self.worker, pair=pair, complete=feeds.complete)
            taken.append(pair)
            begun = feeds.start()
            if begun.positions and self._cycle(pair)(None) is not None:
                feeds.commit(begun)  # "now" for sides that never stored a place, after a cycle
        return taken

    def listen_once(self) -> list[tuple[str, Acted]]:
        """Listen to each held pair for its share of ``listen_seconds`` and act on what it said."""
        done = []
        for pair, feeds in list(self.held.items()):
            if self.stop.is_set():
                break
            collected = feeds.collect(self.listen_seconds / len(self.held))
            acted, ok = act_on(feeds, collected, self._cycle(pair))
            if acted in ("fallback", "hinted"):
                hints = sum(len(h) for h in collected.hints.values())
                _log.info(
                    f"worker.push.{acted}", worker=self.worker, pair=pair, hints=hints, ok=bool(ok)
                )
                if self.on_push:
                    self.on_push(self.worker, pair, acted, bool(ok))
            done.append((pair, acted))
        return done

    def release(self) -> None:
        """Close every channel, forget the registrations and give the listener locks back."""
        for pair, feeds in list(self.held.items()):
            with contextlib.suppress(Exception):  # closing is best effort; the lock must go
                feeds.close()
            with contextlib.suppress(Exception):
                self._unregister(pair)
            self._locks.pop(pair).close()
            del self.held[pair]

    # -- the cycle as a job ----------------------------------------------------------------------

    def _cycle(
        self, pair: str
    ) -> Callable[[Mapping[Side, Sequence[ChangeHint]] | None], bool | None]:
        """``act_on``'s cycle: defer the push job and wait for its outcome (``None``: failed)."""

        def cycle(hints: Mapping[Side, Sequence[ChangeHint]] | None) -> bool | None:
            job_id = self.submit(pair, None if hints is None else encode_hints(hints))
            while not self.stop.is_set():
                outcome = job_outcome(self.engine, job_id)
                if outcome is not None:
                    return True if outcome else None
                self.stop.wait(self.poll)
            return None  # stopping: not committed, the next listener reads these hints again

        return cycle

    # -- the push_listeners table ----------------------------------------------------------------

    def _register(self, pair: str, complete: bool) -> None:
        values: dict[str, Any] = {"worker": self.worker, "complete": complete, "since": _utcnow()}
        with self.engine.begin() as conn:
            if not conn.execute(
                push_listeners.update().where(push_listeners.c.pair == pair).values(**values)
            ).rowcount:
                conn.execute(push_listeners.insert().values(pair=pair, **values))

    def _unregister(self, pair: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                push_listeners.delete().where(
                    push_listeners.c.pair == pair, push_listeners.c.worker == self.worker
                )
            )
