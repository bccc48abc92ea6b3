from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_bridge.http.clock import Clock, FakeClock, SystemClock


def test_fake_clock_sleep_advances_both_readings_and_is_recorded() -> None:
    clock = FakeClock(datetime(2024, 5, 1, tzinfo=UTC), monotonic_start=50.0)
    clock.sleep(2.5)
    clock.sleep(0.5)
    assert clock.monotonic() == pytest.approx(53.0)
    assert clock.now() == datetime(2024, 5, 1, 0, 0, 3, tzinfo=UTC)
    assert clock.sleeps == [2.5, 0.5]
    assert clock.slept == pytest.approx(3.0)


def test_fake_clock_advance_is_not_a_sleep() -> None:
    clock = FakeClock()
    start = clock.now()
    clock.advance(10)
    assert clock.now() - start == timedelta(seconds=10)
    assert clock.sleeps == []
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_fake_clock_rejects_naive_start() -> None:
    with pytest.raises(ValueError):
        FakeClock(datetime(2024, 1, 1))


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(FakeClock(), Clock)
    assert isinstance(SystemClock(), Clock)
    system = SystemClock()
    assert system.now().tzinfo is not None
    before = system.monotonic()
    system.sleep(0)  # must not block, and negative/zero waits are ignored
    system.sleep(-5)
    assert system.monotonic() - before < 1.0
