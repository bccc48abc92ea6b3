"""Vendor rate budgets shared by every worker through PostgreSQL, taken in small blocks.

Why blocks: asking the database before every call would add a round trip per call and make
PostgreSQL the bottleneck; taking a handful of calls at a time (:data:`DEFAULT_BLOCK`, at most
a twentieth of the window) costs one round trip per block and wastes little when a worker stops
needing calls half-way through a block.

**Rolling windows** (HubSpot's burst per ten seconds, Marketo's 100 calls per 20 s) are counted
as *leases* in ``rate_leases``.  The vendor counts a call when it arrives, somewhere between our
send and its answer, so a lease counts in full (``size``) from the moment it is granted until it
is released, and after that only the calls actually made on it (``used``) until one window
after the release.  A block is released once it is retired (used up, or older than its hold
time) *and* its last call's answer is back, so the release time is later than every arrival of
its calls.  Proof sketch that no window of arrivals holds more than ``max_calls``: take the
leases with an arrival in ``[t, t + W]`` and the last of them to be granted, at ``g <= t + W``;
every other one was granted before ``g`` and released at or after its arrival ``>= t >= g - W``,
so at ``g`` it was still counted, and ``g`` was granted only because the sum fit under the limit.
Every time comes from PostgreSQL's ``clock_timestamp()``, one clock for every worker.

A worker killed with leases open cannot release them; an open lease stops counting one window
after its ``expires_at`` (the hold time plus the longest a call may take), so a dead worker's
budget comes back within a bounded time, and a live worker never sends on a block past its hold.

**Daily allocations** that crm-bridge must count itself (Marketo's, which no answer reports)
live in ``rate_daily``: one row per account and day, raised with one atomic
``INSERT ... ON CONFLICT DO UPDATE ... WHERE used + n <= allowed RETURNING``, also in blocks.
Allocations a vendor reports on every answer (Salesforce, HubSpot's daily) already are one count
shared by every process, so those budgets stay local.

Each process keeps its own in-process limiter as well (the subclasses below *are*
:class:`~crm_bridge.http.RollingWindowLimiter` and :class:`~crm_bridge.http.DailyBudget`): its
pacing, header feedback and statistics work unchanged, and the metrics find them as before.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crm_bridge.errors import RateLimitedError
from crm_bridge.http.clock import Clock
from crm_bridge.http.ratelimit import DailyBudget, Lease, RollingWindowLimiter
from crm_bridge.log import get_logger
from crm_bridge.store.migrate import pg_lock_key, pg_scope

__all__ = [
    "DEFAULT_BLOCK",
    "MAX_CALL_SECONDS",
    "SharedBudgets",
    "SharedDailyBudget",
    "SharedWindowLimiter",
    "window_usage",
]

DEFAULT_BLOCK = 10
"""Calls per rolling-window block at most; never more than a twentieth of the limit."""
DAILY_BLOCK = 20
"""Calls per daily block: a day is long, so a few unused calls per worker and day cost nothing."""
MAX_CALL_SECONDS = 120.0
"""How long after a block's hold a dead holder's calls may still arrive (beyond any timeout)."""
POLL_SECONDS = 0.05
"""Least wait between two refused grants (the next release is not known in advance)."""
REAP_SECONDS = 0.25
"""How often idle blocks are given back, so a quiet worker does not sit on calls."""

_log = get_logger("crm_bridge.workers.budgets")


def block_size(max_calls: int, block: int = DEFAULT_BLOCK) -> int:
    """Calls per block for a limit of ``max_calls``: small against the limit, at least one."""
    return max(1, min(block, max_calls // 20))


@dataclass
class _Block:
    """A granted lease as its holder sees it."""

    lease_id: int
    size: int
    usable_until: float  # monotonic: no call is sent on it afterwards
    taken: int = 0
    in_flight: int = 0
    retired: bool = False
    released: bool = False

    @property
    def left(self) -> int:
        return self.size - self.taken


@dataclass(frozen=True, slots=True)
class _Grant:
    lease_id: int | None
    size: int
    wait: float


class SharedBudgets:
    """The :class:`~crm_bridge.http.budgets.BudgetProvider` of worker processes.

    One per process, over the store's engine (PostgreSQL only).  It keeps a background thread
    that gives idle blocks back; :meth:`close` releases everything still held.
    """

    def __init__(self, engine: Engine, *, holder: str | None = None) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("shared rate budgets need a PostgreSQL store")
        self.engine = engine
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}"
        with engine.connect() as conn:
            self._scope = pg_scope(conn)
        self._limiters: list[SharedWindowLimiter] = []
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="budget-reaper", daemon=True)
        self._reaper.start()

    # -- the provider protocol ------------------------------------------------------------------

    def window(
        self,
        account: str,
        *,
        max_calls: int,
        window_seconds: float,
        clock: Clock,
        name: str,
    ) -> RollingWindowLimiter:
        """A :class:`SharedWindowLimiter` on ``account``'s count."""
        limiter = SharedWindowLimiter(
            self,
            account,
            max_calls=max_calls,
            window_seconds=window_seconds,
            clock=clock,
            name=name,
        )
        with self._guard:
            self._limiters.append(limiter)
        return limiter

    def daily(
        self,
        account: str,
        *,
        reserve_fraction: float,
        name: str,
        day: Callable[[], str] | None = None,
    ) -> DailyBudget:
        """Shared when crm-bridge counts the day itself (``day`` given), local otherwise."""
        if day is None:
            return DailyBudget(reserve_fraction=reserve_fraction, name=name)
        return SharedDailyBudget(
            self, account, reserve_fraction=reserve_fraction, name=name, day=day
        )

    # -- the SQL --------------------------------------------------------------------------------

    def grant(self, account: str, *, size: int, max_calls: int, window_seconds: float) -> _Grant:
        """Lease up to ``size`` calls of ``account`` now, or say how long to wait."""
        key = pg_lock_key(f"crm-bridge:{self._scope}:rate:{account}")
        hold = hold_seconds(window_seconds)
        with self.engine.begin() as conn:
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
            params = {"a": account, "w": window_seconds}
            conn.execute(
                sa.text(
                    "DELETE FROM rate_leases WHERE account = :a AND "
                    "COALESCE(released_at, expires_at) < clock_timestamp()"
                    " - make_interval(secs => :w + 60)"
                ),
                params,
            )
            used, next_free = conn.execute(
                sa.text(
                    "SELECT COALESCE(SUM(CASE WHEN released_at IS NULL THEN size ELSE used END), 0),"
                    " EXTRACT(EPOCH FROM MIN(released_at) + make_interval(secs => :w)"
                    " - clock_timestamp())"
                    " FROM rate_leases WHERE account = :a AND ("
                    " (released_at IS NULL AND expires_at >= clock_timestamp()"
                    "  - make_interval(secs => :w))"
                    " OR released_at >= clock_timestamp() - make_interval(secs => :w))"
                ),
                params,
            ).one()
            room = max_calls - int(used)
            if room <= 0:
                wait = float(next_free) if next_free is not None else POLL_SECONDS
                return _Grant(None, 0, max(POLL_SECONDS, min(wait, window_seconds)))
            size = min(size, room)
            lease_id = conn.execute(
                sa.text(
                    "INSERT INTO rate_leases (account, size, used, granted_at, expires_at, holder)"
                    " VALUES (:a, :n, 0, clock_timestamp(),"
                    " clock_timestamp() + make_interval(secs => :ttl), :h) RETURNING id"
                ),
                {"a": account, "n": size, "ttl": hold + MAX_CALL_SECONDS, "h": self.holder},
            ).scalar_one()
        return _Grant(int(lease_id), size, 0.0)

    def release(self, lease_id: int, used: int) -> None:
        """Book a block as finished now, with the calls actually made on it."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE rate_leases SET released_at = clock_timestamp(), used = :u"
                    " WHERE id = :id AND released_at IS NULL"
                ),
                {"id": lease_id, "u": used},
            )

    def take_daily(self, account: str, day: str, n: int, allowed: int) -> bool:
        """Add ``n`` calls to ``account``'s count of ``day`` if it stays within ``allowed``."""
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.text(
                    "INSERT INTO rate_daily (account, day, used) SELECT :a, :d, :n WHERE :n <= :m"
                    " ON CONFLICT (account, day) DO UPDATE SET used = rate_daily.used + :n"
                    " WHERE rate_daily.used + :n <= :m RETURNING used"
                ),
                {"a": account, "d": day, "n": n, "m": allowed},
            ).first()
        return row is not None

    # -- housekeeping ---------------------------------------------------------------------------

    def _reap(self) -> None:
        while not self._stop.wait(REAP_SECONDS):
            with self._guard:
                limiters = list(self._limiters)
            for limiter in limiters:
                try:
                    limiter.give_back_idle()
                except Exception as exc:  # the store may be briefly away; the next pass retries
                    _log.warning("budget.reap.failed", limiter=limiter.name, error=str(exc))

    def close(self) -> None:
        """Stop the reaper and release every block still held."""
        self._stop.set()
        self._reaper.join(timeout=5)
        with self._guard:
            limiters = list(self._limiters)
        for limiter in limiters:
            limiter.give_back_idle(force=True)


