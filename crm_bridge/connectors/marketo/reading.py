"""Reading leads: the lead-changes, deleted-leads and merge feeds, and batch reads by id.

How a change stream is built (docs/connectors/marketo.md has the long form):

1. one ``activities/pagingtoken.json?sinceDatetime=`` call turns ``since`` into a position in
   the instance's activity log (the same token starts all three feeds);
2. ``activities/leadchanges.json`` ("New Lead" and "Change Data Value" of the watched fields)
   and one ``activities.json?activityTypeIds=<Delete Lead>,<Merge Leads>`` pass are read to
   their end (``moreResult: false``; a short or empty page does *not* mean the end), keeping
   only lead ids and the position of each lead's last change.  Every feed page is a *window*
   of the whole log (300 activities of any type), so each feed costs ⌈log rows/300⌉ calls
   however little it matches: deletions and merges share one pass instead of reading
   ``deletedleads.json`` (the same "Delete Lead" rows) and the merges separately;
3. the changed ids are read back with ``leads.json?filterType=id`` (``page_size`` per call) in
   the order of their last change, and yielded oldest first together with the deletions and
   merge losers.

Why ids first and records after: the feed lists every field change, so a busy lead appears many
times; reading each lead once, by id, costs ⌈changed/300⌉ calls whatever the churn.  Why the
stream still ascends: a lead's ``updatedAt`` is never before its last change in the feed, so a
record can be released as soon as it is not later than the next unread lead's last change -- the
buffer stays small and nothing arrives out of order.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crm_bridge.connector import Record
from crm_bridge.connectors.marketo.client import MarketoClient
from crm_bridge.connectors.marketo.settings import MarketoSettings
from crm_bridge.errors import CrmBridgeError

__all__ = [
    "DELETE_LEAD",
    "IDENTITY_FIELDS",
    "LEADS",
    "MERGE_LEADS",
    "FeedPosition",
    "Reader",
    "format_since",
    "parse_marketo_datetime",
]

LEADS = "leads"
IDENTITY_FIELDS: tuple[str, ...] = ("email",)
MERGE_LEADS = "Merge Leads"
DELETE_LEAD = "Delete Lead"
_ALWAYS = ("id", "email", "createdAt", "updatedAt")
_NOT_WATCHED = frozenset({"id", "createdAt", "updatedAt"})


def parse_marketo_datetime(text: str) -> datetime:
    """``2024-01-31T12:00:00Z`` / ``...+0000`` (and the asset API's ``...Z+0000``) as aware UTC."""
    raw = text.strip()
    if raw.endswith("Z+0000"):
        raw = raw[: -len("+0000")]
    parsed = datetime.fromisoformat(raw)
    if parsed.tzinfo is None:
        raise CrmBridgeError(f"Marketo answered a date-time without a zone: {text!r}")
    return parsed


def format_since(since: datetime) -> str:
    """``since`` floored to the second (Marketo's stamps have none), for ``sinceDatetime``.

    Flooring keeps ``since`` inclusive: a change at 12:00:00 is at or after 12:00:00.4.
    """
    return since.replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, order=True, slots=True)
class FeedPosition:
    """Where in the activity log a lead last changed: (date, activity id) orders the log."""

    at: datetime
    activity_id: int


