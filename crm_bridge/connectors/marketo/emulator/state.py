"""The in-memory instance: leads, the activity log, static lists and programs.

Why every write goes through :class:`Instance`: Marketo's change feeds are views of the activity
log, so a lead write that forgot to log its "Change Data Value" would be invisible to a syncing
connector -- here creating, changing, deleting and merging leads and list membership all log
their activities in the same step.  Everything happens under ``Instance.lock``: handlers run on
the server thread while tests seed, snapshot or reset from theirs.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from crm_bridge.connectors.marketo.emulator.activities import (
    CHANGE_DATA_VALUE,
    DELETE_LEAD,
    MERGE_LEADS,
    NEW_LEAD,
    Activity,
)
from crm_bridge.connectors.marketo.emulator.fields import LeadSchema
from crm_bridge.connectors.marketo.emulator.objects import ObjectStores
from crm_bridge.connectors.marketo.emulator.timefmt import iso
from crm_bridge.emulators.runtime import EmulatorClock

__all__ = ["API_SOURCE", "Instance", "Lead", "Membership", "Program", "StaticList"]

SNAPSHOT_FORMAT = "crm-bridge-marketo/1"
API_SOURCE = "Web service API"
"""The ``Source``/``Reason`` Marketo stamps on changes made through the REST API (echo hint)."""


@dataclass
class Lead:
    """One person.  ``values`` holds every field but ``id``/``createdAt``/``updatedAt``."""

    id: int
    values: dict[str, Any]
    created: float
    updated: float

    def get(self, name: str) -> Any:
        """A field's value as the API renders it."""
        if name == "id":
            return self.id
        if name == "createdAt":
            return iso(self.created)
        if name == "updatedAt":
            return iso(self.updated)
        return self.values.get(name)

    def display_name(self) -> str:
        """The "First Last" name, or the email when both are empty (Delete Lead's primary value)."""
        name = " ".join(
            str(v) for v in (self.values.get("firstName"), self.values.get("lastName")) if v
        )
        return name or str(self.values.get("email") or self.id)


@dataclass
class StaticList:
    """A static list; ``members`` keeps insertion order (lead id -> added at)."""

    id: int
    name: str
    created: float
    updated: float
    description: str = ""
    program_name: str | None = None
    workspace_name: str = "Default"
    members: dict[int, float] = field(default_factory=dict)

    def render(self) -> dict[str, Any]:
        """The ``lists.json`` item."""
        item: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "workspaceName": self.workspace_name,
            "createdAt": iso(self.created),
            "updatedAt": iso(self.updated),
        }
        if self.program_name:
            item["programName"] = self.program_name
        return item


@dataclass
class Membership:
    """A lead's membership in a program."""

    status: str
    since: float
    reached_success: bool = False
    acquired_by: bool = False
    updated: float = 0.0


@dataclass
class Program:
    """A program with its ordered status progression (the last ones are success steps)."""

    id: int
    name: str
    statuses: list[str]
    success_statuses: list[str]
    members: dict[int, Membership] = field(default_factory=dict)