def hold_seconds(window_seconds: float) -> float:
    """How long a block may be sent on: a quarter window, at most two seconds.

    Short, because an unfinished block counts in full; long enough that a busy worker uses up
    its blocks instead of asking again for each call.
    """
    return min(window_seconds / 4, 2.0)


class SharedWindowLimiter(RollingWindowLimiter):
    """A rolling-window limiter whose calls also come out of the account's shared count."""

    def __init__(
        self,
        shared: SharedBudgets,
        account: str,
        *,
        max_calls: int,
        window_seconds: float,
        clock: Clock,
        name: str,
    ) -> None:
        super().__init__(max_calls, window_seconds, clock, name=name)
        self.account = account
        self._shared = shared
        self._size = block_size(max_calls)
        self._state = threading.Lock()
        self._fetch = threading.Lock()
        self._current: _Block | None = None
        self._blocks: dict[Lease, _Block] = {}
        self.shared_waited = 0.0
        self.blocks_taken = 0

    def lease(self) -> Lease:
        """A block's call first (may wait for other workers), then the local pacing."""
        block = self._take()
        try:
            lease = super().lease()
        except BaseException:
            self._done(block)
            raise
        with self._state:
            self._blocks[lease] = block
        return lease

    def release(self, lease: Lease) -> float:
        """Book the call locally and on its block (releasing a retired block when it empties)."""
        done = super().release(lease)
        with self._state:
            block = self._blocks.pop(lease, None)
        if block is not None:
            self._done(block)
        return done

    def acquire(self) -> float:
        """The fire-and-forget form: the call is done, as far as we know, when it is sent."""
        block = self._take()
        try:
            return super().acquire()
        finally:
            self._done(block)

    def _take(self) -> _Block:
        while True:
            with self._state:
                block = self._current
                if block is not None and block.left > 0 and not self._expired(block):
                    block.taken += 1
                    block.in_flight += 1
                    return block
                if block is not None:
                    self._retire(block)
            with self._fetch:
                with self._state:
                    current = self._current
                    if current is not None and current.left > 0 and not self._expired(current):
                        continue  # another thread fetched one meanwhile
                self._fetch_block()

    def _fetch_block(self) -> None:
        started = time.monotonic()
        while True:
            grant = self._shared.grant(
                self.account,
                size=self._size,
                max_calls=self.max_calls,
                window_seconds=self.window_seconds,
            )
            if grant.lease_id is not None:
                break
            time.sleep(grant.wait)
        with self._state:
            self._current = _Block(
                grant.lease_id,
                grant.size,
                usable_until=time.monotonic() + hold_seconds(self.window_seconds),
            )
            self.blocks_taken += 1
            self.shared_waited += time.monotonic() - started

    def _expired(self, block: _Block) -> bool:
        return time.monotonic() >= block.usable_until

    def _retire(self, block: _Block) -> None:
        """No more calls on ``block`` (caller holds ``_state``); release it once it is empty."""
        block.retired = True
        if self._current is block:
            self._current = None
        if block.in_flight == 0 and not block.released:
            block.released = True
            self._shared.release(block.lease_id, block.taken)

    def _done(self, block: _Block) -> None:
        with self._state:
            block.in_flight -= 1
            if block.retired and block.in_flight == 0 and not block.released:
                block.released = True
                release = True
            else:
                release = False
        if release:
            self._shared.release(block.lease_id, block.taken)

    def give_back_idle(self, *, force: bool = False) -> None:
        """Retire the current block if its hold is over (or ``force``) and nothing is in flight."""
        with self._state:
            block = self._current
            if block is None or not (force or self._expired(block)) or block.in_flight:
                return
            self._retire(block)


