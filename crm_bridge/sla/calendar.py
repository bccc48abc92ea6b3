"""Business calendars: when an SLA clock ticks, and when it does not.

A sales-accepted-lead SLA ("accept within 4 business hours") is measured in
*business* time, i.e. only while the rep is supposed to be working.  This module
answers the three questions an SLA evaluator asks, for one team or one rep:

* is this instant working time?  (:meth:`BusinessCalendar.is_working`)
* when is the deadline?  (:meth:`BusinessCalendar.add_business_time`)
* how much business time has elapsed?  (:meth:`BusinessCalendar.business_time_between`)

Design rules, and why:

* **Pure.**  No I/O, no clock reads: "now" is always an argument, so the SLA engine
  is deterministic and replayable in tests.
* **Aware datetimes only.**  A naive datetime is ambiguous across rep time zones,
  which is precisely the bug class this module exists to prevent, so it is a
  :class:`ValueError` rather than a guess.
* **Wall-clock hours, real-time durations.**  Working hours are written in the
  calendar's own IANA zone ("09:00-17:00" in ``America/New_York``); durations are
  real elapsed time.  On DST days a block therefore lasts as long as it really
  lasts (a 01:00-03:00 block is 3 h on a fall-back day, 1 h on a spring-forward day).
* **Results are UTC.**  Every returned datetime is aware with ``tzinfo=UTC``; compare
  or convert them as needed.  Instants are equal regardless of zone, so
  ``next_working_instant(dt) == dt`` holds whenever ``dt`` is working time.
* **Fast.**  Working intervals are materialised lazily per local date and compiled
  into fixed 64-day UTC chunks with prefix sums, so every query is a couple of
  bisections on integer microseconds: no minute-by-minute (or even day-by-day)
  iteration on the hot path.  Compiled engines are shared between equal calendars.

Semantics of a working block ``[start, end)`` on local date *d*: it runs from the
first moment the wall clock on *d* reads ``start`` (or later) until the first moment
it reads ``end`` (or later).  Consequences: an endpoint inside the skipped hour of a
spring-forward day snaps to the instant the clock jumps; an endpoint inside the
repeated hour of a fall-back day refers to its *first* occurrence; ``24:00`` means
the first instant of the next day.  Blocks are half-open, so a block's end is not
working time.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property, lru_cache
from itertools import pairwise
from typing import Any, Self, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

__all__ = [
    "WEEKDAYS",
    "BusinessCalendar",
    "RepOverrides",
    "TimeBlock",
    "TimeOff",
    "WorkingHours",
    "overlay",
]

WEEKDAYS: tuple[str, ...] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)
_WEEKDAY_INDEX: dict[str, int] = {
    **{name: i for i, name in enumerate(WEEKDAYS)},
    **{name[:3]: i for i, name in enumerate(WEEKDAYS)},
}

_BLOCK_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*[-\u2013]\s*(\d{1,2}):(\d{2})\s*$")
_MINUTES_PER_DAY = 24 * 60

# Instants are handled internally as integer microseconds since the Unix epoch:
# exact (timedelta round trips hold bit for bit) and cheap to compare and bisect.
_US = timedelta(microseconds=1)
_ZERO = timedelta(0)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_SECOND_US = 1_000_000
_DAY_US = 86_400 * _SECOND_US
_CHUNK_US = 64 * _DAY_US
# Keep a few days of headroom from datetime.min/max so local-date conversions of
# chunk edges never overflow.
_MIN_US = (datetime(1, 1, 10, tzinfo=UTC) - _EPOCH) // _US
_MAX_US = (datetime(9999, 12, 20, tzinfo=UTC) - _EPOCH) // _US


def _require_aware(dt: datetime, name: str) -> None:
    """Reject naive datetimes: their meaning depends on whose zone you guess."""
    if dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None:
        raise ValueError(
            f"{name} must be a timezone-aware datetime, got naive {dt.isoformat()!r}; "
            "attach a tzinfo (e.g. ZoneInfo('Europe/Berlin') or datetime.UTC)"
        )


def _to_us(dt: datetime, name: str) -> int:
    """Convert an aware datetime to integer microseconds since the epoch."""
    if dt.tzinfo is None:
        _require_aware(dt, name)
    try:
        return (dt - _EPOCH) // _US
    except TypeError:  # a tzinfo whose utcoffset() is None
        _require_aware(dt, name)
        raise


def _from_us(us: int) -> datetime:
    return _EPOCH + _US * us  # ~2.5x faster than timedelta(microseconds=us)


def _fmt_minute(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


# --------------------------------------------------------------------------- hours


@dataclass(frozen=True, order=True, slots=True)
class TimeBlock:
    """One working block of a day, in wall-clock minutes since local midnight.

    ``end_minute`` may be 1440 (written ``24:00``) so that a block can run up to
    midnight without an off-by-one minute.
    """

    start_minute: int
    end_minute: int

    def __post_init__(self) -> None:
        """Enforce 0 <= start < end <= 24:00 so every block has positive length."""
        if not 0 <= self.start_minute < _MINUTES_PER_DAY:
            raise ValueError(f"block start {_fmt_minute(self.start_minute)} is not a time of day")
        if not 0 < self.end_minute <= _MINUTES_PER_DAY:
            raise ValueError(f"block end {_fmt_minute(self.end_minute)} is not a time of day")
        if self.start_minute >= self.end_minute:
            raise ValueError(
                f"block {self} must start before it ends (blocks cannot cross midnight; "
                "split a night shift into two days' blocks)"
            )

    @classmethod
    def parse(cls, text: str) -> TimeBlock:
        """Parse ``"HH:MM-HH:MM"`` (``24:00`` allowed as an end)."""
        m = _BLOCK_RE.match(text)
        if m is None:
            raise ValueError(f"working block {text!r} is not of the form 'HH:MM-HH:MM'")
        sh, sm, eh, em = (int(g) for g in m.groups())
        if sm > 59 or em > 59 or sh > 23 or eh > 24 or (eh == 24 and em != 0):
            raise ValueError(f"working block {text!r} contains an invalid time of day")
        return cls(sh * 60 + sm, eh * 60 + em)

    @property
    def duration(self) -> timedelta:
        """Nominal length (ignoring DST, which only the calendar's zone can resolve)."""
        return timedelta(minutes=self.end_minute - self.start_minute)

    def __str__(self) -> str:
        """Canonical ``HH:MM-HH:MM`` form, the same shape the config uses."""
        return f"{_fmt_minute(self.start_minute)}-{_fmt_minute(self.end_minute)}"


def _validate_day(blocks: Sequence[TimeBlock], day: str) -> tuple[TimeBlock, ...]:
    ordered = tuple(sorted(blocks))
    for prev, cur in pairwise(ordered):
        if cur.start_minute < prev.end_minute:
            raise ValueError(f"{day}: working blocks {prev} and {cur} overlap")
    return ordered


@dataclass(frozen=True, slots=True)
class WorkingHours:
    """Weekly working pattern: for each weekday (Monday first) its sorted blocks.

    Several blocks per day are allowed (a lunch break is just a gap).  Blocks are
    sorted on construction and must not overlap; touching blocks are allowed.
    """

    days: tuple[tuple[TimeBlock, ...], ...]

    def __post_init__(self) -> None:
        """Check shape and normalise block order so lookups can rely on it."""
        if len(self.days) != 7:
            raise ValueError(f"WorkingHours needs exactly 7 weekdays, got {len(self.days)}")
        normalised = tuple(
            _validate_day(blocks, name) for name, blocks in zip(WEEKDAYS, self.days, strict=True)
        )
        object.__setattr__(self, "days", normalised)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Sequence[str]]) -> WorkingHours:
        """Build from ``{"monday": ["09:00-12:00", "13:00-17:30"], ...}``.

        Weekday names are case-insensitive and may be abbreviated (``mon``).
        Missing weekdays are days off.
        """
        days: list[list[TimeBlock]] = [[] for _ in WEEKDAYS]
        seen: dict[int, str] = {}
        for raw_name, raw_blocks in mapping.items():
            if not isinstance(raw_name, str):
                raise ValueError(f"weekday key {raw_name!r} must be a string")
            index = _WEEKDAY_INDEX.get(raw_name.strip().lower())
            if index is None:
                raise ValueError(
                    f"unknown weekday {raw_name!r}; expected one of {', '.join(WEEKDAYS)}"
                )
            if index in seen:
                raise ValueError(
                    f"weekday {WEEKDAYS[index]} given twice ({seen[index]!r}, {raw_name!r})"
                )
            seen[index] = raw_name
            if isinstance(raw_blocks, str):
                raise ValueError(f"{WEEKDAYS[index]}: expected a list of 'HH:MM-HH:MM' strings")
            for raw in raw_blocks:
                if not isinstance(raw, str):
                    raise ValueError(
                        f"{WEEKDAYS[index]}: block {raw!r} must be a 'HH:MM-HH:MM' string"
                    )
                try:
                    days[index].append(TimeBlock.parse(raw))
                except ValueError as exc:
                    raise ValueError(f"{WEEKDAYS[index]}: {exc}") from None
        return cls(tuple(tuple(d) for d in days))

    def to_mapping(self) -> dict[str, list[str]]:
        """Canonical mapping with all seven weekdays (empty list = day off)."""
        return {
            name: [str(b) for b in blocks] for name, blocks in zip(WEEKDAYS, self.days, strict=True)
        }

    @property
    def weekly_duration(self) -> timedelta:
        """Nominal working time per week (no holidays, no DST)."""
        return sum((b.duration for blocks in self.days for b in blocks), timedelta())


