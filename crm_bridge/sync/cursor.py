"""Where the next read of a change stream starts, what it takes, and how it moves the cursor.

A cursor is a *keyset*: the (modified_at, id) of the last record taken, not a timestamp.  With
a timestamp alone, a read capped by ``max_records_per_cycle`` inside a run of records sharing
one instant (a bulk update, the overlap window after it) could not say where it stopped, so
every cycle re-read the same capped page and the sync stopped seeing changes for good.

Connectors only promise ``since`` inclusive and, for :attr:`Ordering.ASCENDING`, a stream
ascending by ``modified_at`` -- records sharing an instant may come in any order, and a
connector whose filter is coarser than its timestamps (Salesforce SOQL literals are whole
seconds) returns a few records before ``since``.  :func:`take` therefore keeps the ``cap``
smallest keysets after the position in a bounded heap: with an ascending stream it stops at the
first record past a full heap's greatest instant; an :attr:`Ordering.UNSORTED` stream is read
to its end.  Memory stays at ``cap`` records either way.

The phases (see :class:`~crm_bridge.store.ChangeCursor`) keep the overlap re-read of late
commits without paying for it on idle cycles: a scan that found new records is followed by one
re-read of the ``overlap`` behind the newest; a scan that found nothing new settles the cursor,
and a settled cursor reads from the newest instant on.

The overlap is the time a change may take to become readable (HubSpot's search index lags its
writes by seconds), so what a read may have missed is what changed less than ``overlap`` before
the read *ran*, not before the newest record it found.  After a bulk write the two differ: the
newest records are our own writes, and the ``overlap`` behind them is our whole write burst,
read a second time.  When the read can tell how late it ran on the vendor's clock
(:attr:`Read.ran_at`, bounded from below by our own writes it read back, see
:mod:`crm_bridge.sync.write_clock`), :func:`seen_through` narrows the re-read to start at that
instant minus the overlap -- never earlier than the old window, never later than the newest.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from more_itertools import chunked

from crm_bridge.connector import Ordering, Record
from crm_bridge.store import ChangeCursor, Keyset

__all__ = ["Read", "ReadWindow", "advance", "keyset", "seen_through", "take", "window"]


def keyset(record: Record) -> Keyset:
    """A record's position in the stream: the total order every read is cut in."""
    return (record.modified_at, record.id)


@dataclass(frozen=True, slots=True)
class ReadWindow:
    """The part of a stream one read covers.

    ``since`` goes to ``Connector.changes`` (inclusive); records at or before ``after`` were
    taken already and are skipped.
    """

    since: datetime | None
    after: Keyset | None = None


@dataclass(frozen=True, slots=True)
class Read:
    """What one cycle took from a stream, in keyset order; ``capped`` when more was left.

    ``skipped`` records were passed over as already applied (our own writes read back); they
    are not in ``records`` but the cursor moves over them: ``last`` is where the read ended.
    """

    records: list[Record]
    capped: bool
    skipped: int = 0
    last: Keyset | None = None
    seen_through: datetime | None = None
    """Every change up to this instant was readable when the read ran (see :func:`seen_through`)."""

    @property
    def end(self) -> Keyset | None:
        """The keyset the cursor moves to: the last record taken or passed over."""
        if self.last is not None:
            return self.last
        return keyset(self.records[-1]) if self.records else None


Applied = Callable[[Sequence[Record]], set[str]]
"""Which of these records (by id) are already applied: the planner would do nothing with them."""

_CHUNK = 200
"""Records classified per call of an :data:`Applied` check (one store query): a HubSpot search
page, so the check never reads a page ahead of what the cap needs."""


def window(cursor: ChangeCursor | None, overlap: timedelta) -> ReadWindow:
    """The part of the stream the next read covers."""
    if cursor is None:
        return ReadWindow(None)
    if cursor.phase == "scanning":
        assert cursor.position is not None  # the store's check constraint
        return ReadWindow(cursor.position[0], cursor.position)
    if cursor.phase == "overlap":
        since = cursor.newest[0] - overlap
        if cursor.seen_through is not None:
            since = max(since, min(cursor.seen_through, cursor.newest[0]))
        return ReadWindow(since)
    # Settled: from the newest instant itself, nothing skipped.  Ids are not commit order, so
    # a record committed later at that very instant may sort before the newest one; re-reading
    # the instant costs a record or two on an idle cycle (the planner skips them as applied).
    return ReadWindow(cursor.newest[0])


