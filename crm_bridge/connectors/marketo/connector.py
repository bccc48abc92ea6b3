"""The Marketo connector: leads over the REST lead-database API, on httpx.

Why it is split the way it is: :mod:`.client` owns *how* a request is sent (instance budget,
retries, tokens, counting), :mod:`.reading` / :mod:`.writing` / :mod:`.lists` /
:mod:`.activities` own *what* is sent and how answers map to the connector contract; this class
only wires them.  docs/connectors/marketo.md explains the call budget and the change feeds.

Objects: ``leads`` only.  The emulator serves companies and opportunities too, but both are
read-only or refused (1018) when Marketo's native CRM sync is on -- the usual setup next to a
CRM -- and neither has a change feed (no activities), so syncing them would mean re-reading
everything each cycle; they are left out on purpose.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import ClassVar

import httpx

from crm_bridge.connector import (
    Activity,
    Capability,
    Connector,
    ConnectorSettings,
    ObjectSpec,
    Record,
    WriteOp,
    WriteResult,
)
from crm_bridge.connectors.marketo import activities as _activities
from crm_bridge.connectors.marketo.client import InstanceBudget, MarketoClient
from crm_bridge.connectors.marketo.lists import Lists
from crm_bridge.connectors.marketo.reading import IDENTITY_FIELDS, LEADS, Reader
from crm_bridge.connectors.marketo.settings import MarketoSettings
from crm_bridge.connectors.marketo.writing import BATCH_MAX, Writer
from crm_bridge.http import Clock

__all__ = ["MarketoConnector"]


class MarketoConnector(Connector[MarketoSettings]):
    """Marketo Engage leads: lead-changes feed, 300-lead batch writes, static lists."""

    Settings: ClassVar[type[ConnectorSettings]] = MarketoSettings
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.INCREMENTAL,
            Capability.BATCH_UPSERT,
            Capability.UPSERT_BY_IDENTITY,
            Capability.HARD_DELETE,
            Capability.MERGE_FEED,
            Capability.LISTS,
            Capability.ACTIVITIES,
        }
    )
    description: ClassVar[str] = "Marketo Engage leads (lead-changes feed + 300-lead batches)."

    def __init__(
        self,
        settings: MarketoSettings,
        *,
        name: str,
        clock: Clock | None = None,
        http: httpx.Client | None = None,
        budget: InstanceBudget | None = None,
    ) -> None:
        """Wire client, reader, writer and lists around one call counter.

        ``clock`` paces, backs off and expires tokens (tests pass a FakeClock); ``http`` is the
        pooled httpx client (default: our own); ``budget`` the instance's shared limits (default:
        the process-wide one for this instance and clock).
        """
        super().__init__(settings, name=name)
        self.client = MarketoClient(
            settings, calls=self.calls, clock=clock, http=http, budget=budget
        )
        self.reader = Reader(self.client, settings)
        self.writer = Writer(self.client)
        self.lists = Lists(self.client, settings)

    def objects(self) -> Sequence[ObjectSpec]:
        """Leads, keyed by Marketo's integer id, matched on email."""
        return [
            ObjectSpec(
                name=LEADS,
                identity_fields=IDENTITY_FIELDS,
                max_batch=BATCH_MAX,
            )
        ]

    def check(self) -> str:
        """One ``leads/describe.json`` call (plus the token): proves access, caches the fields."""
        names = self.reader.describe()
        user = self.client.api_user or "unknown API user"
        return f"Marketo instance {self.settings.base_url} as {user} ({len(names)} lead fields)"

    def changes(self, obj: str, since: datetime | None) -> Iterator[Record]:
        """Lead changes, deletions and merges at or after ``since``, oldest first."""
        self.object_spec(obj)
        return self.reader.changes(since)

    def fetch(self, obj: str, ids: Iterable[str]) -> Iterator[Record]:
        """Leads by id, 300 per call."""
        self.object_spec(obj)
        return self.reader.fetch(ids)

    def write(self, obj: str, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """CreateOrUpdate / updateOnly / createOnly and hard deletes; results in input order."""
        spec = self.object_spec(obj)
        return self.writer.write(ops, spec.identity_fields)

    def activities(
        self, obj: str, record_ids: Sequence[str], since: datetime | None
    ) -> Iterator[Activity]:
        """Form fills, web visits and link clicks of ``record_ids`` at or after ``since``."""
        self.object_spec(obj)
        return _activities.activities(self.reader, record_ids, since)

    def ensure_list(self, name: str, obj: str) -> str:
        """The static list called ``name``, created in ``list_folder_id`` if needed."""
        self.object_spec(obj)
        return self.lists.ensure(name)

    def add_to_list(self, list_id: str, ids: Sequence[str]) -> None:
        """Add leads to a static list, 300 per call."""
        self.lists.change(list_id, ids, add=True)

    def remove_from_list(self, list_id: str, ids: Sequence[str]) -> None:
        """Remove leads from a static list, 300 per call."""
        self.lists.change(list_id, ids, add=False)

    def list_members(self, list_id: str) -> Iterator[str]:
        """Lead ids of a static list, page by page."""
        return self.lists.members(list_id)

    def close(self) -> None:
        """Release the connection pool."""
        self.client.close()