class Instance:
    """One Marketo subscription's lead database."""

    def __init__(self, clock: EmulatorClock) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.schema = LeadSchema()
        self.objects = ObjectStores()
        self.reset()

    def reset(self) -> None:
        """Empty everything (ids start again)."""
        with self.lock:
            self.schema.reset()
            self.objects.reset()
            self.leads: dict[int, Lead] = {}
            self._by_email: dict[str, list[int]] = {}
            self.activities: list[Activity] = []
            self._activity_ids: list[int] = []
            self.lists: dict[int, StaticList] = {}
            self.programs: dict[int, Program] = {}
            self._next_lead = 1
            self._next_activity = 1
            self._next_list = 1001
            self._next_program = 2001

    @property
    def next_lead_id(self) -> int:
        """The id the next created lead gets (ids only grow: a lower id existed before)."""
        return self._next_lead

    def now(self) -> float:
        """The emulator clock, whole seconds (the vendor's stamps have no fractions)."""
        return float(int(self.clock.time()))

    # -- activity log ---------------------------------------------------------------------

    def log(
        self,
        lead_id: int,
        type_id: int,
        *,
        primary_value: str | None = None,
        primary_value_id: int | None = None,
        attributes: dict[str, Any] | None = None,
        fields: list[dict[str, Any]] | None = None,
        at: float | None = None,
    ) -> Activity:
        """Append one activity."""
        activity = Activity(
            id=self._next_activity,
            lead_id=lead_id,
            type_id=type_id,
            at=self.now() if at is None else at,
            primary_value=primary_value,
            primary_value_id=primary_value_id,
            attributes=dict(attributes or {}),
            fields=list(fields or []),
        )
        self._next_activity += 1
        self.activities.append(activity)
        self._activity_ids.append(activity.id)
        return activity

    def activities_after(self, last_id: int) -> Iterable[Activity]:
        """The log from the first activity with an id above ``last_id``."""
        start = bisect.bisect_right(self._activity_ids, last_id)
        return self.activities[start:]

    # -- leads -------------------------------------------------------------------------------

    def find(self, name: str, value: Any) -> list[Lead]:
        """Leads whose field ``name`` equals ``value`` (email case-insensitively), by id."""
        if name == "id":
            lead = self.leads.get(int(value))
            return [lead] if lead else []
        if name == "email":
            ids = self._by_email.get(str(value).lower(), [])
            return [self.leads[i] for i in ids]
        return [lead for lead in self.leads.values() if lead.values.get(name) == value]

    def _index(self, lead: Lead, old_email: Any) -> None:
        if old_email:
            ids = self._by_email.get(str(old_email).lower(), [])
            if lead.id in ids:
                ids.remove(lead.id)
        email = lead.values.get("email")
        if email:
            self._by_email.setdefault(str(email).lower(), []).append(lead.id)
            self._by_email[str(email).lower()].sort()

    def create_lead(self, values: dict[str, Any], *, source: str = API_SOURCE) -> Lead:
        """Add a lead and log "New Lead"."""
        now = self.now()
        lead = Lead(self._next_lead, {k: v for k, v in values.items() if v is not None}, now, now)
        self._next_lead += 1
        self.leads[lead.id] = lead
        self._index(lead, None)
        self.log(
            lead.id,
            NEW_LEAD,
            primary_value=lead.display_name(),
            primary_value_id=lead.id,
            attributes={"Source Type": source},
        )
        return lead

    def update_lead(
        self, lead: Lead, changes: dict[str, Any], *, reason: str = API_SOURCE
    ) -> list[str]:
        """Apply changes; log one "Change Data Value" per changed field; returns their names."""
        changed: list[str] = []
        old_email = lead.values.get("email")
        for name, value in changes.items():
            old = lead.values.get(name)
            if old == value:
                continue
            if value is None:
                lead.values.pop(name, None)
            else:
                lead.values[name] = value
            changed.append(name)
            field_def = self.schema.get(name)
            field_id = field_def.id if field_def else 0
            display = field_def.display_name if field_def else name
            self.log(
                lead.id,
                CHANGE_DATA_VALUE,
                primary_value=display,
                primary_value_id=field_id,
                attributes={
                    "New Value": value,
                    "Old Value": old,
                    "Reason": reason,
                    "Source": API_SOURCE if reason == API_SOURCE else reason,
                },
                fields=[
                    {
                        "id": field_id,
                        "name": name,
                        "newValue": None if value is None else str(value),
                        "oldValue": None if old is None else str(old),
                    }
                ],
            )
        if changed:
            lead.updated = self.now()
            if "email" in changed:
                self._index(lead, old_email)
        return changed

    def delete_lead(self, lead: Lead, *, log: bool = True) -> None:
        """Remove a lead from the database, its lists and programs; log "Delete Lead"."""
        self.leads.pop(lead.id, None)
        email = lead.values.get("email")
        if email:
            ids = self._by_email.get(str(email).lower(), [])
            if lead.id in ids:
                ids.remove(lead.id)
        for static_list in self.lists.values():
            static_list.members.pop(lead.id, None)
        for program in self.programs.values():
            program.members.pop(lead.id, None)
        if log:
            self.log(
                lead.id,
                DELETE_LEAD,
                primary_value=lead.display_name(),
                primary_value_id=lead.id,
                attributes={"Remove from CRM": False},
            )

    def merge(self, winner: Lead, losers: list[Lead]) -> None:
        """Merge ``losers`` into ``winner``: the winner's values win unless empty.

        Losers disappear (no "Delete Lead"); their list and program memberships move to the
        winner; one "Merge Leads" activity on the winner names every merged id.
        """
        fills: dict[str, Any] = {}
        for loser in losers:
            for name, value in loser.values.items():
                if winner.values.get(name) in (None, "") and name not in fills:
                    fills[name] = value
        for loser in losers:
            for static_list in self.lists.values():
                if loser.id in static_list.members and winner.id not in static_list.members:
                    static_list.members[winner.id] = static_list.members[loser.id]
            for program in self.programs.values():
                if loser.id in program.members and winner.id not in program.members:
                    program.members[winner.id] = program.members[loser.id]
            self.delete_lead(loser, log=False)
        self.update_lead(winner, fills, reason="Merge Leads")
        self.log(
            winner.id,
            MERGE_LEADS,
            primary_value=winner.display_name(),
            primary_value_id=winner.id,
            attributes={
                "Merge IDs": [winner.id, *(loser.id for loser in losers)],
                "Merged in Sales": False,
                "Merge Source": API_SOURCE,
            },
        )

    # -- lists and programs --------------------------------------------------------------

    def create_list(
        self, name: str, *, description: str = "", program_name: str | None = None
    ) -> StaticList:
        """A new static list (the Asset API's job; here the control plane's)."""
        if any(existing.name == name for existing in self.lists.values()):
            raise ValueError(f"a static list named {name!r} exists")
        now = self.now()
        static_list = StaticList(self._next_list, name, now, now, description, program_name)
        self._next_list += 1
        self.lists[static_list.id] = static_list
        return static_list

    def create_program(
        self,
        name: str,
        statuses: list[str] | None = None,
        success_statuses: list[str] | None = None,
    ) -> Program:
        """A new program with its channel's statuses."""
        steps = statuses or ["Not in Program", "Member", "Influenced", "Attended"]
        success = success_statuses if success_statuses is not None else steps[-1:]
        program = Program(self._next_program, name, steps, success)
        self._next_program += 1
        self.programs[program.id] = program
        return program

    # -- snapshot ------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """All data as JSON-ready data."""
        with self.lock:
            return {
                "format": SNAPSHOT_FORMAT,
                "customFields": self.schema.snapshot(),
                "leads": [
                    {
                        "id": lead.id,
                        "values": lead.values,
                        "created": lead.created,
                        "updated": lead.updated,
                    }
                    for lead in self.leads.values()
                ],
                "activities": [a.to_json() for a in self.activities],
                "lists": [
                    {
                        **sl.render(),
                        "created": sl.created,
                        "updated": sl.updated,
                        "members": [[k, v] for k, v in sl.members.items()],
                    }
                    for sl in self.lists.values()
                ],
                "programs": [
                    {
                        "id": p.id,
                        "name": p.name,
                        "statuses": p.statuses,
                        "successStatuses": p.success_statuses,
                        "members": [[lid, m.__dict__] for lid, m in p.members.items()],
                    }
                    for p in self.programs.values()
                ],
                "objects": self.objects.snapshot(),
                "next": [self._next_lead, self._next_activity, self._next_list, self._next_program],
            }

    def load(self, data: dict[str, Any]) -> None:
        """Replace all data with a snapshot."""
        if data.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"not a {SNAPSHOT_FORMAT} snapshot")
        with self.lock:
            self.reset()
            for custom in data["customFields"]:
                self.schema.add_custom(custom["name"], custom["dataType"], custom["displayName"])
            for raw in data["leads"]:
                lead = Lead(int(raw["id"]), dict(raw["values"]), raw["created"], raw["updated"])
                self.leads[lead.id] = lead
                self._index(lead, None)
            for raw in data["activities"]:
                activity = Activity.from_json(raw)
                self.activities.append(activity)
                self._activity_ids.append(activity.id)
            for raw in data["lists"]:
                sl = StaticList(
                    int(raw["id"]),
                    raw["name"],
                    raw["created"],
                    raw["updated"],
                    raw.get("description", ""),
                    raw.get("programName"),
                    raw.get("workspaceName", "Default"),
                    {int(k): float(v) for k, v in raw["members"]},
                )
                self.lists[sl.id] = sl
            for raw in data["programs"]:
                program = Program(
                    int(raw["id"]), raw["name"], raw["statuses"], raw["successStatuses"]
                )
                program.members = {int(lid): Membership(**m) for lid, m in raw["members"]}
                self.programs[program.id] = program
            self.objects.load(data["objects"])
            (self._next_lead, self._next_activity, self._next_list, self._next_program) = data[
                "next"
            ]
