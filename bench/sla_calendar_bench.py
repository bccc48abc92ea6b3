"""Micro-benchmark for crm_bridge.sla.calendar (prints figures, asserts nothing).

Run: /work/venv/bin/python bench/sla_calendar_bench.py
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

from crm_bridge.sla.calendar import BusinessCalendar, TimeOff, overlay

N = 100_000
SEED = 20260101


def main() -> None:
    team = BusinessCalendar(
        timezone="Europe/Berlin",
        hours={d: ["09:00-12:00", "13:00-17:30"] for d in ("mon", "tue", "wed", "thu", "fri")},
        holiday_country="DE",
        holiday_subdivision="BY",
        extra_holidays=[datetime(2026, 12, 24).date()],
    )
    rep = overlay(
        team,
        {
            "timezone": "America/Los_Angeles",
            "holiday_country": "US",
            "time_off": [
                TimeOff(start=datetime(2026, 8, 10).date(), end=datetime(2026, 8, 14).date())
            ],
        },
    )
    rng = random.Random(SEED)
    year_start = datetime(2026, 1, 1, tzinfo=UTC)
    year_s = 365 * 86_400
    starts = [year_start + timedelta(seconds=rng.randrange(year_s)) for _ in range(N)]
    ends = [s + timedelta(seconds=rng.randrange(14 * 86_400)) for s in starts]
    deltas = [timedelta(minutes=rng.randrange(0, 40 * 60)) for _ in range(N)]

    for name, cal in (
        ("team Europe/Berlin DE-BY", team),
        ("rep overlay America/Los_Angeles US", rep),
    ):
        t0 = time.process_time()
        cal.business_time_between(year_start, year_start + timedelta(days=380))  # compile a year
        cold = time.process_time() - t0

        t0 = time.process_time()
        for a, b in zip(starts, ends, strict=True):
            cal.business_time_between(a, b)
        between = time.process_time() - t0

        t0 = time.process_time()
        for s, d in zip(starts, deltas, strict=True):
            cal.add_business_time(s, d)
        add = time.process_time() - t0

        print(f"{name}")
        print(f"  cold compile of ~1 year:            {cold * 1e3:8.2f} ms")
        print(
            f"  {N:,} business_time_between:      {between:8.3f} s  {between / N * 1e6:6.2f} µs/call"
        )
        print(f"  {N:,} add_business_time (<=40h):  {add:8.3f} s  {add / N * 1e6:6.2f} µs/call")
        print(f"  total CPU for both:                 {between + add:8.3f} s")


if __name__ == "__main__":
    main()
