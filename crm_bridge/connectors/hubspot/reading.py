"""Reading HubSpot: the change stream (search windows + archived poll) and batch reads.

Why search and not the list endpoint: search filters server-side on the last-modified property,
so an idle cycle costs one request per object however large the portal is.  Its limits shape
everything here:

* **10,000 results per query.**  ``after`` is an offset and paging past 10,000 is a 400, so when
  the next offset would reach the cap we start a new *window* ``lastmod >= <last ms seen>`` and
  skip the ids already yielded at that millisecond.  If a whole window shares one millisecond
  (a bulk import), a *tie window* ``lastmod == ms`` sorted by ``hs_object_id`` walks it by id.
* **5 searches per second** (a separate limiter; search sends no burst headers).
* **Search cannot see archived records.**  Deletions come from the archived listing, which has no
  time filter, so it is polled at most every ``archived_poll_seconds``; records archived at/after
  the earlier of ``since`` and the previous poll's watermark are merged into the stream as
  ``deleted=True`` (the watermark keeps a throttled poll from missing deletions that happened
  before a cursor that has since moved on).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from more_itertools import chunked

from crm_bridge.connector import Record
from crm_bridge.connectors.hubspot.client import HubSpotClient, require_dict
from crm_bridge.connectors.hubspot.settings import HubSpotSettings

__all__ = ["CURSOR_FIELDS", "Reader", "parse_time", "to_ms"]

CURSOR_FIELDS = {
    "contacts": "lastmodifieddate",
    "companies": "hs_lastmodifieddate",
    "deals": "hs_lastmodifieddate",
}
IDENTITY_FIELDS: dict[str, tuple[str, ...]] = {"contacts": ("email",)}
ALWAYS_READ = ("hs_object_id", "hs_merged_object_ids", "hs_updated_by_user_id")
BATCH_READ_MAX = 100
LIST_PAGE_MAX = 100
ARCHIVE_WATERMARK_OVERLAP = timedelta(minutes=5)
"""Deletions archived while a poll pages the listing may carry a stamp just below the newest one
seen; the next poll starts this much earlier so they cannot fall between two polls."""


def parse_time(value: Any) -> datetime:
    """HubSpot times: ISO-8601 (``...Z``, ms) or epoch milliseconds, to aware UTC datetimes."""
    text = str(value).strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000.0, tz=UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def to_ms(when: datetime) -> int:
    """Epoch milliseconds (the search API's datetime filter value); naive means UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


@dataclass
class _ArchiveState:
    polled_at: float | None = None  # clock.monotonic() of the last completed poll
    watermark: datetime | None = None  # report archives at/after this on the next poll


class Reader:
    """Turns search pages, archived listings and batch reads into :class:`Record` streams."""

    def __init__(self, client: HubSpotClient, settings: HubSpotSettings) -> None:
        self.client = client
        self.settings = settings
        self._definitions: dict[str, list[str]] = {}
        self._archive: dict[str, _ArchiveState] = {}

    # -- properties ------------------------------------------------------------------------------

    def properties(self, obj: str) -> list[str]:
        """What to request: configured (or all non-hidden) properties plus what a Record needs."""
        by_object = {str(k): v for k, v in (self.settings.properties or {}).items()}
        configured = by_object.get(obj)
        base = list(configured) if configured is not None else self._all_visible(obj)
        wanted = [*base, CURSOR_FIELDS[obj], *ALWAYS_READ, *IDENTITY_FIELDS.get(obj, ())]
        return list(dict.fromkeys(wanted))

    def _all_visible(self, obj: str) -> list[str]:
        """Property definitions are read once per object and cached for the connector's life."""
        if obj not in self._definitions:
            response = self.client.send(
                "properties", "crm.properties.core_api", "get_all", obj, idempotent=True
            )
            results = require_dict(response, "properties").get("results") or []
            self._definitions[obj] = [
                str(d["name"])
                for d in results
                if isinstance(d, dict) and "name" in d and not d.get("hidden")
            ]
        return self._definitions[obj]

    # -- records ---------------------------------------------------------------------------------

    @staticmethod
    def to_record(obj: str, raw: dict[str, Any]) -> Record:
        """A search/batch/list result as a Record; values stay the strings HubSpot sent."""
        props: dict[str, Any] = dict(raw.get("properties") or {})
        modified_raw = props.get(CURSOR_FIELDS[obj]) or raw.get("updatedAt")
        merged = props.get("hs_merged_object_ids") or ""
        if raw.get("archived"):
            stamp = raw.get("archivedAt") or raw.get("updatedAt") or modified_raw
            return Record(
                object=obj,
                id=str(raw["id"]),
                version=f"archived:{stamp}",
                modified_at=parse_time(stamp),
                fields=props,
                deleted=True,
                modified_by=props.get("hs_updated_by_user_id") or None,
            )
        return Record(
            object=obj,
            id=str(raw["id"]),
            version=str(raw.get("updatedAt") or modified_raw),
            modified_at=parse_time(modified_raw),
            fields=props,
            merged_from=tuple(part for part in str(merged).split(";") if part),
            modified_by=props.get("hs_updated_by_user_id") or None,
        )

    # -- the change stream -----------------------------------------------------------------------

    def changes(self, obj: str, since: datetime | None) -> Iterator[Record]:
        """Search windows merged (by time) with a due archived poll; oldest first."""
        state = self._archive.setdefault(obj, _ArchiveState())
        now = self.client.clock.monotonic()
        due = (
            state.polled_at is None or now - state.polled_at >= self.settings.archived_poll_seconds
        )
        if not due:
            yield from self._search(obj, since)
            return
        lower = since
        if state.watermark is not None:
            lower = state.watermark if lower is None else min(_aware(lower), state.watermark)
        archived, newest = self._archived(obj, lower)
        yield from heapq.merge(self._search(obj, since), archived, key=lambda r: r.modified_at)
        # Only a fully consumed stream counts as a poll: an abandoned one is redone next time.
        state.polled_at = now
        if newest is not None:
            state.watermark = newest - ARCHIVE_WATERMARK_OVERLAP
        elif lower is not None:
            state.watermark = _aware(lower)

    def _search(self, obj: str, since: datetime | None) -> Iterator[Record]:
        """Offset pages inside windows; see the module docstring for windows and ties."""
        cursor = CURSOR_FIELDS[obj]
        props = self.properties(obj)
        size = self.settings.search_page_size
        cap = self.settings.search_max_results
        lower: int | None = to_ms(since) if since is not None else None
        newest_ms: int | None = None
        ids_at_newest: set[str] = set()
        tie_after: int | None = None  # not None: walking a tie window by id
        tie = False
        while True:
            if tie:
                assert lower is not None
                filters: list[dict[str, Any]] = [
                    {"propertyName": cursor, "operator": "EQ", "value": str(lower)}
                ]
                if tie_after is not None:
                    filters.append(
                        {"propertyName": "hs_object_id", "operator": "GT", "value": str(tie_after)}
                    )
                sort = "hs_object_id"
            else:
                filters = (
                    [{"propertyName": cursor, "operator": "GTE", "value": str(lower)}]
                    if lower is not None
                    else []
                )
                sort = cursor
            window_first: int | None = None  # ms of the first result of this window
            after = 0
            last_id: int | None = None
            while True:
                body: dict[str, Any] = {
                    "filterGroups": [{"filters": filters}] if filters else [],
                    "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
                    "properties": props,
                    "limit": min(size, cap - after),
                    "after": str(after),
                }
                page = require_dict(
                    self.client.send(
                        "search",
                        "crm.objects.search_api",
                        "do_search",
                        obj,
                        body,
                        idempotent=True,
                        search=True,
                    ),
                    "search",
                )
                for raw in page.get("results") or []:
                    record = self.to_record(obj, raw)
                    ms = to_ms(record.modified_at)
                    if window_first is None:
                        window_first = ms
                    if record.id.isdigit():
                        last_id = int(record.id)
                    if newest_ms is not None and ms <= newest_ms and record.id in ids_at_newest:
                        continue  # already yielded at the window boundary
                    if newest_ms is None or ms > newest_ms:
                        newest_ms, ids_at_newest = ms, set()
                    ids_at_newest.add(record.id)
                    yield record
                nxt = ((page.get("paging") or {}).get("next") or {}).get("after")
                total = page.get("total")
                if isinstance(total, int) and total <= int(nxt or 0):
                    nxt = None  # everything matched is already read: no window to open
                if nxt is None:
                    break
                after = int(nxt)
                if after >= cap:
                    break
            if nxt is None:
                if not tie:
                    return
                # The tie window is exhausted: go on strictly after that millisecond.
                tie, tie_after, lower, ids_at_newest = False, None, (lower or 0) + 1, set()
                continue
            # The cap is reached: open the next window where this one stopped.
            if tie:
                tie_after = last_id
            elif newest_ms is not None and window_first is not None and newest_ms > window_first:
                lower = newest_ms  # progress: the next window starts at the newest millisecond
            else:
                tie, tie_after, lower = True, None, newest_ms if newest_ms is not None else lower

    def _archived(self, obj: str, lower: datetime | None) -> tuple[list[Record], datetime | None]:
        """All archived records (the listing cannot filter by time), kept if at/after ``lower``."""
        keep: list[Record] = []
        newest: datetime | None = None
        props = list(dict.fromkeys([CURSOR_FIELDS[obj], *IDENTITY_FIELDS.get(obj, ())]))
        after: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": LIST_PAGE_MAX, "archived": True, "properties": props}
            if after is not None:
                kwargs["after"] = after
            page = require_dict(
                self.client.send(
                    "objects", "crm.objects.basic_api", "get_page", obj, idempotent=True, **kwargs
                ),
                "archived listing",
            )
            for raw in page.get("results") or []:
                record = self.to_record(obj, {**raw, "archived": True})
                if newest is None or record.modified_at > newest:
                    newest = record.modified_at
                if lower is None or record.modified_at >= _aware(lower):
                    keep.append(record)
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if after is None:
                break
        keep.sort(key=lambda r: (r.modified_at, r.id))
        return keep, newest

    # -- by id -----------------------------------------------------------------------------------

    def fetch(self, obj: str, ids: Iterable[str]) -> Iterator[Record]:
        """Batch reads of at most 100 ids; unknown ids are skipped, merged ids read the survivor."""
        props = self.properties(obj)
        seen: set[str] = set()
        for chunk in chunked(list(dict.fromkeys(str(i) for i in ids)), BATCH_READ_MAX):
            body = {"inputs": [{"id": i} for i in chunk], "properties": props}
            response = self.client.send(
                "batch", "crm.objects.batch_api", "read", obj, body, idempotent=True
            )
            for raw in require_dict(response, "batch read").get("results") or []:
                record = self.to_record(obj, raw)
                if record.id not in seen:
                    seen.add(record.id)
                    yield record


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