def take(
    stream: Iterable[Record],
    where: ReadWindow,
    cap: int,
    ordering: Ordering,
    applied: Applied | None = None,
    pass_limit: int | None = None,
) -> Read:
    """The ``cap`` smallest records of ``stream`` after ``where.after``, in keyset order.

    With ``applied``, records it names do not count against the cap and are left out: after a
    large load the other side's next read is mostly our own writes coming back, and counting
    them would cap that read -- and a capped side defers every create into it -- cycle after
    cycle.  The cursor still moves over them (:attr:`Read.last`).

    ``pass_limit`` bounds how many such records one read passes over on an ascending stream:
    their keys are kept to place the cursor, so a read-back of a million of our own writes
    would hold a million keys.  At the limit the read ends at the next strictly later instant
    -- every record up to the last one seen has then arrived, so the cursor can sit on it --
    and reports itself capped (more is waiting).
    """
    if cap < 1:
        raise ValueError("cap must be at least 1")
    heap: list[tuple[_Desc, Record]] = []  # a max-heap on keyset: heap[0] is the greatest kept
    capped = False
    skipped: list[Keyset] = []
    limited = False  # stopped by pass_limit: everything seen is at or before the end
    seen: datetime | None = None  # the latest instant seen so far
    bounded = ordering is Ordering.ASCENDING  # only there is "strictly later" a boundary
    for chunk in chunked(stream, _CHUNK if applied is not None else 1):
        done = applied(chunk) if applied is not None else set()
        stop = False
        for record in chunk:
            key = keyset(record)
            if where.after is not None and key <= where.after:
                continue
            if (
                bounded
                and pass_limit is not None
                and len(skipped) >= pass_limit
                and seen is not None
                and record.modified_at > seen
            ):
                limited = stop = True
                break
            seen = record.modified_at if seen is None else max(seen, record.modified_at)
            if record.id in done:
                skipped.append(key)
                continue
            if len(heap) < cap:
                heapq.heappush(heap, (_Desc(key), record))
                continue
            capped = True
            greatest = heap[0][0].key
            if key < greatest:
                heapq.heapreplace(heap, (_Desc(key), record))
            elif ordering is Ordering.ASCENDING and record.modified_at > greatest[0]:
                stop = True  # everything from here on is later still
                break
        if stop:
            break
    records = sorted((record for _, record in heap), key=keyset)
    if limited and not capped:
        end = max([*skipped, *(keyset(r) for r in records[-1:])])
        return Read(records, True, skipped=len(skipped), last=end)
    if not skipped:
        return Read(records, capped)
    # Capped: the read ends at the last record kept, and only what it passed over is skipped
    # (the rest is read again next cycle).  Otherwise it ends at the greatest key it saw.
    end = keyset(records[-1]) if capped else max([*skipped, *(keyset(r) for r in records[-1:])])
    passed = sum(1 for key in skipped if key <= end)
    return Read(records, capped, skipped=passed, last=end)


def advance(cursor: ChangeCursor | None, read: Read) -> ChangeCursor | None:
    """The cursor after ``read`` was applied (``None`` while nothing was ever read)."""
    last = read.end
    if last is None:
        if cursor is None:
            return None
        if cursor.phase == "scanning":  # the scan ran out exactly at the cap: it is over
            return ChangeCursor(cursor.newest, "overlap" if cursor.found_newer else "settled")
        return ChangeCursor(cursor.newest, "settled")
    newer = cursor is None or last > cursor.newest
    newest = last if cursor is None else max(cursor.newest, last)
    found = newer or (cursor is not None and cursor.phase == "scanning" and cursor.found_newer)
    if read.capped:
        return ChangeCursor(newest, "scanning", position=last, found_newer=found)
    if found:
        return ChangeCursor(newest, "overlap", seen_through=read.seen_through)
    return ChangeCursor(newest, "settled")


def seen_through(
    cursor: ChangeCursor | None,
    where: ReadWindow,
    read: Read,
    ran_at: datetime | None,
    overlap: timedelta,
) -> datetime | None:
    """Up to when ``read`` saw every change, if it can say: ``ran_at - overlap``.

    ``ran_at`` is a lower bound of the vendor's clock when the read began; a change older than
    ``overlap`` then was readable, and the read went over it -- provided the read started no
    later than the overlap window it would shorten (``newest - overlap``).  A read that began
    further on (a scan continuing after a capped read) took the records before its start in an
    earlier read, which ran earlier; those keep the old window.  ``None``: no narrowing.
    """
    if ran_at is None or read.capped:
        return None
    last = read.end
    if last is None:
        return None
    newest = last if cursor is None else max(cursor.newest, last)
    if where.since is not None and where.since > newest[0] - overlap:
        return None
    return ran_at - overlap


class _Desc:
    """Inverts the order of a keyset so :mod:`heapq`'s min-heap keeps the greatest on top."""

    __slots__ = ("key",)

    def __init__(self, key: Keyset) -> None:
        self.key = key

    def __lt__(self, other: _Desc) -> bool:
        return self.key > other.key
