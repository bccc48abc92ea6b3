"""Lists v3 ("segments"): MANUAL, SNAPSHOT and DYNAMIC lists and their memberships.

Why the emulator keeps memberships itself: crm-bridge routes leads by adding them to MANUAL lists,
and tests must see exactly which ids were added, already present or missing
(``recordsIdsAdded`` [sic] / ``recordIdsMissing``).  DYNAMIC lists are accepted but their filters
are not evaluated; their membership cannot be changed through the API (as in HubSpot).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crm_bridge.connectors.hubspot.emulator.timefmt import iso_ms

__all__ = ["CrmList", "ListStore"]

PROCESSING_TYPES = ("MANUAL", "SNAPSHOT", "DYNAMIC")


@dataclass
class CrmList:
    """One list and its members (record id -> ms when added)."""

    list_id: int
    name: str
    object_type_id: str
    processing_type: str
    created_ms: int
    updated_ms: int
    version: int = 1
    filter_branch: dict[str, Any] | None = None
    members: dict[int, int] = field(default_factory=dict)

    def to_json(self, *, include_filters: bool = False) -> dict[str, Any]:
        """The ``list`` object of the Lists v3 API."""
        body: dict[str, Any] = {
            "listId": str(self.list_id),
            "listVersion": self.version,
            "name": self.name,
            "objectTypeId": self.object_type_id,
            "processingType": self.processing_type,
            "processingStatus": "COMPLETE",
            "createdAt": iso_ms(self.created_ms),
            "updatedAt": iso_ms(self.updated_ms),
            "filtersUpdatedAt": iso_ms(self.created_ms),
            "size": len(self.members),
            "additionalProperties": {"hs_list_size": str(len(self.members))},
        }
        if include_filters and self.filter_branch is not None:
            body["filterBranch"] = self.filter_branch
        return body

    def to_state(self) -> dict[str, Any]:
        """Plain data for snapshots."""
        data = dict(self.__dict__)
        data["members"] = [[k, v] for k, v in self.members.items()]
        return data

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> CrmList:
        """Inverse of :meth:`to_state`."""
        fields = dict(data)
        fields["members"] = {int(k): int(v) for k, v in data.get("members", [])}
        return cls(**fields)


class ListStore:
    """All lists of the portal, by id and by (object type, name)."""

    def __init__(self) -> None:
        self.lists: dict[int, CrmList] = {}
        self.next_id = 1

    def create(
        self,
        name: str,
        object_type_id: str,
        processing_type: str,
        now_ms: int,
        filter_branch: dict[str, Any] | None = None,
    ) -> CrmList:
        """Add a list; the caller has checked the name is free."""
        lst = CrmList(
            self.next_id,
            name,
            object_type_id,
            processing_type,
            now_ms,
            now_ms,
            filter_branch=filter_branch,
        )
        self.lists[lst.list_id] = lst
        self.next_id += 1
        return lst

    def by_name(self, object_type_id: str, name: str) -> CrmList | None:
        """Names are unique per object type and compared without case."""
        wanted = name.lower()
        for lst in self.lists.values():
            if lst.object_type_id == object_type_id and lst.name.lower() == wanted:
                return lst
        return None

    def memberships_of(self, object_type_id: str, record_id: int) -> list[CrmList]:
        """The lists a record belongs to."""
        return [
            lst
            for lst in self.lists.values()
            if lst.object_type_id == object_type_id and record_id in lst.members
        ]

    def forget_record(self, object_type_id: str, record_id: int, into: int | None) -> None:
        """Drop a record from every list (moving it to ``into`` when it was merged)."""
        for lst in self.lists.values():
            if lst.object_type_id != object_type_id:
                continue
            added = lst.members.pop(record_id, None)
            if added is not None and into is not None:
                lst.members.setdefault(into, added)