def _default_hours() -> dict[str, list[str]]:
    return {name: ["09:00-17:00"] if i < 5 else [] for i, name in enumerate(WEEKDAYS)}


# ------------------------------------------------------------------------ time off


def _parse_date_or_datetime(value: Any) -> Any:
    """Disambiguate ISO strings ourselves: pydantic would read "2026-07-06" as a naive datetime."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{value!r} is neither an ISO date nor an ISO datetime") from None
    return value


class TimeOff(BaseModel):
    """A period a rep is unavailable (vacation, sick day, conference).

    Either a *date* range, inclusive of both days and interpreted in the calendar's
    zone (``2026-07-06`` to ``2026-07-10`` is Monday through Friday), or an aware
    *datetime* range, half-open ``[start, end)``.  Mixing the two is an error
    because "from a date until 14:00" has no single sensible reading.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: datetime | date
    end: datetime | date

    @field_validator("start", "end", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return _parse_date_or_datetime(value)

    @model_validator(mode="after")
    def _check(self) -> TimeOff:
        start_is_dt = isinstance(self.start, datetime)
        if start_is_dt != isinstance(self.end, datetime):
            raise ValueError(
                f"time off {self.start}..{self.end}: start and end must both be dates "
                "or both be datetimes"
            )
        if isinstance(self.start, datetime) and isinstance(self.end, datetime):
            for name, value in (("start", self.start), ("end", self.end)):
                if value.tzinfo is None or value.utcoffset() is None:
                    raise ValueError(
                        f"time off {name} {value.isoformat()!r} is a naive datetime; "
                        "give an offset (e.g. 2026-07-06T09:00:00+02:00) or use whole dates"
                    )
            if self.end <= self.start:
                raise ValueError(f"time off {self.start}..{self.end}: end must be after start")
        elif self.end < self.start:
            raise ValueError(f"time off {self.start}..{self.end}: end date is before start date")
        return self


# ------------------------------------------------------------------------ holidays


@lru_cache(maxsize=4096)
def _holiday_ordinals(country: str, subdivision: str | None, year: int) -> frozenset[int]:
    """Public holidays of one year as date ordinals; cached because every rep shares them."""
    table = holidays.country_holidays(country, subdiv=subdivision, years=year)
    return frozenset(d.toordinal() for d in table if d.year == year)


@lru_cache(maxsize=1)
def _supported_countries() -> dict[str, tuple[str, ...]]:
    return {c: tuple(s) for c, s in holidays.list_supported_countries().items()}


# -------------------------------------------------------------------------- engine


@dataclass(frozen=True, slots=True)
class _Chunk:
    """Working intervals clipped to one 64-day UTC window, with prefix sums.

    ``cum[i]`` is the working time in the chunk before interval *i*; ``cumend[i]`` the
    working time up to its end.  Both make elapsed/deadline queries a single bisection.
    """

    starts: list[int]
    ends: list[int]
    cum: list[int]
    cumend: list[int]
    total: int

    def elapsed(self, x: int) -> int:
        """Working microseconds in this chunk before instant ``x``."""
        i = bisect_right(self.starts, x) - 1
        if i < 0:
            return 0
        start = self.starts[i]
        if x >= self.ends[i]:
            return self.cumend[i]
        return self.cum[i] + (x - start)


_EngineKey: TypeAlias = tuple[
    str,  # timezone
    tuple[tuple[tuple[int, int], ...], ...],  # blocks per weekday, minutes
    str | None,  # holiday country
    str | None,  # holiday subdivision
    frozenset[int],  # extra holiday ordinals
    tuple[tuple[int, int], ...],  # whole-day time off, inclusive ordinal ranges
    tuple[tuple[int, int], ...],  # datetime time off, merged µs ranges
]


def _merge(ranges: Sequence[tuple[int, int]], *, touching: int = 0) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1] + touching:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return tuple(out)


