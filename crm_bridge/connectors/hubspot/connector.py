"""The HubSpot connector: contacts, companies and deals over the CRM v3 API.

Why it is split the way it is: :mod:`.client` owns *how* a request is sent (pacing, retries,
tokens, counting), :mod:`.reading` and :mod:`.writing` own *what* is sent and how answers map to
:class:`~crm_bridge.connector.Record` / :class:`~crm_bridge.connector.WriteResult`.  This class
only wires them to the connector contract.  docs/connectors/hubspot.md explains the call budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, ClassVar

import httpx

from crm_bridge.connector import (
    Activity,
    Capability,
    ChangeFeed,
    Connector,
    ConnectorSettings,
    NewTask,
    ObjectSpec,
    Owner,
    Record,
    Upsert,
    WriteOp,
    WriteResult,
)
from crm_bridge.connectors.hubspot import activities as _activities
from crm_bridge.connectors.hubspot import associated as _associated
from crm_bridge.connectors.hubspot.admin import HubSpotAdminMixin
from crm_bridge.connectors.hubspot.client import HubSpotClient, require_dict
from crm_bridge.connectors.hubspot.journal import HubSpotJournalFeed
from crm_bridge.connectors.hubspot.reading import CURSOR_FIELDS, IDENTITY_FIELDS, Reader
from crm_bridge.connectors.hubspot.settings import HubSpotSettings
from crm_bridge.connectors.hubspot.writing import BATCH_MAX, Writer
from crm_bridge.errors import RecordRejectedError
from crm_bridge.http import Clock

__all__ = ["HubSpotConnector"]

OWNERS_PAGE = 500


class HubSpotConnector(HubSpotAdminMixin, Connector[HubSpotSettings]):
    """HubSpot CRM (marketing side): search-based change stream, batch writes, owners."""

    Settings: ClassVar[type[ConnectorSettings]] = HubSpotSettings
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.INCREMENTAL,
            Capability.BATCH_UPSERT,
            Capability.UPSERT_BY_IDENTITY,
            Capability.ARCHIVE,
            Capability.MERGE_FEED,
            Capability.OWNERS,
            # SLA (.activities): engagements as first touches, reminder tasks
            Capability.ACTIVITIES,
            Capability.TASKS,
            # reason codes (.admin): enumeration properties, static lists, associations
            Capability.PICKLIST_ADMIN,
            Capability.LISTS,
            Capability.RELATIONS,
            # push hints (.journal): the webhooks journal, once its app is configured
            Capability.CHANGE_FEED,
        }
    )
    description: ClassVar[str] = "HubSpot CRM v3: contacts, companies, deals (search + batch)."

    def __init__(
        self,
        settings: HubSpotSettings,
        *,
        name: str,
        clock: Clock | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        """Wire the client, reader and writer around one call counter.

        ``clock`` paces, backs off and expires tokens (tests pass a FakeClock); ``http`` is the
        httpx client for the OAuth token endpoint (default: one of our own).
        """
        super().__init__(settings, name=name)
        self.client = HubSpotClient(settings, name=name, calls=self.calls, clock=clock, http=http)
        self.reader = Reader(self.client, settings)
        self.writer = Writer(self.client, self.reader)
        self._associations = _associated.AssociationCache()

    def objects(self) -> Sequence[ObjectSpec]:
        """Keyed by ``hs_object_id``; the cursor is the object's last-modified property."""
        return [
            ObjectSpec(
                name=obj,
                primary_key="hs_object_id",
                cursor_field=CURSOR_FIELDS[obj],
                version_field="updatedAt",
                identity_fields=IDENTITY_FIELDS.get(obj, ()),
                max_batch=BATCH_MAX,
                label=obj.capitalize(),
                max_concurrent_writes=self.settings.write_concurrency,
            )
            for obj in self.settings.objects
        ]

    def check(self) -> str:
        """One owners call (limit 1): proves the token and reads the burst headroom."""
        response = self.client.send(
            "owners", "crm.owners.owners_api", "get_page", idempotent=True, limit=1
        )
        require_dict(response, "owners")
        remaining = response.headers.get("x-hubspot-ratelimit-remaining", "?")
        auth = "OAuth app" if self.settings.oauth else "private app"
        return f"portal at {self.settings.host} via {auth} (burst remaining {remaining})"

    def changes(self, obj: str, since: datetime | None) -> Iterator[Record]:
        """Search windows on the last-modified property, plus a throttled archived poll."""
        self.object_spec(obj)
        return _associated.attach_associations(
            obj, self.reader.changes(obj, since), self.related, self._associations
        )

    def fetch(self, obj: str, ids: Iterable[str]) -> Iterator[Record]:
        """Batch reads of at most 100 ids."""
        self.object_spec(obj)
        return _associated.attach_associations(
            obj, self.reader.fetch(obj, ids), self.related, self._associations
        )

    def write(self, obj: str, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """Batch create / update / upsert (by ``match_on``) / archive; results in input order."""
        spec = self.object_spec(obj)
        plain, wanted = _associated.split_association_fields(obj, ops)
        if not wanted:
            return self.writer.write(obj, ops, spec.identity_fields)
        # An update that only moves associations sends no property write.
        sent = [
            i
            for i, op in enumerate(plain)
            if not (i in wanted and isinstance(op, Upsert) and op.id and not op.fields)
        ]
        results = [WriteResult.success(op.key, str(op.id)) for op in ops]
        written = self.writer.write(obj, [plain[i] for i in sent], spec.identity_fields)
        for i, result in zip(sent, written, strict=True):
            results[i] = result
        self._write_associations(obj, results, wanted)
        return results

    def _write_associations(
        self, obj: str, results: list[WriteResult], wanted: dict[int, dict[str, list[str]]]
    ) -> None:
        """Make each written record's associations the wanted sets (:mod:`.associated`)."""
        targets = {str(results[i].id): i for i in wanted if results[i].ok and results[i].id}
        for name, to_obj in _associated.ASSOCIATION_FIELDS[obj].items():
            asked = {rid: wanted[i][name] for rid, i in targets.items() if name in wanted[i]}
            if not asked:
                continue
            # A record this very write created has no associations yet: nothing to read.
            existing = [rid for rid in asked if not results[targets[rid]].created]
            current = self.related(obj, existing, to_obj) if existing else {}
            create, archive = _associated.association_changes(current, asked)
            for method, inputs in (("create_default", create), ("archive", archive)):
                for start in range(0, len(inputs), _associated.ASSOCIATION_WRITE_MAX):
                    chunk = inputs[start : start + _associated.ASSOCIATION_WRITE_MAX]
                    try:
                        self.client.send(
                            "associations",
                            "crm.associations.v4.batch_api",
                            method,
                            obj,
                            to_obj,
                            {"inputs": chunk},
                            idempotent=True,
                        )
                    except RecordRejectedError as exc:
                        ids = {str(item["from"]["id"]) for item in chunk}
                        _associated.failed(
                            results,
                            [targets[rid] for rid in ids],
                            f"{name}: {exc}",
                            exc.code or "ASSOCIATION_REFUSED",
                        )

    def owners(self) -> Iterator[Owner]:
        """Active owners, then archived ones (``active=False``), 500 per page."""
        for archived in (False, True):
            after: str | None = None
            while True:
                kwargs: dict[str, Any] = {"limit": OWNERS_PAGE, "archived": archived}
                if after is not None:
                    kwargs["after"] = after
                page = require_dict(
                    self.client.send(
                        "owners", "crm.owners.owners_api", "get_page", idempotent=True, **kwargs
                    ),
                    "owners",
                )
                for raw in page.get("results") or []:
                    name = " ".join(
                        part for part in (raw.get("firstName"), raw.get("lastName")) if part
                    )
                    yield Owner(
                        id=str(raw["id"]),
                        email=str(raw.get("email") or ""),
                        name=name,
                        active=not bool(raw.get("archived")) and not archived,
                    )
                after = ((page.get("paging") or {}).get("next") or {}).get("after")
                if after is None:
                    break

    def activities(
        self, obj: str, record_ids: Sequence[str], since: datetime | None
    ) -> Iterator[Activity]:
        """Calls, e-mails and meetings associated with ``record_ids``, logged at/after ``since``."""
        self.object_spec(obj)
        return _activities.activities(self, obj, record_ids, since)

    def create_task(
        self,
        obj: str,
        record_id: str,
        *,
        owner_id: str | None,
        subject: str,
        body: str = "",
        due: datetime | None = None,
    ) -> str:
        """A task associated with the record, owned by ``owner_id``; returns its id."""
        return _activities.create_task(
            self, obj, record_id, owner_id=owner_id, subject=subject, body=body, due=due
        )

    def create_tasks(self, obj: str, tasks: Sequence[NewTask]) -> list[str | None]:
        """Batched :meth:`create_task`, 100 per call instead of one call per task."""
        return _activities.create_tasks(self, obj, tasks)

    def change_feed(self, objects: Sequence[str]) -> ChangeFeed:
        """The webhooks journal for ``objects``; ``ConfigError`` naming what is not set up.

        Why the journal: it is pulled, so a daemon behind a firewall needs no public endpoint.
        Its calls are counted in :attr:`calls` (``journal``, ``journal_files``, ``auth``).
        """
        return HubSpotJournalFeed(self.client, self.settings, objects)

    def close(self) -> None:
        """Release the connection pools."""
        self.client.close()