class Reader:
    """Lead reads for the connector; keeps the field list and activity types it looked up."""

    def __init__(self, client: MarketoClient, settings: MarketoSettings) -> None:
        self.client = client
        self.settings = settings
        self._fields: list[str] | None = list(settings.fields) if settings.fields else None
        self._types: dict[str, int] | None = None

    # -- metadata ------------------------------------------------------------------------------

    def describe(self) -> list[str]:
        """Every REST field name of the instance's leads (one ``describe.json`` call)."""
        body = self.client.send("GET", "/rest/v1/leads/describe.json", idempotent=True)
        names = [
            str(item["rest"]["name"])
            for item in body.get("result") or []
            if isinstance(item, dict) and isinstance(item.get("rest"), dict)
        ]
        if self.settings.fields is None:
            self._fields = _with_required(names)
        return names

    def fields(self) -> list[str]:
        """The fields every read asks for (configured, or described once)."""
        if self._fields is None:
            self.describe()
        assert self._fields is not None
        return _with_required(self._fields)

    def watched(self) -> list[str]:
        """The fields whose changes the lead-changes feed must report."""
        return [f for f in self.fields() if f not in _NOT_WATCHED]

    def activity_types(self) -> dict[str, int]:
        """Activity type ids by name, from ``activities/types.json`` (read once; never hard-coded)."""
        if self._types is None:
            body = self.client.send("GET", "/rest/v1/activities/types.json", idempotent=True)
            self._types = {
                str(item["name"]): int(item["id"])
                for item in body.get("result") or []
                if isinstance(item, dict) and "id" in item and "name" in item
            }
        return self._types

    # -- reads by id ---------------------------------------------------------------------------

    def read_ids(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        """Leads by id, ``page_size`` per call; unknown ids are simply not in the answer."""
        found: list[dict[str, Any]] = []
        size = self.settings.page_size
        fields = self.fields()
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            token: str | None = None
            while True:
                params: dict[str, str | int | Sequence[str]] = {
                    "filterType": "id",
                    "filterValues": [str(i) for i in chunk],
                    "fields": fields,
                    "batchSize": size,
                }
                if token:
                    params["nextPageToken"] = token
                body = self.client.send(
                    "GET", "/rest/v1/leads.json", params=params, idempotent=True
                )
                found.extend(r for r in body.get("result") or [] if isinstance(r, dict))
                token = body.get("nextPageToken")
                if not token:
                    break
        return found

    def fetch(self, ids: Iterable[str]) -> Iterator[Record]:
        """Records by id, page by page; ids that are not Marketo lead ids are skipped unasked."""
        wanted = [int(i) for i in dict.fromkeys(ids) if str(i).isdigit()]
        size = self.settings.page_size
        for start in range(0, len(wanted), size):
            for raw in self.read_ids(wanted[start : start + size]):
                yield self.record(raw)

    def record(
        self,
        raw: dict[str, Any],
        *,
        floor: datetime | None = None,
        merged_from: tuple[str, ...] = (),
    ) -> Record:
        """One lead as a :class:`Record`; ``floor`` lifts ``modified_at`` to its feed position."""
        stamp = raw.get("updatedAt") or raw.get("createdAt")
        if not stamp:
            raise CrmBridgeError(f"Marketo lead {raw.get('id')} has no updatedAt")
        modified = parse_marketo_datetime(str(stamp))
        if floor is not None and floor > modified:
            modified = floor
        return Record(
            object=LEADS,
            id=str(raw["id"]),
            version=str(stamp),
            modified_at=modified,
            fields={k: v for k, v in raw.items() if k != "id"},
            merged_from=merged_from,
        )

    # -- feeds ---------------------------------------------------------------------------------

    def paging_token(self, since: datetime) -> str:
        """The log position of ``since`` (one call)."""
        body = self.client.send(
            "GET",
            "/rest/v1/activities/pagingtoken.json",
            params={"sinceDatetime": format_since(since)},
            idempotent=True,
        )
        token = body.get("nextPageToken")
        if not isinstance(token, str) or not token:
            raise CrmBridgeError("Marketo answered pagingtoken.json without a nextPageToken")
        return token

    def feed(
        self, path: str, token: str, params: dict[str, str | int | Sequence[str]] | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of one activity feed from ``token`` until ``moreResult`` is false."""
        while True:
            query: dict[str, str | int | Sequence[str]] = {
                **(params or {}),
                "nextPageToken": token,
                "batchSize": self.settings.page_size,
            }
            body = self.client.send("GET", path, params=query, idempotent=True)
            yield [a for a in body.get("result") or [] if isinstance(a, dict)]
            following = body.get("nextPageToken")
            if not body.get("moreResult") or not following or following == token:
                return
            token = str(following)

    def changes(self, since: datetime | None) -> Iterator[Record]:
        """See the module docstring; ``since=None`` starts the feed at ``initial_since``."""
        start = self.settings.initial_since if since is None else since
        token = self.paging_token(start)
        changed: dict[int, FeedPosition] = {}
        for page in self.feed(
            "/rest/v1/activities/leadchanges.json", token, {"fields": self.watched()}
        ):
            for activity in page:
                _note(changed, int(activity["leadId"]), _position(activity))
        events: list[tuple[FeedPosition, Record]] = []
        merged_from: dict[int, list[str]] = {}
        types = self.activity_types()
        delete_type, merge_type = types.get(DELETE_LEAD), types.get(MERGE_LEADS)
        if delete_type is None:  # an instance that does not list it: the dedicated feed
            pages = self.feed("/rest/v1/activities/deletedleads.json", token)
        else:
            wanted = [str(t) for t in (delete_type, merge_type) if t is not None]
            pages = self.feed("/rest/v1/activities.json", token, {"activityTypeIds": wanted})
        for page in pages:
            for activity in page:
                position = _position(activity)
                lead = int(activity["leadId"])
                type_id = activity.get("activityTypeId")
                if merge_type is not None and type_id == merge_type:
                    for loser in _merged_ids(activity, lead):
                        events.append((position, _gone(loser, position, into=str(lead))))
                        merged_from.setdefault(lead, []).append(loser)
                    _note(changed, lead, position)
                else:
                    events.append((position, _gone(str(lead), position)))
        yield from self._stream(changed, events, merged_from)

    def _stream(
        self,
        changed: dict[int, FeedPosition],
        events: list[tuple[FeedPosition, Record]],
        merged_from: dict[int, list[str]],
    ) -> Iterator[Record]:
        order = sorted(changed, key=lambda lead: changed[lead])
        events.sort(key=lambda item: item[0])
        size = self.settings.page_size
        seq = itertools.count()
        pending: list[tuple[datetime, int, Record]] = []
        next_event = 0
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            for raw in self.read_ids(chunk):
                lead = int(raw["id"])
                position = changed.get(lead)
                record = self.record(
                    raw,
                    floor=position.at if position else None,
                    merged_from=tuple(merged_from.get(lead, ())),
                )
                heapq.heappush(pending, (record.modified_at, next(seq), record))
            more = start + size < len(order)
            horizon = changed[order[start + size]].at if more else None
            while next_event < len(events) and (
                horizon is None or events[next_event][0].at <= horizon
            ):
                record = events[next_event][1]
                heapq.heappush(pending, (record.modified_at, next(seq), record))
                next_event += 1
            while pending and (horizon is None or pending[0][0] <= horizon):
                yield heapq.heappop(pending)[2]
        for _, record in events[next_event:]:
            heapq.heappush(pending, (record.modified_at, next(seq), record))
        while pending:
            yield heapq.heappop(pending)[2]


def _with_required(fields: Sequence[str]) -> list[str]:
    return list(dict.fromkeys([*_ALWAYS, *fields]))


def _note(changed: dict[int, FeedPosition], lead: int, position: FeedPosition) -> None:
    known = changed.get(lead)
    if known is None or position > known:
        changed[lead] = position


def _position(activity: dict[str, Any]) -> FeedPosition:
    return FeedPosition(
        parse_marketo_datetime(str(activity["activityDate"])), int(activity.get("id") or 0)
    )


def _gone(lead: str, position: FeedPosition, *, into: str | None = None) -> Record:
    return Record(
        object=LEADS,
        id=lead,
        version=f"{'merged' if into else 'deleted'}:{position.activity_id}",
        modified_at=position.at,
        fields={},
        deleted=True,
        merged_into=into,
    )


def _merged_ids(activity: dict[str, Any], winner: int) -> list[str]:
    """The losers named by a "Merge Leads" activity's ``Merge IDs`` attribute."""
    for attribute in activity.get("attributes") or []:
        if isinstance(attribute, dict) and attribute.get("name") == "Merge IDs":
            value = attribute.get("value")
            parts = value if isinstance(value, list) else str(value or "").split(",")
            ids = [str(p).strip() for p in parts if str(p).strip()]
            return [i for i in ids if i != str(winner)]
    return []
