from __future__ import annotations

import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_bridge.connectors.hubspot.emulator.errors import HubSpotError
from crm_bridge.connectors.hubspot.emulator.ratelimit import RateLimiter
from crm_bridge.connectors.hubspot.emulator.settings import HubSpotEmulatorSettings
from crm_bridge.emulators.runtime import EmulatorClock
from crm_bridge.errors import RateLimitedError
from crm_bridge.http.clock import FakeClock
from crm_bridge.http.ratelimit import DailyBudget, RollingWindowLimiter


def assert_at_most(slots: list[float], max_calls: int, window: float) -> None:
    """No half-open window [t, t + window) holds more than max_calls slots."""
    ordered = sorted(slots)
    for i in range(len(ordered) - max_calls):
        assert ordered[i + max_calls] - ordered[i] >= window - 1e-9, (
            i,
            ordered[i : i + max_calls + 1],
        )


# --- rolling window ---------------------------------------------------------------------------


def test_acquire_sleeps_only_once_the_window_is_full() -> None:
    clock = FakeClock()
    limiter = RollingWindowLimiter(3, 10.0, clock)
    start = clock.monotonic()
    slots = [limiter.acquire() for _ in range(3)]
    assert clock.sleeps == []
    assert slots == [start] * 3
    fourth = limiter.acquire()
    assert clock.sleeps == [pytest.approx(10.0)]
    assert fourth == pytest.approx(start + 10.0)
    stats = limiter.stats()
    assert stats.calls == 4
    assert stats.waited_seconds == pytest.approx(10.0)


def test_acquire_sleeps_just_long_enough() -> None:
    clock = FakeClock()
    limiter = RollingWindowLimiter(2, 1.0, clock)
    limiter.acquire()
    clock.advance(0.7)
    limiter.acquire()
    limiter.acquire()  # the first slot ages out 0.3 s from now
    assert clock.sleeps == [pytest.approx(0.3)]


@settings(max_examples=150, deadline=None)
@given(
    max_calls=st.integers(min_value=1, max_value=8),
    window=st.floats(min_value=0.1, max_value=20.0),
    gaps=st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=1, max_size=60),
)
def test_never_more_than_max_calls_in_any_window(
    max_calls: int, window: float, gaps: list[float]
) -> None:
    clock = FakeClock()
    limiter = RollingWindowLimiter(max_calls, window, clock)
    slots = []
    for gap in gaps:
        clock.advance(gap)
        slot = limiter.acquire()
        assert slot == pytest.approx(
            clock.monotonic()
        )  # acquire returns after sleeping to its slot
        slots.append(slot)
    assert_at_most(slots, max_calls, window)
    assert limiter.stats().calls == len(gaps)


def test_threads_never_exceed_the_limit() -> None:
    clock = FakeClock()
    limiter = RollingWindowLimiter(5, 1.0, clock)
    slots: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(40):
            slot = limiter.acquire()
            with lock:
                slots.append(slot)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(slots) == 320
    assert_at_most(slots, 5, 1.0)
    assert limiter.stats().calls == 320


def test_observe_lowers_max_and_widens_window_but_never_loosens() -> None:
    clock = FakeClock()
    limiter = RollingWindowLimiter(190, 10.0, clock)
    limiter.observe(max_calls=100, window_seconds=12.0)
    assert (limiter.max_calls, limiter.window_seconds) == (100, 12.0)
    limiter.observe(max_calls=250, window_seconds=5.0)
    assert (limiter.max_calls, limiter.window_seconds) == (100, 12.0)
    limiter.observe(max_calls=0)  # a nonsense ceiling is ignored
    limiter.observe()  # an answer that says nothing changes nothing
    assert (limiter.max_calls, limiter.window_seconds) == (100, 12.0)


def test_observe_remaining_books_other_processes_calls() -> None:
    clock = FakeClock()
    limiter = RollingWindowLimiter(10, 10.0, clock)
    limiter.acquire()
    # The server says only 2 calls remain: 8 were used, 7 of them by someone else.
    limiter.observe(max_calls=10, remaining=2)
    limiter.acquire()
    limiter.acquire()
    assert clock.sleeps == []
    limiter.acquire()
    assert clock.sleeps == [pytest.approx(10.0)]