def _subtract(
    intervals: Sequence[tuple[int, int]], holes: Sequence[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Remove sorted, disjoint ``holes`` from sorted, disjoint ``intervals``."""
    if not holes:
        return list(intervals)
    out: list[tuple[int, int]] = []
    j = 0
    for start, end in intervals:
        while j < len(holes) and holes[j][1] <= start:
            j += 1
        cur = start
        k = j
        while k < len(holes) and holes[k][0] < end:
            hole_start, hole_end = holes[k]
            if hole_start > cur:
                out.append((cur, hole_start))
            cur = max(cur, hole_end)
            if cur >= end:
                break
            k += 1
        if cur < end:
            out.append((cur, end))
    return out


class _Engine:
    """Compiled, cached arithmetic for one calendar configuration (integer µs)."""

    __slots__ = (
        "_chunks",
        "_country",
        "_days",
        "_extra",
        "_off_day_ends",
        "_off_day_starts",
        "_off_us",
        "_subdivision",
        "_weekly",
        "zone",
    )

    def __init__(self, key: _EngineKey) -> None:
        tz, weekly, country, subdivision, extra, off_days, off_us = key
        self.zone = ZoneInfo(tz)
        self._weekly = weekly
        self._country = country
        self._subdivision = subdivision
        self._extra = extra
        self._off_day_starts = [a for a, _ in off_days]
        self._off_day_ends = [b for _, b in off_days]
        self._off_us = off_us
        self._days: dict[int, tuple[tuple[int, int], ...]] = {}
        self._chunks: dict[int, _Chunk] = {}

    # -- per local date ------------------------------------------------------------

    def is_day_off(self, ordinal: int) -> bool:
        """Whole-day exclusions: extra holidays, date-range time off, public holidays."""
        if ordinal in self._extra:
            return True
        i = bisect_right(self._off_day_starts, ordinal) - 1
        if i >= 0 and ordinal <= self._off_day_ends[i]:
            return True
        if self._country is not None:
            year = date.fromordinal(ordinal).year
            if ordinal in _holiday_ordinals(self._country, self._subdivision, year):
                return True
        return False

    def day_intervals(self, ordinal: int) -> tuple[tuple[int, int], ...]:
        """Working intervals (µs, before datetime time off) of one local date, cached."""
        cached = self._days.get(ordinal)
        if cached is not None:
            return cached
        blocks = self._weekly[(ordinal + 6) % 7]  # date.weekday() without building a date
        result: tuple[tuple[int, int], ...] = ()
        if blocks and not self.is_day_off(ordinal):
            midnight = datetime.combine(date.fromordinal(ordinal), datetime.min.time())
            out = []
            for start_min, end_min in blocks:
                start = self._first_instant(midnight + timedelta(minutes=start_min))
                end = self._first_instant(midnight + timedelta(minutes=end_min))
                if end > start:  # a block entirely inside a DST gap vanishes
                    out.append((start, end))
            result = tuple(out)
        self._days[ordinal] = result
        return result

    def _first_instant(self, wall: datetime) -> int:
        """First instant (µs) at which the local clock reads ``wall`` or later.

        Existing times map to their first occurrence (fold=0); times inside a
        spring-forward gap map to the transition instant itself.
        """
        zone = self.zone
        offset = wall.replace(tzinfo=zone).utcoffset()
        assert offset is not None
        utc = wall - offset
        if utc.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None) == wall:
            return (utc - _EPOCH_NAIVE) // _US
        # Inside a gap: the transition lies between the two fold interpretations.
        offset1 = wall.replace(tzinfo=zone, fold=1).utcoffset()
        assert offset1 is not None
        a = (utc - _EPOCH_NAIVE) // _US
        b = (wall - offset1 - _EPOCH_NAIVE) // _US
        lo, hi = (a, b) if a < b else (b, a)
        lo, hi = lo // _SECOND_US, -(-hi // _SECOND_US)  # tz transitions are on whole seconds
        # Invariant: local reading at lo < wall <= local reading at hi.
        while hi - lo > 1:
            mid = (lo + hi) // 2
            local = datetime.fromtimestamp(mid, zone).replace(tzinfo=None)
            if local >= wall:
                hi = mid
            else:
                lo = mid
        return hi * _SECOND_US

    def local_ordinal(self, us: int) -> int:
        """Local calendar date (ordinal) of an instant."""
        return _from_us(us).astimezone(self.zone).toordinal()

    def intervals_for_days(self, first: int, last: int) -> list[tuple[int, int]]:
        """All working intervals of local dates ``first..last`` (inclusive), time off removed."""
        raw: list[tuple[int, int]] = []
        for ordinal in range(first, last + 1):
            raw.extend(self.day_intervals(ordinal))
        return _subtract(raw, self._off_us)

    # -- chunks ----------------------------------------------------------------------

    def chunk(self, k: int) -> _Chunk:
        """The compiled chunk covering UTC µs ``[k * 64d, (k + 1) * 64d)``."""
        cached = self._chunks.get(k)
        if cached is not None:
            return cached
        c0 = k * _CHUNK_US
        c1 = c0 + _CHUNK_US
        if c0 < _MIN_US or c1 > _MAX_US:
            raise ValueError(
                "business time arithmetic is supported for years 1 to 9999 only; "
                "the calendar may have no working time left in range"
            )
        first = self.local_ordinal(c0) - 2
        last = self.local_ordinal(c1) + 2
        starts: list[int] = []
        ends: list[int] = []
        cum: list[int] = []
        cumend: list[int] = []
        total = 0
        for start, end in self.intervals_for_days(first, last):
            start = max(start, c0)
            end = min(end, c1)
            if end <= start:
                continue
            starts.append(start)
            ends.append(end)
            cum.append(total)
            total += end - start
            cumend.append(total)
        chunk = _Chunk(starts, ends, cum, cumend, total)
        self._chunks[k] = chunk
        return chunk

    # -- queries (µs in, µs out) ---------------------------------------------------

    def is_working(self, x: int) -> bool:
        ch = self.chunk(x // _CHUNK_US)
        i = bisect_right(ch.starts, x) - 1
        return i >= 0 and x < ch.ends[i]

    def next_working(self, x: int) -> int:
        k = x // _CHUNK_US
        ch = self.chunk(k)
        i = bisect_right(ch.starts, x) - 1
        if i >= 0 and x < ch.ends[i]:
            return x
        if i + 1 < len(ch.starts):
            return ch.starts[i + 1]
        while True:
            k += 1
            ch = self.chunk(k)
            if ch.starts:
                return ch.starts[0]

    def between(self, a: int, b: int) -> int:
        if b <= a:
            return 0
        ka = a // _CHUNK_US
        kb = b // _CHUNK_US
        ch = self.chunk(ka)
        if ka == kb:
            return ch.elapsed(b) - ch.elapsed(a)
        total = ch.total - ch.elapsed(a)
        for k in range(ka + 1, kb):
            total += self.chunk(k).total
        return total + self.chunk(kb).elapsed(b)

    def add(self, start: int, delta: int) -> int:
        x = self.next_working(start)
        if delta == 0:
            return x
        k = x // _CHUNK_US
        ch = self.chunk(k)
        need = ch.elapsed(x) + delta
        while need > ch.total:
            need -= ch.total
            k += 1
            ch = self.chunk(k)
        j = bisect_left(ch.cumend, need)
        return ch.starts[j] + (need - ch.cum[j])


@lru_cache(maxsize=512)
def _engine_for(key: _EngineKey) -> _Engine:
    """Share compiled engines (and their caches) between equal calendars.

    Reps whose overlays resolve to the same configuration then reuse one cache.
    """
    return _Engine(key)


# ------------------------------------------------------------------------ calendar


class BusinessCalendar(BaseModel):
    """A team's or rep's working time, loadable from TOML/JSON config.

    Fields mirror the config file; see ``docs/sla-calendars.md``.  ``hours`` is
    normalised to all seven lower-case weekday names with canonical
    ``"HH:MM-HH:MM"`` strings (an empty list is a day off).  Instances are frozen and
    hashable; the arithmetic methods accept any aware datetime and return UTC.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = Field(description="IANA zone name, e.g. 'America/New_York'.")
    hours: dict[str, list[str]] = Field(
        default_factory=_default_hours,
        description="Weekday -> list of 'HH:MM-HH:MM' blocks in local wall-clock time.",
    )
    holiday_country: str | None = Field(
        default=None, description="ISO 3166-1 alpha-2 code for public holidays (holidays pkg)."
    )
    holiday_subdivision: str | None = Field(
        default=None, description="Subdivision code within holiday_country, e.g. 'BY', 'CA', 'SCT'."
    )
    extra_holidays: list[date] = Field(
        default_factory=list, description="Additional whole days off (company holidays)."
    )
    time_off: list[TimeOff] = Field(default_factory=list, description="Rep unavailability.")

    _key: _EngineKey = PrivateAttr()
    _working_hours: WorkingHours = PrivateAttr()

    # -- validation ----------------------------------------------------------------

    @field_validator("timezone", mode="before")
    @classmethod
    def _check_timezone(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value  # let pydantic report the type error
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(
                f"unknown IANA time zone {value!r} (expected e.g. 'Europe/Berlin')"
            ) from None
        return value

    @field_validator("hours", mode="before")
    @classmethod
    def _check_hours(cls, value: Any) -> Any:
        if isinstance(value, WorkingHours):
            hours = value
        elif isinstance(value, Mapping):
            hours = WorkingHours.from_mapping(value)
        else:
            return value  # let pydantic report the type error
        if not any(hours.days):
            raise ValueError("hours define no working time at all; give at least one block")
        return hours.to_mapping()

    @field_validator("holiday_country", mode="before")
    @classmethod
    def _check_country(cls, value: Any) -> Any:
        if value is None or not isinstance(value, str):
            return value
        code = value.strip().upper()
        if not code:
            return None
        if code not in _supported_countries():
            raise ValueError(
                f"unknown holiday_country {value!r}: not an ISO 3166-1 alpha-2 code "
                "supported by the 'holidays' package (e.g. 'US', 'GB', 'DE')"
            )
        return code

    @field_validator("holiday_subdivision", mode="before")
    @classmethod
    def _check_subdivision(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or not isinstance(value, str):
            return value
        wanted = value.strip()
        if not wanted:
            return None
        if "holiday_country" not in info.data:
            return value  # the country already failed; don't pile on
        country = info.data["holiday_country"]
        if country is None:
            raise ValueError(f"holiday_subdivision {value!r} given without holiday_country")
        known = _supported_countries()[country]
        for code in known:
            if code.lower() == wanted.lower():
                return code
        listed = ", ".join(known) if known else "none"
        raise ValueError(
            f"unknown holiday_subdivision {value!r} for holiday_country {country!r}; "
            f"known subdivisions: {listed}"
        )

    def model_post_init(self, context: Any, /) -> None:
        """Compile (or fetch the shared) arithmetic engine once, at construction."""
        working = WorkingHours.from_mapping(self.hours)
        off_days: list[tuple[int, int]] = []
        off_us: list[tuple[int, int]] = []
        for off in self.time_off:
            if isinstance(off.start, datetime) and isinstance(off.end, datetime):
                off_us.append((_to_us(off.start, "start"), _to_us(off.end, "end")))
            else:
                off_days.append((off.start.toordinal(), off.end.toordinal()))
        key: _EngineKey = (
            self.timezone,
            tuple(tuple((b.start_minute, b.end_minute) for b in day) for day in working.days),
            self.holiday_country,
            self.holiday_subdivision,
            frozenset(d.toordinal() for d in self.extra_holidays),
            _merge(off_days, touching=1),
            _merge(off_us),
        )
        self._working_hours = working
        self._key = key
        _ = self._engine  # compile now, so first queries don't pay for it

    @cached_property
    def _engine(self) -> _Engine:
        # A cached_property lives in the instance __dict__: reading it is a plain
        # attribute lookup, whereas pydantic private attributes go through a slow
        # __getattr__ (~2 µs), which would dominate every SLA query.
        return _engine_for(self._key)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """Copy; with ``update`` the result is re-validated and recompiled.

        Pydantic's ``model_copy(update=...)`` skips validation, which here would keep
        the compiled engine of the *old* configuration and silently give wrong answers.
        """
        if update:
            return self.model_validate({**self.model_dump(), **update})
        return super().model_copy(deep=deep)

    def __hash__(self) -> int:
        """Hash the normalised configuration (fields hold dicts/lists, so pydantic can't)."""
        return hash(self._key)

    # -- introspection -------------------------------------------------------------

    @property
    def zone(self) -> ZoneInfo:
        """The calendar's zone, in which hours, holidays and date ranges are read."""
        return self._engine.zone

    @property
    def working_hours(self) -> WorkingHours:
        """The weekly pattern as typed blocks."""
        return self._working_hours

    # -- arithmetic ----------------------------------------------------------------

    def is_working(self, dt: datetime) -> bool:
        """Whether ``dt`` lies inside a working block (block ends are not working)."""
        return self._engine.is_working(_to_us(dt, "dt"))

    def next_working_instant(self, dt: datetime) -> datetime:
        """``dt`` itself (as UTC) if it is working time, else the next block start.

        This is where an SLA clock starts for a lead arriving at night, on a weekend
        or on a holiday.
        """
        return _from_us(self._engine.next_working(_to_us(dt, "dt")))

    def add_business_time(self, start: datetime, delta: timedelta) -> datetime:
        """The earliest instant at which ``delta`` of business time has elapsed.

        ``start`` is first snapped to :meth:`next_working_instant`, so a zero delta
        returns the snapped start.  When the delta is used up exactly at a block end
        the block end is returned (not the next block's start): that is the instant
        the SLA is breached from.  Negative deltas are rejected.
        """
        if delta < _ZERO:
            raise ValueError(f"delta must not be negative, got {delta!r}")
        return _from_us(self._engine.add(_to_us(start, "start"), delta // _US))

    def business_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Business time elapsed from ``a`` to ``b``; zero if ``b <= a``."""
        return _US * self._engine.between(_to_us(a, "a"), _to_us(b, "b"))

    def business_minutes_between(self, a: datetime, b: datetime) -> int:
        """Whole business minutes from ``a`` to ``b`` (floored).

        Flooring keeps threshold checks exact: ``minutes >= 240`` holds exactly when
        at least four business hours have elapsed.
        """
        return self._engine.between(_to_us(a, "a"), _to_us(b, "b")) // 60_000_000

    def working_intervals(
        self, day_from: date, day_to: date
    ) -> Iterator[tuple[datetime, datetime]]:
        """Working ``(start, end)`` pairs (UTC) for local dates ``day_from..day_to`` inclusive.

        One pair per block per day, shortened or split by time off; blocks that
        touch are not merged, so callers see the configured structure.
        """
        if isinstance(day_from, datetime) or isinstance(day_to, datetime):
            raise TypeError("working_intervals takes dates, not datetimes")
        for start, end in self._engine.intervals_for_days(day_from.toordinal(), day_to.toordinal()):
            yield _from_us(start), _from_us(end)


# ------------------------------------------------------------------------- overlay


class RepOverrides(BaseModel):
    """Per-rep settings layered over a team calendar by :func:`overlay`.

    Only fields that are explicitly set take effect (``model_fields_set``), so an
    explicit ``holiday_country=None`` (or ``""`` in TOML) switches public holidays
    off for that rep while an omitted one inherits the team's.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str | None = None
    hours: dict[str, list[str]] | None = None
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    extra_holidays: list[date] = Field(default_factory=list)
    time_off: list[TimeOff] = Field(default_factory=list)

    @field_validator("hours", mode="before")
    @classmethod
    def _check_hours(cls, value: Any) -> Any:
        # Validate eagerly but keep only the weekdays the rep actually overrides.
        if isinstance(value, Mapping):
            full = WorkingHours.from_mapping(value).to_mapping()
            given = {_WEEKDAY_INDEX[str(k).strip().lower()] for k in value}
            return {WEEKDAYS[i]: full[WEEKDAYS[i]] for i in sorted(given)}
        return value


def overlay(
    team_calendar: BusinessCalendar, rep_overrides: RepOverrides | Mapping[str, Any]
) -> BusinessCalendar:
    """Layer a rep's overrides over the team calendar.

    Rules (chosen so a rep config only says what differs):

    * ``timezone`` replaces the team zone; inherited hours are then read as wall-clock
      hours in the rep's zone ("9 to 5 wherever you are").
    * ``hours`` is merged per weekday: weekdays present replace the team's blocks
      (``friday = []`` = Fridays off), absent weekdays are inherited.
    * setting ``holiday_country`` replaces country *and* subdivision (a team's
      ``BY`` means nothing in ``GB``); setting only ``holiday_subdivision`` keeps the
      team's country.
    * ``extra_holidays`` and ``time_off`` are added to the team's (company-wide days
      off still apply to the rep).
    """
    rep = (
        rep_overrides
        if isinstance(rep_overrides, RepOverrides)
        else RepOverrides.model_validate(rep_overrides)
    )
    fields = rep.model_fields_set
    merged: dict[str, Any] = team_calendar.model_dump()
    if "timezone" in fields and rep.timezone is not None:
        merged["timezone"] = rep.timezone
    if rep.hours is not None:
        merged["hours"] = {**merged["hours"], **rep.hours}
    if "holiday_country" in fields:
        merged["holiday_country"] = rep.holiday_country
        merged["holiday_subdivision"] = rep.holiday_subdivision
    elif "holiday_subdivision" in fields:
        merged["holiday_subdivision"] = rep.holiday_subdivision
    merged["extra_holidays"] = sorted({*team_calendar.extra_holidays, *rep.extra_holidays})
    merged["time_off"] = [*team_calendar.time_off, *rep.time_off]
    return BusinessCalendar.model_validate(merged)