class SharedDailyBudget(DailyBudget):
    """A daily budget counted in ``rate_daily``, so N workers together keep the reserve."""

    def __init__(
        self,
        shared: SharedBudgets,
        account: str,
        *,
        reserve_fraction: float,
        name: str,
        day: Callable[[], str],
    ) -> None:
        super().__init__(reserve_fraction=reserve_fraction, name=name)
        self.account = account
        self._shared = shared
        self._day = day
        self._block_day: str | None = None
        self._left = 0
        self._limit_known: int | None = None

    def observe_usage(self, used: int, limit: int) -> None:
        """Only the limit is taken: the shared count, not this process's, says what is used."""
        with self._lock:
            self._limit_known = limit

    def acquire(self) -> None:
        """Take one call from a local block, refilling it from the shared count."""
        with self._lock:
            limit = self._limit_known
            if limit is None:  # nothing known yet: like DailyBudget, every call is allowed
                self._calls += 1
                return
            day = self._day()
            if day != self._block_day:
                self._block_day, self._left = day, 0
            if self._left == 0:
                allowed = int(limit * (1.0 - self.reserve_fraction))
                for n in (DAILY_BLOCK, 1):
                    if self._shared.take_daily(self.account, day, n, allowed):
                        self._left = n
                        break
                else:
                    raise RateLimitedError(
                        f"{self.name} budget reached: {allowed:,} of {limit:,} calls taken today "
                        f"by all workers; the last {self.reserve_fraction:.0%} is kept for people "
                        "and other integrations, so crm-bridge stops until the allocation resets",
                        retry_after=None,
                    )
            self._left -= 1
            self._calls += 1
            self._since += 1


def window_usage(engine: Engine, account: str, window_seconds: float) -> int:
    """Calls of ``account`` counted in its window now (for status and tests)."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT COALESCE(SUM(CASE WHEN released_at IS NULL THEN size ELSE used END), 0)"
                    " FROM rate_leases WHERE account = :a AND ("
                    " (released_at IS NULL AND expires_at >= clock_timestamp()"
                    "  - make_interval(secs => :w))"
                    " OR released_at >= clock_timestamp() - make_interval(secs => :w))"
                ),
                {"a": account, "w": window_seconds},
            ).scalar_one()
        )