def test_observe_remaining_matching_our_count_changes_nothing() -> None:
    clock = FakeClock()
    limiter = RollingWindowLimiter(3, 1.0, clock)
    limiter.acquire()
    limiter.observe(remaining=2, max_calls=3)
    limiter.acquire()
    limiter.acquire()
    assert clock.sleeps == []


def test_limiter_validates_arguments() -> None:
    with pytest.raises(ValueError):
        RollingWindowLimiter(0, 1.0, FakeClock())
    with pytest.raises(ValueError):
        RollingWindowLimiter(1, 0.0, FakeClock())
    assert "max_calls=5" in repr(RollingWindowLimiter(5, 1.0, FakeClock(), name="search"))


# --- the server's view: calls are counted when they arrive --------------------------------------


class _ArrivalClock(EmulatorClock):
    """The emulator's clock pinned to the arrival being replayed."""

    def __init__(self) -> None:
        super().__init__()
        self.at = 0.0

    def time(self) -> float:
        return self.at


def refused(arrivals: list[float], max_calls: int, window: float) -> list[float]:
    """The arrivals the HubSpot emulator's own rate limiter would answer 429, in time order."""
    clock = _ArrivalClock()
    server = RateLimiter(
        HubSpotEmulatorSettings(
            rate_limits_enabled=True, burst_limit=max_calls, burst_window_seconds=window
        ),
        clock,
    )
    out = []
    for at in sorted(arrivals):
        clock.at = at
        try:
            server.admit("token", search=False)
        except HubSpotError:
            out.append(at)
    return out


def send(
    limiter: RollingWindowLimiter, clock: FakeClock, up: float, down: float, *, paced: bool
) -> tuple[float, float, float]:
    """One request taking ``up`` s to reach the server and ``down`` s to answer: (sent, at, done)."""
    if paced:
        with limiter.paced() as lease:
            clock.advance(up)
            arrival = clock.monotonic()
            clock.advance(down)
        return lease.slot, arrival, clock.monotonic()
    sent = limiter.acquire()
    clock.advance(up)
    arrival = clock.monotonic()
    clock.advance(down)
    return sent, arrival, clock.monotonic()


def slow_first_search(*, paced: bool) -> tuple[list[tuple[float, float, float]], list[float]]:
    """Twelve searches at 5/s, the first one held up 0.3 s on its way in."""
    clock = FakeClock()
    limiter = RollingWindowLimiter(5, 1.0, clock)
    calls = [send(limiter, clock, 0.3, 0.02, paced=paced)]
    calls += [send(limiter, clock, 0.005, 0.02, paced=paced) for _ in range(11)]
    return calls, refused([at for _, at, _ in calls], 5, 1.0)


def test_a_slow_first_answer_keeps_the_sixth_search_out_of_its_window() -> None:
    calls, too_many = slow_first_search(paced=True)
    assert too_many == []
    first_done, sixth_sent = calls[0][2], calls[5][0]
    assert sixth_sent == pytest.approx(first_done + 1.0)


def test_send_time_booking_is_refused_after_a_slow_first_answer() -> None:
    # The check above can fail: booked when sent, the sixth search goes out 1 s after the first
    # was *sent* and reaches the server 0.7 s after the first *arrived*.
    calls, too_many = slow_first_search(paced=False)
    assert calls[5][0] == pytest.approx(calls[0][0] + 1.0)
    assert too_many == [pytest.approx(calls[5][1])]


@settings(max_examples=200, deadline=None)
@given(
    max_calls=st.integers(min_value=1, max_value=8),
    window=st.floats(min_value=0.1, max_value=20.0),
    calls=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=5.0),  # idle gap before the call
            st.floats(min_value=0.0, max_value=3.0),  # on the way in
            # An answer leaves after the server counted the call; a zero here would make the
            # check hinge on the last bit of the fake clock's float sums.
            st.floats(min_value=0.001, max_value=3.0),
        ),
        min_size=1,
        max_size=60,
    ),
)
def test_paced_calls_never_overfill_a_server_window(
    max_calls: int, window: float, calls: list[tuple[float, float, float]]
) -> None:
    clock = FakeClock()
    limiter = RollingWindowLimiter(max_calls, window, clock)
    arrivals = []
    for gap, up, down in calls:
        clock.advance(gap)
        arrivals.append(send(limiter, clock, up, down, paced=True)[1])
    assert refused(arrivals, max_calls, window) == []
    assert limiter.stats().calls == len(calls)


