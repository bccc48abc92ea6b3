"""Tests for crm_bridge.sla.calendar: table tests for the rules, hypothesis for the algebra."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from crm_bridge.sla.calendar import (
    WEEKDAYS,
    BusinessCalendar,
    RepOverrides,
    TimeBlock,
    TimeOff,
    WorkingHours,
    overlay,
)
from crm_bridge.sla.policy import RepSettings

NY = ZoneInfo("America/New_York")
LA = ZoneInfo("America/Los_Angeles")
BERLIN = ZoneInfo("Europe/Berlin")
LONDON = ZoneInfo("Europe/London")

H = timedelta(hours=1)
M = timedelta(minutes=1)
US = timedelta(microseconds=1)
ZERO = timedelta(0)

WEEKDAYS_9_TO_5 = {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
WEEKDAYS_LUNCH = {d: ["09:00-12:00", "13:00-17:30"] for d in ("mon", "tue", "wed", "thu", "fri")}


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def intervals(
    cal: BusinessCalendar, d0: date, d1: date | None = None
) -> list[tuple[datetime, datetime]]:
    return list(cal.working_intervals(d0, d1 or d0))


def total(pairs: list[tuple[datetime, datetime]]) -> timedelta:
    return sum((e - s for s, e in pairs), ZERO)


# ---------------------------------------------------------------- calendars under test

NY_TEAM = BusinessCalendar(timezone="America/New_York", hours=WEEKDAYS_LUNCH, holiday_country="US")
BERLIN_BY = BusinessCalendar(
    timezone="Europe/Berlin",
    # Weekend night blocks straddle both EU DST switches (Sundays, 01:00 UTC).
    hours={**WEEKDAYS_9_TO_5, "sat": ["22:00-24:00"], "sun": ["00:00-04:00", "10:00-12:00"]},
    holiday_country="DE",
    holiday_subdivision="BY",
    extra_holidays=[date(2026, 12, 24), date(2026, 12, 31)],
)
LA_REP = BusinessCalendar(
    timezone="America/Los_Angeles",
    hours=WEEKDAYS_9_TO_5,
    holiday_country="US",
    time_off=[
        TimeOff(start=date(2026, 8, 10), end=date(2026, 8, 14)),
        TimeOff(
            start=datetime(2026, 9, 15, 10, 30, tzinfo=LA),
            end=datetime(2026, 9, 15, 14, tzinfo=LA),
        ),
    ],
)
ALWAYS_ON = BusinessCalendar(timezone="Europe/Berlin", hours={d: ["00:00-24:00"] for d in WEEKDAYS})
NY_NIGHT = BusinessCalendar(
    timezone="America/New_York",
    hours={**WEEKDAYS_9_TO_5, "sat": ["20:00-24:00"], "sun": ["00:30-04:00"]},
)

CALENDARS = [NY_TEAM, BERLIN_BY, LA_REP, ALWAYS_ON, NY_NIGHT]


# ============================================================ table tests: basics


def test_defaults_are_weekdays_nine_to_five() -> None:
    cal = BusinessCalendar(timezone="UTC")
    assert cal.hours["monday"] == ["09:00-17:00"]
    assert cal.hours["saturday"] == [] and cal.hours["sunday"] == []
    assert cal.working_hours.weekly_duration == 40 * H


def test_hours_are_normalised_sorted_and_canonical() -> None:
    cal = BusinessCalendar(
        timezone="UTC",
        hours={"Mon": ["13:00 - 17:30", "9:00-12:00"], "FRIDAY": ["08:00\u201310:00"]},
    )
    assert cal.hours["monday"] == ["09:00-12:00", "13:00-17:30"]
    assert cal.hours["friday"] == ["08:00-10:00"]
    assert cal.hours["tuesday"] == []
    assert set(cal.hours) == set(WEEKDAYS)


def test_lunch_break_is_not_working_time() -> None:
    monday = date(2026, 3, 2)
    assert intervals(NY_TEAM, monday) == [
        (utc(2026, 3, 2, 14), utc(2026, 3, 2, 17)),  # 09:00-12:00 EST
        (utc(2026, 3, 2, 18), utc(2026, 3, 2, 22, 30)),  # 13:00-17:30 EST
    ]
    assert NY_TEAM.is_working(datetime(2026, 3, 2, 11, 59, tzinfo=NY))
    assert not NY_TEAM.is_working(datetime(2026, 3, 2, 12, 30, tzinfo=NY))
    # Half-open blocks: start is working, end is not.
    assert NY_TEAM.is_working(datetime(2026, 3, 2, 13, 0, tzinfo=NY))
    assert not NY_TEAM.is_working(datetime(2026, 3, 2, 17, 30, tzinfo=NY))
    # 11:00 -> 14:00 spans one hour before lunch and one after.
    assert (
        NY_TEAM.business_time_between(
            datetime(2026, 3, 2, 11, tzinfo=NY), datetime(2026, 3, 2, 14, tzinfo=NY)
        )
        == 2 * H
    )
    assert NY_TEAM.add_business_time(datetime(2026, 3, 2, 11, tzinfo=NY), 2 * H) == datetime(
        2026, 3, 2, 14, tzinfo=NY
    )


def test_add_that_ends_exactly_at_block_end_returns_block_end() -> None:
    # 16:00 Friday + 1h = 17:00 Friday (the breach instant), not Monday 09:00.
    fri_16 = datetime(2026, 3, 6, 16, tzinfo=LA)
    assert LA_REP.add_business_time(fri_16, H) == datetime(2026, 3, 6, 17, tzinfo=LA)
    assert LA_REP.add_business_time(fri_16, H + US) == datetime(2026, 3, 9, 9, 0, 0, 1, tzinfo=LA)


@pytest.mark.parametrize(
    ("arrival", "expected_start"),
    [
        # Night arrival snaps to the next morning.
        (datetime(2026, 3, 3, 2, 17, tzinfo=NY), datetime(2026, 3, 3, 9, tzinfo=NY)),
        # Friday evening snaps to Monday.
        (datetime(2026, 3, 6, 17, 30, tzinfo=NY), datetime(2026, 3, 9, 9, tzinfo=NY)),
        # Lunch snaps to the afternoon block.
        (datetime(2026, 3, 4, 12, 0, tzinfo=NY), datetime(2026, 3, 4, 13, tzinfo=NY)),
        # Already working: unchanged.
        (datetime(2026, 3, 4, 10, 15, 7, tzinfo=NY), datetime(2026, 3, 4, 10, 15, 7, tzinfo=NY)),
        # Holiday (Thanksgiving Thu) -> Friday morning.
        (datetime(2026, 11, 26, 10, tzinfo=NY), datetime(2026, 11, 27, 9, tzinfo=NY)),
        # Christmas Friday + weekend -> Monday 28th.
        (datetime(2026, 12, 24, 18, tzinfo=NY), datetime(2026, 12, 28, 9, tzinfo=NY)),
    ],
)
def test_next_working_instant_snaps_forward(arrival: datetime, expected_start: datetime) -> None:
    got = NY_TEAM.next_working_instant(arrival)
    assert got == expected_start
    assert got.tzinfo is UTC
    assert NY_TEAM.add_business_time(arrival, ZERO) == expected_start


def test_zero_delta_and_reverse_ranges() -> None:
    a = datetime(2026, 3, 4, 10, tzinfo=NY)
    assert NY_TEAM.add_business_time(a, ZERO) == a
    assert NY_TEAM.business_time_between(a, a) == ZERO
    assert NY_TEAM.business_time_between(a + H, a) == ZERO
    assert NY_TEAM.business_minutes_between(a + H, a) == 0


def test_business_minutes_floor() -> None:
    a = datetime(2026, 3, 4, 10, tzinfo=NY)
    assert NY_TEAM.business_minutes_between(a, a + 5 * H - US) == 239  # lunch
    assert NY_TEAM.business_minutes_between(a, a + 5 * H) == 240
    # Across the weekend only Friday afternoon and Monday morning count.
    fri = datetime(2026, 3, 6, 16, tzinfo=NY)
    mon = datetime(2026, 3, 9, 10, tzinfo=NY)
    assert NY_TEAM.business_minutes_between(fri, mon) == 150


def test_results_are_utc_and_accept_any_aware_input() -> None:
    a_ny = datetime(2026, 3, 4, 10, tzinfo=NY)
    a_tokyo = a_ny.astimezone(ZoneInfo("Asia/Tokyo"))
    r1 = NY_TEAM.add_business_time(a_ny, 90 * M)
    r2 = NY_TEAM.add_business_time(a_tokyo, 90 * M)
    assert r1 == r2 == utc(2026, 3, 4, 16, 30)
    assert r1.tzinfo is UTC and r2.tzinfo is UTC


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.is_working(datetime(2026, 3, 4, 10)),
        lambda c: c.next_working_instant(datetime(2026, 3, 4, 10)),
        lambda c: c.add_business_time(datetime(2026, 3, 4, 10), H),
        lambda c: c.business_time_between(datetime(2026, 3, 4, 10), utc(2026, 3, 5)),
        lambda c: c.business_minutes_between(utc(2026, 3, 4), datetime(2026, 3, 5)),
    ],
)
def test_naive_datetimes_are_rejected(call: object) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        call(NY_TEAM)  # type: ignore[operator]


def test_negative_delta_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        NY_TEAM.add_business_time(utc(2026, 3, 4), -M)


def test_working_intervals_inclusive_range_and_week_total() -> None:
    week = intervals(NY_TEAM, date(2026, 3, 2), date(2026, 3, 8))
    assert len(week) == 10  # 5 days x 2 blocks, weekend empty
    assert total(week) == 5 * 7.5 * H
    assert all(s.tzinfo is UTC and e.tzinfo is UTC and s < e for s, e in week)
    assert intervals(NY_TEAM, date(2026, 3, 7), date(2026, 3, 8)) == []
    with pytest.raises(TypeError):
        list(NY_TEAM.working_intervals(utc(2026, 3, 2), date(2026, 3, 3)))


def test_twenty_four_hour_blocks_touch_across_midnight() -> None:
    a = datetime(2026, 6, 1, 22, tzinfo=BERLIN)
    assert ALWAYS_ON.business_time_between(a, a + 5 * H) == 5 * H
    assert ALWAYS_ON.add_business_time(a, 5 * H) == a + 5 * H
    assert ALWAYS_ON.is_working(datetime(2026, 6, 2, 0, 0, tzinfo=BERLIN))


# ============================================================ cross-zone SLA deadlines

LA_PLAIN = BusinessCalendar(timezone="America/Los_Angeles", holiday_country="US")
LONDON_REP = BusinessCalendar(
    timezone="Europe/London",
    hours={d: ["09:00-17:30"] for d in ("mon", "tue", "wed", "thu", "fri")},
    holiday_country="GB",
    holiday_subdivision="ENG",
)


@pytest.mark.parametrize(
    ("friday", "la_deadline", "london_deadline"),
    [
        # Winter: 17:59 GMT = 09:59 PST, the LA rep is at work -> 13:59 PST.
        (date(2026, 1, 16), utc(2026, 1, 16, 21, 59), utc(2026, 1, 19, 13)),
        # US already on DST, UK not yet: 17:59 GMT = 10:59 PDT -> 14:59 PDT.
        (date(2026, 3, 20), utc(2026, 3, 20, 21, 59), utc(2026, 3, 23, 13)),
        # 3 July 2026 is the observed US Independence Day: LA starts Monday 09:00 PDT.
        (date(2026, 7, 3), utc(2026, 7, 6, 20), utc(2026, 7, 6, 12)),
    ],
)
def test_friday_1759_london_lead_four_hour_deadlines(
    friday: date, la_deadline: datetime, london_deadline: datetime
) -> None:
    arrival = datetime.combine(friday, time(17, 59), LONDON)
    assert LA_PLAIN.add_business_time(arrival, 4 * H) == la_deadline
    assert LONDON_REP.add_business_time(arrival, 4 * H) == london_deadline
    assert LA_PLAIN.business_time_between(arrival, la_deadline) == 4 * H
    assert LONDON_REP.business_time_between(arrival, london_deadline) == 4 * H


# ============================================================ holidays


def test_us_holiday_counts_only_for_us_rep() -> None:
    # 2026-07-04 is a Saturday; the US observes it on Friday 3 July; England does not.
    a = datetime(2026, 7, 3, tzinfo=UTC)
    b = datetime(2026, 7, 4, 12, tzinfo=UTC)
    gb = BusinessCalendar(timezone="UTC", holiday_country="GB")
    us = BusinessCalendar(timezone="UTC", holiday_country="US")
    assert us.business_time_between(a, b) == ZERO
    assert gb.business_time_between(a, b) == 8 * H
    assert intervals(us, date(2026, 7, 3)) == []
    assert not us.is_working(utc(2026, 7, 3, 10))
    assert gb.is_working(utc(2026, 7, 3, 10))


def test_corpus_christi_in_bavaria_not_in_berlin() -> None:
    fronleichnam = date(2026, 6, 4)
    by = BusinessCalendar(timezone="Europe/Berlin", holiday_country="DE", holiday_subdivision="BY")
    be = BusinessCalendar(timezone="Europe/Berlin", holiday_country="DE", holiday_subdivision="BE")
    start = datetime(2026, 6, 4, tzinfo=BERLIN)
    end = datetime(2026, 6, 5, tzinfo=BERLIN)
    assert by.business_time_between(start, end) == ZERO
    assert be.business_time_between(start, end) == 8 * H
    assert intervals(by, fronleichnam) == []
    # A lead on Wednesday 16:00 with a 4h SLA: Bavaria skips Thursday.
    wed = datetime(2026, 6, 3, 16, tzinfo=BERLIN)
    assert by.add_business_time(wed, 4 * H) == datetime(2026, 6, 5, 12, tzinfo=BERLIN)
    assert be.add_business_time(wed, 4 * H) == datetime(2026, 6, 4, 12, tzinfo=BERLIN)


def test_scotland_has_st_andrews_day_england_does_not() -> None:
    sct = BusinessCalendar(
        timezone="Europe/London", holiday_country="GB", holiday_subdivision="sct"
    )
    eng = BusinessCalendar(
        timezone="Europe/London", holiday_country="GB", holiday_subdivision="ENG"
    )
    assert sct.holiday_subdivision == "SCT"
    assert intervals(sct, date(2026, 11, 30)) == []
    assert total(intervals(eng, date(2026, 11, 30))) == 8 * H


def test_extra_holidays_are_whole_days_off() -> None:
    d = date(2026, 12, 24)  # Thursday, not a public holiday in DE-BY
    assert intervals(BERLIN_BY, d) == []
    assert total(intervals(BERLIN_BY, date(2026, 12, 23))) == 8 * H
    assert BERLIN_BY.next_working_instant(datetime(2026, 12, 23, 18, tzinfo=BERLIN)) == datetime(
        2026,
        12,
        27,
        0,
        tzinfo=BERLIN,  # 25th and Saturday 26th are holidays: Sunday 00:00
    )


# ============================================================ time off


def test_date_range_time_off_is_inclusive() -> None:
    assert total(intervals(LA_REP, date(2026, 8, 7))) == 8 * H  # Friday before
    assert intervals(LA_REP, date(2026, 8, 10), date(2026, 8, 14)) == []
    assert total(intervals(LA_REP, date(2026, 8, 17))) == 8 * H
    thu = datetime(2026, 8, 6, 15, tzinfo=LA)
    # Thu 2h + Fri 8h + (vacation week) + Mon 17th 2h
    assert LA_REP.add_business_time(thu, 12 * H) == datetime(2026, 8, 17, 11, tzinfo=LA)


def test_datetime_time_off_splits_a_block() -> None:
    day = intervals(LA_REP, date(2026, 9, 15))
    assert day == [
        (datetime(2026, 9, 15, 9, tzinfo=LA), datetime(2026, 9, 15, 10, 30, tzinfo=LA)),
        (datetime(2026, 9, 15, 14, tzinfo=LA), datetime(2026, 9, 15, 17, tzinfo=LA)),
    ]
    assert not LA_REP.is_working(datetime(2026, 9, 15, 12, tzinfo=LA))
    assert LA_REP.next_working_instant(datetime(2026, 9, 15, 11, tzinfo=LA)) == datetime(
        2026, 9, 15, 14, tzinfo=LA
    )
    assert LA_REP.add_business_time(datetime(2026, 9, 15, 10, tzinfo=LA), H) == datetime(
        2026, 9, 15, 14, 30, tzinfo=LA
    )


def test_time_off_accepts_iso_strings_and_overlapping_ranges_merge() -> None:
    cal = BusinessCalendar(
        timezone="UTC",
        time_off=[
            {"start": "2026-03-02", "end": "2026-03-03"},
            {"start": "2026-03-03", "end": "2026-03-04"},
            {"start": "2026-03-05T10:00:00+00:00", "end": "2026-03-05T12:00:00Z"},
            {"start": "2026-03-05T11:00:00+00:00", "end": "2026-03-05T13:00:00Z"},
        ],
    )
    assert isinstance(cal.time_off[0].start, date) and not isinstance(
        cal.time_off[0].start, datetime
    )
    assert intervals(cal, date(2026, 3, 2), date(2026, 3, 4)) == []
    assert total(intervals(cal, date(2026, 3, 5))) == 5 * H


# ============================================================ DST


@pytest.mark.parametrize(
    ("cal", "day", "expected"),
    [
        # Spec examples: a 01:00-03:00 block is 1h on spring-forward, 3h on fall-back.
        (
            BusinessCalendar(timezone="America/New_York", hours={"sun": ["01:00-03:00"]}),
            date(2026, 3, 8),
            [(utc(2026, 3, 8, 6), utc(2026, 3, 8, 7))],
        ),
        (
            BusinessCalendar(timezone="America/New_York", hours={"sun": ["01:00-03:00"]}),
            date(2026, 11, 1),
            [(utc(2026, 11, 1, 5), utc(2026, 11, 1, 8))],
        ),
        # New York, 00:30-04:00 straddling 02:00: 2.5h in spring, 4.5h in autumn.
        (NY_NIGHT, date(2026, 3, 8), [(utc(2026, 3, 8, 5, 30), utc(2026, 3, 8, 8))]),
        (NY_NIGHT, date(2026, 11, 1), [(utc(2026, 11, 1, 4, 30), utc(2026, 11, 1, 9))]),
        # Berlin, 00:00-04:00 straddling the EU switch: 3h in spring, 5h in autumn.
        (
            BERLIN_BY,
            date(2026, 3, 29),
            [
                (utc(2026, 3, 28, 23), utc(2026, 3, 29, 2)),
                (utc(2026, 3, 29, 8), utc(2026, 3, 29, 10)),
            ],
        ),
        (
            BERLIN_BY,
            date(2026, 10, 25),
            [
                (utc(2026, 10, 24, 22), utc(2026, 10, 25, 3)),
                (utc(2026, 10, 25, 9), utc(2026, 10, 25, 11)),
            ],
        ),
        # Endpoint inside the skipped hour snaps to the jump (03:00 EDT = 07:00Z).
        (
            BusinessCalendar(timezone="America/New_York", hours={"sun": ["02:30-05:00"]}),
            date(2026, 3, 8),
            [(utc(2026, 3, 8, 7), utc(2026, 3, 8, 9))],
        ),
        # A block entirely inside the skipped hour vanishes that day only.
        (
            BusinessCalendar(timezone="America/New_York", hours={"sun": ["02:10-02:50"]}),
            date(2026, 3, 8),
            [],
        ),
        (
            BusinessCalendar(timezone="America/New_York", hours={"sun": ["02:10-02:50"]}),
            date(2026, 3, 15),
            [(utc(2026, 3, 15, 6, 10), utc(2026, 3, 15, 6, 50))],
        ),
        # Endpoint inside the repeated hour means its first occurrence (EDT).
        (
            BusinessCalendar(timezone="America/New_York", hours={"sun": ["01:30-05:00"]}),
            date(2026, 11, 1),
            [(utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 10))],
        ),
        (
            BusinessCalendar(timezone="Europe/Berlin", hours={"sun": ["00:00-02:30"]}),
            date(2026, 10, 25),
            [(utc(2026, 10, 24, 22), utc(2026, 10, 25, 0, 30))],
        ),
    ],
    ids=[
        "ny-spring-01-03",
        "ny-fall-01-03",
        "ny-spring-straddle",
        "ny-fall-straddle",
        "berlin-spring-straddle",
        "berlin-fall-straddle",
        "ny-spring-start-in-gap",
        "ny-spring-block-in-gap",
        "ny-normal-sunday-control",
        "ny-fall-start-in-repeat",
        "berlin-fall-end-in-repeat",
    ],
)
def test_dst_block_intervals(
    cal: BusinessCalendar, day: date, expected: list[tuple[datetime, datetime]]
) -> None:
    assert intervals(cal, day) == expected


def _wall_minutes_oracle(cal: BusinessCalendar, day: date, start: time, end: time) -> int:
    """Brute force: count real minutes whose local wall reading is on `day` within [start, end)."""
    zone = cal.zone
    t = datetime.combine(day, time(0), zone).astimezone(UTC) - 3 * H
    count = 0
    for _ in range(30 * 60):
        local = t.astimezone(zone)
        if local.date() == day and start <= local.time() < end:
            count += 1
        t += M
    return count


@pytest.mark.parametrize(
    ("zone", "day", "block"),
    [
        ("America/New_York", date(2026, 3, 8), "00:30-04:00"),
        ("America/New_York", date(2026, 11, 1), "00:30-04:00"),
        ("America/New_York", date(2026, 11, 1), "00:00-02:00"),
        ("Europe/Berlin", date(2026, 3, 29), "01:00-04:00"),
        ("Europe/Berlin", date(2026, 10, 25), "01:00-04:00"),
        ("Europe/Berlin", date(2026, 10, 25), "02:00-03:00"),
    ],
)
def test_straddling_blocks_match_minute_scan(zone: str, day: date, block: str) -> None:
    """Independent oracle: for blocks straddling a switch, real minutes = wall-clock minutes."""
    weekday = WEEKDAYS[day.weekday()]
    cal = BusinessCalendar(timezone=zone, hours={weekday: [block]})
    b = TimeBlock.parse(block)
    start = time(b.start_minute // 60, b.start_minute % 60)
    end = time(b.end_minute // 60, b.end_minute % 60)
    expected = _wall_minutes_oracle(cal, day, start, end)
    assert total(intervals(cal, day)) == expected * M
    nominal = b.end_minute - b.start_minute
    assert expected != nominal  # the test really exercises a DST switch


def test_add_across_dst_uses_real_elapsed_time() -> None:
    # 24 business hours from Saturday noon CET on an always-on calendar is Sunday 13:00 CEST.
    start = datetime(2026, 3, 28, 12, tzinfo=BERLIN)
    end = ALWAYS_ON.add_business_time(start, 24 * H)
    assert end == utc(2026, 3, 29, 11)
    assert end.astimezone(BERLIN).hour == 13
    fall = datetime(2026, 10, 24, 12, tzinfo=BERLIN)
    assert ALWAYS_ON.add_business_time(fall, 24 * H).astimezone(BERLIN).hour == 11
    # A Sunday-night lead in NY on spring-forward day: 2.5 real hours, then Monday.
    ny_lead = datetime(2026, 3, 8, 0, 0, tzinfo=NY)
    assert NY_NIGHT.add_business_time(ny_lead, 3 * H) == datetime(2026, 3, 9, 9, 30, tzinfo=NY)


def test_fold_of_input_is_respected() -> None:
    cal = BusinessCalendar(timezone="America/New_York", hours={"sun": ["00:30-01:30"]})
    first = datetime(2026, 11, 1, 1, 15, tzinfo=NY, fold=0)  # 01:15 EDT
    second = datetime(2026, 11, 1, 1, 15, tzinfo=NY, fold=1)  # 01:15 EST, an hour later
    assert cal.is_working(first)
    assert not cal.is_working(second)
    assert cal.business_time_between(first, second) == 15 * M


# ============================================================ invalid configuration


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, r"unknown IANA time zone 'Mars/Olympus_Mons'"),
        ({"timezone": "../etc/passwd"}, r"unknown IANA time zone"),
        ({"timezone": ""}, r"unknown IANA time zone ''"),
        (
            {"timezone": "UTC", "hours": {"mon": ["09:00-12:00", "11:30-17:00"]}},
            r"monday: working blocks 09:00-12:00 and 11:30-17:00 overlap",
        ),
        (
            {"timezone": "UTC", "hours": {"mon": ["09:00-12:00", "11:59-13:00"]}},
            r"overlap",
        ),
        ({"timezone": "UTC", "hours": {"mon": ["17:00-09:00"]}}, r"must start before it ends"),
        ({"timezone": "UTC", "hours": {"mon": ["09:00-09:00"]}}, r"must start before it ends"),
        ({"timezone": "UTC", "hours": {"mon": ["9am-5pm"]}}, r"not of the form 'HH:MM-HH:MM'"),
        ({"timezone": "UTC", "hours": {"mon": ["09:00-24:30"]}}, r"invalid time of day"),
        ({"timezone": "UTC", "hours": {"mon": ["25:00-26:00"]}}, r"invalid time of day"),
        ({"timezone": "UTC", "hours": {"funday": ["09:00-17:00"]}}, r"unknown weekday 'funday'"),
        ({"timezone": "UTC", "hours": {"mon": "09:00-17:00"}}, r"expected a list"),
        (
            {"timezone": "UTC", "hours": {"mon": ["09:00-10:00"], "monday": ["11:00-12:00"]}},
            r"given twice",
        ),
        ({"timezone": "UTC", "hours": {"sat": []}}, r"no working time"),
        ({"timezone": "UTC", "holiday_country": "XX"}, r"unknown holiday_country 'XX'"),
        (
            {"timezone": "UTC", "holiday_country": "DE", "holiday_subdivision": "ZZ"},
            r"unknown holiday_subdivision 'ZZ' for holiday_country 'DE'; known subdivisions: .*BY",
        ),
        ({"timezone": "UTC", "holiday_subdivision": "BY"}, r"without holiday_country"),
        ({"timezone": "UTC", "timezon": "UTC"}, r"timezon\s+Extra inputs are not permitted"),
        (
            {
                "timezone": "UTC",
                "time_off": [{"start": "2026-03-02T09:00:00", "end": "2026-03-03"}],
            },
            r"both be dates or both be datetimes",
        ),
        (
            {
                "timezone": "UTC",
                "time_off": [{"start": "2026-03-02T09:00:00", "end": "2026-03-02T10:00:00"}],
            },
            r"naive datetime",
        ),
        (
            {"timezone": "UTC", "time_off": [{"start": "2026-03-05", "end": "2026-03-02"}]},
            r"end date is before start date",
        ),
        (
            {
                "timezone": "UTC",
                "time_off": [{"start": "2026-03-02T10:00:00Z", "end": "2026-03-02T10:00:00Z"}],
            },
            r"end must be after start",
        ),
    ],
)
def test_invalid_config_is_a_clear_validation_error(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        BusinessCalendar.model_validate(kwargs)


def test_validation_error_is_a_value_error_and_reports_every_problem() -> None:
    with pytest.raises(ValueError) as info:
        BusinessCalendar.model_validate(
            {"timezone": "Nowhere/Land", "holiday_country": "XX", "hours": {"mon": ["x"]}}
        )
    text = str(info.value)
    assert "Nowhere/Land" in text and "'XX'" in text and "'x'" in text


def test_touching_blocks_are_allowed_and_count_continuously() -> None:
    cal = BusinessCalendar(timezone="UTC", hours={"mon": ["12:00-13:00", "09:00-12:00"]})
    assert cal.hours["monday"] == ["09:00-12:00", "12:00-13:00"]
    assert cal.is_working(utc(2026, 3, 2, 12))
    assert cal.add_business_time(utc(2026, 3, 2, 11), 2 * H) == utc(2026, 3, 2, 13)


def test_working_hours_direct_api() -> None:
    wh = WorkingHours.from_mapping({"tue": ["13:00-17:00", "08:00-12:00"]})
    assert [str(b) for b in wh.days[1]] == ["08:00-12:00", "13:00-17:00"]
    assert wh.weekly_duration == 8 * H
    cal = BusinessCalendar(timezone="UTC", hours=wh)
    assert cal.working_hours == wh
    with pytest.raises(ValueError, match="exactly 7"):
        WorkingHours(days=((),))
    assert str(TimeBlock.parse("00:00-24:00")) == "00:00-24:00"


def test_calendar_is_frozen_hashable_and_round_trips_through_dump() -> None:
    clone = BusinessCalendar.model_validate(BERLIN_BY.model_dump())
    assert clone == BERLIN_BY and hash(clone) == hash(BERLIN_BY)
    assert len({clone, BERLIN_BY}) == 1
    json_clone = BusinessCalendar.model_validate_json(LA_REP.model_dump_json())
    assert json_clone == LA_REP
    with pytest.raises(ValidationError):
        BERLIN_BY.timezone = "UTC"  # type: ignore[misc]


def test_model_copy_with_update_revalidates_and_recompiles() -> None:
    moved = NY_TEAM.model_copy(update={"timezone": "UTC"})
    assert moved.zone == ZoneInfo("UTC")
    assert intervals(moved, date(2026, 3, 2))[0] == (utc(2026, 3, 2, 9), utc(2026, 3, 2, 12))
    with pytest.raises(ValidationError, match="unknown IANA time zone"):
        NY_TEAM.model_copy(update={"timezone": "Nope/Nope"})
    assert NY_TEAM.model_copy() == NY_TEAM


def test_docs_toml_example_loads() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "sla-calendars.md"
    block = re.search(r"```toml\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)
    assert block is not None
    config = tomllib.loads(block.group(1))
    team = BusinessCalendar.model_validate(config["sla"]["calendars"]["emea"])
    assert team.timezone == "Europe/Berlin" and team.holiday_subdivision == "BY"
    assert team.hours["monday"] == ["09:00-12:00", "13:00-17:30"]
    # The rep table also carries contact keys (email), so it goes through RepSettings, as the
    # guide shows; the raw table would be refused.
    rep = overlay(team, RepSettings.model_validate(config["sla"]["reps"]["alice"]))
    assert rep.timezone == "Europe/London" and rep.holiday_country == "GB"
    assert any(isinstance(t.start, datetime) for t in rep.time_off)


# ============================================================ overlay


def test_overlay_timezone_keeps_wall_clock_hours() -> None:
    rep = overlay(NY_TEAM, {"timezone": "America/Los_Angeles"})
    assert rep.hours == NY_TEAM.hours
    assert rep.holiday_country == "US"
    assert intervals(rep, date(2026, 3, 2))[0] == (utc(2026, 3, 2, 17), utc(2026, 3, 2, 20))


def test_overlay_merges_hours_per_weekday() -> None:
    rep = overlay(NY_TEAM, RepOverrides(hours={"friday": [], "sat": ["10:00-12:00"]}))
    assert rep.hours["friday"] == []
    assert rep.hours["saturday"] == ["10:00-12:00"]
    assert rep.hours["monday"] == NY_TEAM.hours["monday"]
    assert intervals(rep, date(2026, 3, 6)) == []


def test_overlay_holiday_country_replaces_subdivision() -> None:
    rep = overlay(BERLIN_BY, {"holiday_country": "GB", "timezone": "Europe/London"})
    assert (rep.holiday_country, rep.holiday_subdivision) == ("GB", None)
    assert total(intervals(rep, date(2026, 6, 4))) == 8 * H  # no Corpus Christi in GB
    # Company extra holidays still apply.
    assert intervals(rep, date(2026, 12, 24)) == []
    berlin_rep = overlay(BERLIN_BY, {"holiday_subdivision": "BE"})
    assert (berlin_rep.holiday_country, berlin_rep.holiday_subdivision) == ("DE", "BE")
    no_holidays = overlay(BERLIN_BY, {"holiday_country": ""})
    assert no_holidays.holiday_country is None
    assert total(intervals(no_holidays, date(2026, 6, 4))) == 8 * H


def test_overlay_adds_time_off_and_extra_holidays() -> None:
    rep = overlay(
        LA_REP,
        {
            "time_off": [{"start": "2026-03-02", "end": "2026-03-02"}],
            "extra_holidays": ["2026-03-03"],
        },
    )
    assert len(rep.time_off) == 3
    assert intervals(rep, date(2026, 3, 2), date(2026, 3, 3)) == []
    assert intervals(rep, date(2026, 8, 10)) == []  # team time off kept
    assert (
        LA_REP.business_time_between(
            datetime(2026, 3, 2, tzinfo=LA), datetime(2026, 3, 4, tzinfo=LA)
        )
        == 16 * H
    )


def test_overlay_errors_are_validation_errors() -> None:
    with pytest.raises(ValidationError, match="unknown IANA time zone 'Moon/Base'"):
        overlay(NY_TEAM, {"timezone": "Moon/Base"})
    with pytest.raises(ValidationError, match="Extra inputs"):
        overlay(NY_TEAM, {"hourz": {}})
    with pytest.raises(ValidationError, match="unknown holiday_subdivision 'BY'"):
        overlay(NY_TEAM, {"holiday_subdivision": "BY"})


def test_equal_overlays_are_equal() -> None:
    a = overlay(NY_TEAM, {"timezone": "America/Chicago"})
    b = overlay(NY_TEAM, RepOverrides(timezone="America/Chicago"))
    assert a == b and hash(a) == hash(b)


def test_far_future_and_long_spans() -> None:
    start = datetime(2026, 1, 5, 9, tzinfo=NY)
    end = NY_TEAM.add_business_time(start, 2000 * H)
    assert NY_TEAM.business_time_between(start, end) == 2000 * H
    # ~10 years of plain weekdays, sanity-checked against the interval listing.
    ten_years = BusinessCalendar(timezone="UTC").business_time_between(
        utc(2020, 1, 1), utc(2030, 1, 1)
    )
    assert ten_years == 2609 * 8 * H  # 2609 weekdays in 2020-2029


# ============================================================ hypothesis properties

YEAR_START = utc(2026, 1, 1)
YEAR_US = 366 * 86_400 * 1_000_000

cals = st.sampled_from(CALENDARS)
instants = st.integers(min_value=0, max_value=YEAR_US).map(lambda us: YEAR_START + us * US)
minute_instants = st.integers(min_value=0, max_value=YEAR_US // 60_000_000).map(
    lambda m: YEAR_START + m * M
)
deltas = st.one_of(
    st.integers(min_value=0, max_value=60 * 24 * 20).map(lambda m: m * M),
    st.integers(min_value=0, max_value=10**12).map(lambda us: us * US),
)
positive_deltas = deltas.filter(lambda d: d > ZERO)

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _oracle_between(cal: BusinessCalendar, a: datetime, b: datetime) -> timedelta:
    """Sum of working intervals clipped to [a, b), via the independent listing API."""
    if b <= a:
        return ZERO
    d0 = a.astimezone(cal.zone).date() - timedelta(days=1)
    d1 = b.astimezone(cal.zone).date() + timedelta(days=1)
    out = ZERO
    for s, e in cal.working_intervals(d0, d1):
        lo, hi = max(s, a), min(e, b)
        if hi > lo:
            out += hi - lo
    return out


@PROPS
@given(cal=cals, s=instants, d=deltas)
def test_prop_round_trip(cal: BusinessCalendar, s: datetime, d: timedelta) -> None:
    end = cal.add_business_time(s, d)
    assert cal.business_time_between(s, end) == d
    snapped = cal.next_working_instant(s)
    assert cal.business_time_between(snapped, end) == d
    assert end >= snapped >= s


@PROPS
@given(cal=cals, s=instants, d=positive_deltas)
def test_prop_add_lands_in_working_time_or_at_block_end(
    cal: BusinessCalendar, s: datetime, d: timedelta
) -> None:
    end = cal.add_business_time(s, d)
    # Earliest instant: the microsecond before it was still working time ...
    assert cal.is_working(end - US)
    # ... and the result is either working or exactly a block (or time-off) end.
    if not cal.is_working(end):
        day = end.astimezone(cal.zone).date()
        ends = {e for _, e in cal.working_intervals(day - timedelta(days=1), day)}
        assert end in ends


@PROPS
@given(cal=cals, s1=instants, s2=instants, d=deltas)
def test_prop_monotonic_in_start(
    cal: BusinessCalendar, s1: datetime, s2: datetime, d: timedelta
) -> None:
    s1, s2 = min(s1, s2), max(s1, s2)
    assert cal.add_business_time(s1, d) <= cal.add_business_time(s2, d)


@PROPS
@given(cal=cals, s=instants, d1=deltas, d2=deltas)
def test_prop_monotonic_in_delta(
    cal: BusinessCalendar, s: datetime, d1: timedelta, d2: timedelta
) -> None:
    d1, d2 = min(d1, d2), max(d1, d2)
    assert cal.add_business_time(s, d1) <= cal.add_business_time(s, d2)


@PROPS
@given(cal=cals, s=instants, d1=deltas, d2=positive_deltas)
def test_prop_additive(cal: BusinessCalendar, s: datetime, d1: timedelta, d2: timedelta) -> None:
    assert cal.add_business_time(cal.add_business_time(s, d1), d2) == cal.add_business_time(
        s, d1 + d2
    )


@PROPS
@given(cal=cals, s=instants, d=deltas)
def test_prop_adding_zero_after_add_only_snaps(
    cal: BusinessCalendar, s: datetime, d: timedelta
) -> None:
    # The documented exception to additivity: a zero delta snaps a block end forward.
    mid = cal.add_business_time(s, d)
    assert cal.add_business_time(mid, ZERO) == cal.next_working_instant(mid)


@PROPS
@given(cal=cals, a=instants, b=instants, c=instants)
def test_prop_between_matches_oracle_and_is_additive(
    cal: BusinessCalendar, a: datetime, b: datetime, c: datetime
) -> None:
    a, b, c = sorted((a, b, c))
    ab = cal.business_time_between(a, b)
    assert ab == _oracle_between(cal, a, b)
    assert ab + cal.business_time_between(b, c) == cal.business_time_between(a, c)
    assert cal.business_time_between(b, a) == (ZERO if a < b else ab)


@PROPS
@given(cal=cals, t=instants)
def test_prop_next_working_instant(cal: BusinessCalendar, t: datetime) -> None:
    n = cal.next_working_instant(t)
    assert n >= t
    assert cal.is_working(n)
    assert cal.next_working_instant(n) == n
    assert (n == t) == cal.is_working(t)
    # Nothing was skipped: no business time between t and n.
    assert cal.business_time_between(t, n) == ZERO


@PROPS
@given(cal=cals, day=st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 12, 31)))
def test_prop_weekends_holidays_and_days_off_never_count(cal: BusinessCalendar, day: date) -> None:
    weekday = WEEKDAYS[day.weekday()]
    zone = cal.zone
    a = datetime.combine(day, time(0), zone)
    b = datetime.combine(day + timedelta(days=1), time(0), zone)
    measured = cal.business_time_between(a, b)
    if not cal.hours[weekday] or day in cal.extra_holidays or _is_public_holiday(cal, day):
        assert measured == ZERO
        assert cal.next_working_instant(a) >= b
    else:
        assert measured == total(intervals(cal, day))


def _is_public_holiday(cal: BusinessCalendar, day: date) -> bool:
    import holidays

    if cal.holiday_country is None:
        return False
    return day in holidays.country_holidays(cal.holiday_country, subdiv=cal.holiday_subdivision)


@settings(max_examples=40, deadline=None)
@given(cal=cals, t=minute_instants)
def test_prop_is_working_agrees_with_intervals(cal: BusinessCalendar, t: datetime) -> None:
    day = t.astimezone(cal.zone).date()
    listed = cal.working_intervals(day - timedelta(days=1), day + timedelta(days=1))
    assert cal.is_working(t) == any(s <= t < e for s, e in listed)


off_ranges = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=60 * 24 * 30),
        st.integers(min_value=1, max_value=60 * 60),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=50, deadline=None)
@given(
    ranges=off_ranges,
    a=st.integers(min_value=0, max_value=60 * 24 * 35),
    b=st.integers(min_value=0, max_value=60 * 24 * 35),
    d=st.integers(min_value=1, max_value=60 * 60),
)
def test_prop_datetime_time_off_is_subtracted_exactly(
    ranges: list[tuple[int, int]], a: int, b: int, d: int
) -> None:
    """Oracle: base business time minus base business time inside each (merged) hole."""
    origin = datetime(2026, 3, 2, tzinfo=NY)  # spans the US spring-forward switch
    holes = [(origin + s * M, origin + (s + n) * M) for s, n in ranges]
    cal = overlay(NY_TEAM, {"time_off": [{"start": s, "end": e} for s, e in holes]})
    merged: list[list[datetime]] = []
    for s, e in sorted(holes):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    lo, hi = sorted((origin + a * M, origin + b * M))
    expected = NY_TEAM.business_time_between(lo, hi) - sum(
        (NY_TEAM.business_time_between(max(lo, s), min(hi, e)) for s, e in merged), ZERO
    )
    assert cal.business_time_between(lo, hi) == expected
    end = cal.add_business_time(lo, d * M)
    assert cal.business_time_between(lo, end) == d * M
    assert not any(s <= end - US < e for s, e in merged)
