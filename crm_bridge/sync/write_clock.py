"""When our own writes came back, to tell how late a read ran on the vendor's clock.

Why: the overlap re-read (:mod:`crm_bridge.sync.cursor`) covers what changed less than
``overlap_seconds`` before a read ran, and "when the read ran" must be on the vendor's clock --
the clock of the stamps the read compares -- which ours may differ from.  Our own writes give a
bound that trusts no wall clock: a record we wrote carries the vendor's stamp of that write, the
stamp was taken before the answer reached us, so when the read starts the vendor's clock shows
at least that stamp plus the time since the answer came (on our monotonic clock).  The bound
needs the record read back *at the version we wrote* (a later edit has a later stamp), which is
what a write result's ``version`` names; connectors that return no version give no bound, and
the cursor keeps its old window.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from crm_bridge.connector import Record, WriteResult
from crm_bridge.store import Side

__all__ = ["KEEP", "WriteClock"]

KEEP = 2_000
"""Writes remembered per side and object, the newest: one read back is enough for a bound
(each gives the vendor's clock minus that write's round trip), and a read that passes over our
writes goes through to the newest of them, so a short tail costs nothing in precision and
holds the memory to a few megabytes whatever the load."""


class WriteClock:
    """The monotonic time each of our latest writes came back, by side, object, id and version."""

    def __init__(self, keep: int = KEEP, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.keep = keep
        self.monotonic = monotonic
        self._at: dict[tuple[Side, str], OrderedDict[str, tuple[str, float]]] = {}
        self._lock = threading.Lock()  # writer threads note, reader threads look up

    def note(self, side: Side, obj: str, results: Sequence[WriteResult]) -> None:
        """These results came back just now."""
        at = self.monotonic()
        with self._lock:
            stream = self._at.setdefault((side, obj), OrderedDict())
            for result in results:
                if result.ok and result.id is not None and result.version is not None:
                    stream.pop(result.id, None)
                    stream[result.id] = (result.version, at)
            while len(stream) > self.keep:
                stream.popitem(last=False)

    def vendor_now_at_least(
        self, side: Side, obj: str, records: Iterable[Record], started: float
    ) -> datetime | None:
        """A lower bound of the vendor's clock at monotonic instant ``started``, from ``records``.

        Only records read back at the version we wrote count; ``None`` when none is.
        """
        best: datetime | None = None
        with self._lock:
            stream = self._at.get((side, obj))
            if stream is None:
                return None
            for record in records:
                found = stream.get(record.id)
                if found is None or found[0] != record.version or found[1] > started:
                    continue  # not our version, or written after the read began
                bound = record.modified_at + timedelta(seconds=started - found[1])
                if best is None or bound > best:
                    best = bound
        return best
