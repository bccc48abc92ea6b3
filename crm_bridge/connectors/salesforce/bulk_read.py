"""Large change reads through Bulk API 2.0 ``queryAll``, served in the change stream's order.

Why Bulk for big reads: a REST ``queryAll`` page holds at most 2,000 rows, so an initial load of
1M leads costs 500 calls of the org's daily allocation and as many round trips; one Bulk 2.0
query job returns every row in CSV pages of ``maxRecords`` (tens of thousands) for a handful of
calls.  But Bulk query takes no ``ORDER BY`` (Salesforce advises against it: it disables PK
chunking), while the engine's keyset cursor needs ``(SystemModstamp, Id)`` ascending.  So the rows
are spooled into a temporary SQLite file keyed by that order and read back from it: memory stays
at one CSV page however large the object, and the stream stays ascending.

Why the spool outlives one read: the engine takes at most ``max_records_per_cycle`` records per
cycle.  A job per cycle would download the rest again every time (quadratic in the load); the
snapshot instead serves every cycle until the cursor passes its cut-off (the job's creation).
Changes after the cut-off come from the REST stream, merged in order; a record changed after the
cut-off is in both, and its snapshot row is dropped so the newer row is the one planned.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from .reading import NUMBER_TYPES, ObjectDescription, parse_sf_datetime

__all__ = ["BulkSnapshot", "csv_rows", "rest_datetime"]


def rest_datetime(text: str) -> str:
    """A dateTime in the shape the REST API sends (``...T00:00:00.000+0000``).

    Why: a record's version is its ``SystemModstamp`` as sent, and the engine compares versions
    as text; a Bulk row (``...000Z``) and a REST row of the same version must compare equal.
    """
    moment = parse_sf_datetime(text).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _typed(value: str, sf_type: str | None) -> Any:
    """One CSV cell as the JSON value a REST row would carry (CSV has only text)."""
    if value == "":
        return None  # Bulk writes null as an empty cell; Salesforce stores no empty strings
    if sf_type == "boolean":
        return value.lower() == "true"
    if sf_type == "int":
        return int(float(value))
    if sf_type in NUMBER_TYPES:
        return float(value)
    if sf_type == "datetime":
        return rest_datetime(value)
    return value


def csv_rows(text: str, description: ObjectDescription) -> Iterator[dict[str, Any]]:
    """The rows of one results page, typed like REST query rows."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return
    types = [description.field_type(name) for name in header]
    for cells in reader:
        if cells:
            yield {
                name: _typed(cell, sf_type)
                for name, cell, sf_type in zip(header, cells, types, strict=True)
            }


def _key(stamp: str) -> str:
    """``SystemModstamp`` as fixed-width UTC text, so SQLite's text order is time order."""
    return parse_sf_datetime(stamp).astimezone(UTC).isoformat(timespec="microseconds")


class BulkSnapshot:
    """One object's change rows as of a Bulk query job, on disk, readable in keyset order.

    ``since`` is the lower bound the job was run with (``None``: every row); ``cut`` the job's
    creation time: the snapshot is complete for changes before it, and the caller reads what
    came after from the REST stream.
    """

    def __init__(
        self, obj: str, fields: Sequence[str], since: datetime | None, cut: datetime
    ) -> None:
        self.obj = obj
        self.fields = tuple(fields)
        self.since = since
        self.cut = cut
        self.rows = 0
        fd, self.path = tempfile.mkstemp(prefix=f"crm-bridge-bulk-{obj}-", suffix=".sqlite")
        os.close(fd)
        # The engine may read a stream from a worker thread; one reader at a time uses it.
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute(
            "CREATE TABLE rows (stamp TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, "
            "PRIMARY KEY (stamp, id)) WITHOUT ROWID"
        )

    def add(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Spool one results page, row by row (a page's rows are never all in memory at once)."""

        def spooled() -> Iterator[tuple[str, str, str]]:
            for row in rows:
                self.rows += 1
                yield _key(str(row["SystemModstamp"])), str(row["Id"]), json.dumps(row, default=str)

        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO rows VALUES (?, ?, ?)", spooled())

    def serves(self, fields: Sequence[str], since: datetime | None) -> bool:
        """Whether a read of ``fields`` from ``since`` can come from this snapshot.

        Not once the read starts at or after the cut-off (the REST stream alone is then both
        complete and cheaper), nor for a read starting before what the job covered.
        """
        if tuple(fields) != self.fields:
            return False
        if since is None:
            return self.since is None
        if since >= self.cut:
            return False
        return self.since is None or since >= self.since

    def rows_from(self, since: datetime | None) -> Iterator[dict[str, Any]]:
        """The spooled rows at or after ``since``, ascending by ``(SystemModstamp, Id)``."""
        if since is None:
            cursor = self._db.execute("SELECT body FROM rows ORDER BY stamp, id")
        else:
            bound = since.astimezone(UTC).isoformat(timespec="microseconds")
            cursor = self._db.execute(
                "SELECT body FROM rows WHERE stamp >= ? ORDER BY stamp, id", (bound,)
            )
        try:
            while chunk := cursor.fetchmany(500):
                for (body,) in chunk:
                    row: dict[str, Any] = json.loads(body)
                    yield row
        finally:
            cursor.close()

    def close(self) -> None:
        """Drop the spool file."""
        self._db.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def __repr__(self) -> str:
        return f"BulkSnapshot({self.obj!r}, rows={self.rows}, cut={self.cut.isoformat()})"