def test_paced_threads_never_overfill_a_server_window() -> None:
    clock = FakeClock()
    limiter = RollingWindowLimiter(5, 1.0, clock)
    arrivals: list[float] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(30):
            up, down = rng.uniform(0, 0.1), rng.uniform(0.001, 0.05)  # five fit in a window
            _, at, _ = send(limiter, clock, up, down, paced=True)
            with lock:
                arrivals.append(at)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(arrivals) == 240
    assert refused(arrivals, 5, 1.0) == []


def test_a_caller_finding_every_place_open_goes_one_window_after_the_first_release() -> None:
    clock = FakeClock()
    limiter = RollingWindowLimiter(2, 1.0, clock)
    start = clock.monotonic()
    first, second = limiter.lease(), limiter.lease()
    clock.advance(5.0)  # both still in flight: either may reach the server any moment now
    slots: list[float] = []
    third = threading.Thread(target=lambda: slots.append(limiter.acquire()))
    third.start()
    done = limiter.release(first)
    third.join()
    limiter.release(second)
    assert done == pytest.approx(start + 5.0)
    assert slots == [pytest.approx(done + 1.0)]


def test_paced_releases_when_the_call_fails_and_a_lease_releases_once() -> None:
    clock = FakeClock()
    limiter = RollingWindowLimiter(1, 1.0, clock)
    with pytest.raises(OSError), limiter.paced():
        clock.advance(0.5)
        raise OSError("connection reset")
    limiter.acquire()  # the failed call was booked when it failed
    assert clock.sleeps == [pytest.approx(1.0)]
    lease = limiter.lease()
    limiter.release(lease)
    with pytest.raises(ValueError, match="not open"):
        limiter.release(lease)
    with pytest.raises(ValueError, match="not open"):
        RollingWindowLimiter(1, 1.0, clock).release(limiter.lease())


def test_observe_counts_our_open_call_as_used() -> None:
    clock = FakeClock()
    limiter = RollingWindowLimiter(3, 1.0, clock)
    with limiter.paced():
        # The answer to the open call itself: it is the one call the server has seen.
        limiter.observe(max_calls=3, remaining=2)
    limiter.acquire()
    limiter.acquire()
    assert clock.sleeps == []


# --- daily budget -----------------------------------------------------------------------------


def test_daily_budget_unknown_until_reported() -> None:
    budget = DailyBudget(reserve_fraction=0.1)
    for _ in range(1000):
        budget.acquire()
    assert budget.snapshot().calls == 1000
    assert budget.snapshot().used is None


def test_daily_budget_keeps_the_reserve() -> None:
    budget = DailyBudget(reserve_fraction=0.1)
    budget.observe_usage(4497, 5000)
    budget.acquire()
    budget.acquire()
    budget.acquire()  # 4500 = 90 % of 5000: the last allowed call
    with pytest.raises(RateLimitedError) as info:
        budget.acquire()
    message = str(info.value)
    assert "4,500 of 5,000" in message and "10%" in message and "500 calls" in message
    snap = budget.snapshot()
    assert (snap.used, snap.limit, snap.calls_since_report, snap.estimated_used) == (
        4497,
        5000,
        3,
        4500,
    )


def test_daily_budget_report_resets_local_estimate() -> None:
    budget = DailyBudget(reserve_fraction=0.5)
    budget.observe_usage(40, 100)
    for _ in range(10):
        budget.acquire()
    with pytest.raises(RateLimitedError):
        budget.acquire()
    budget.observe_usage(20, 100)  # the rolling window freed calls
    budget.acquire()
    assert budget.snapshot().estimated_used == 21


def test_daily_budget_validates() -> None:
    with pytest.raises(ValueError):
        DailyBudget(reserve_fraction=1.0)
