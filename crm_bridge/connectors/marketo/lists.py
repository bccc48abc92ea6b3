"""Static lists: the reason segments and the nurture list crm-bridge keeps in Marketo.

Why two APIs: membership is a lead-database call (``lists/{id}/leads.json``, 300 ids per call,
per-id ``added`` / ``removed`` / skipped 1004 "lead not found" or 1015 "not in list"), but
*creating* a list is an Asset API call (``POST /rest/asset/v1/staticLists.json`` into a folder
or program); lists are found again by exact name through ``lists.json?name=`` so
:meth:`ensure_list` is idempotent and costs one call once the list exists.

Docs: https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/lead-database/list-membership,
.../assets/static-lists
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

from crm_bridge.connectors.marketo.client import MarketoClient
from crm_bridge.connectors.marketo.settings import MarketoSettings
from crm_bridge.errors import ConfigError, ConfigProblem, CrmBridgeError

__all__ = ["Lists"]

_BATCH = 300


class Lists:
    """Static-list operations for the connector."""

    def __init__(self, client: MarketoClient, settings: MarketoSettings) -> None:
        self.client = client
        self.settings = settings

    def find(self, name: str) -> str | None:
        """The id of the static list called exactly ``name``, if there is one."""
        body = self.client.send(
            "GET", "/rest/v1/lists.json", params={"name": name}, idempotent=True
        )
        for item in body.get("result") or []:
            if isinstance(item, dict) and item.get("name") == name:
                return str(item["id"])
        return None

    def ensure(self, name: str) -> str:
        """Find the list by name, or create it in ``list_folder_id``."""
        found = self.find(name)
        if found is not None:
            return found
        folder = self.settings.list_folder_id
        if folder is None:
            raise ConfigError(
                [
                    ConfigProblem(
                        key="list_folder_id",
                        problem=f"static list {name!r} does not exist and no folder is set",
                        fix="set list_folder_id to the folder (or program) that holds the lists",
                    )
                ]
            )
        body = self.client.send(
            "POST",
            "/rest/asset/v1/staticLists.json",
            form={
                "name": name,
                "folder": json.dumps({"id": folder, "type": self.settings.list_folder_type}),
                "description": "Kept by crm-bridge",
            },
            # Not blindly repeatable, and a repeat after all would answer "exists" (709).
            idempotent=False,
        )
        result = body.get("result") or []
        if not result or not isinstance(result[0], dict) or "id" not in result[0]:
            raise CrmBridgeError(f"Marketo created static list {name!r} but answered no id")
        return str(result[0]["id"])

    def change(self, list_id: str, ids: Sequence[str], *, add: bool) -> None:
        """Add or remove members, 300 per call; unknown leads and non-members are no error."""
        leads = [int(i) for i in dict.fromkeys(ids) if str(i).isdigit()]
        for start in range(0, len(leads), _BATCH):
            chunk = leads[start : start + _BATCH]
            self.client.send(
                "POST" if add else "DELETE",
                f"/rest/v1/lists/{int(list_id)}/leads.json",
                json={"input": [{"id": lead} for lead in chunk]},
                idempotent=True,
            )

    def members(self, list_id: str) -> Iterator[str]:
        """Member ids, page by page."""
        token: str | None = None
        while True:
            params: dict[str, str | int | Sequence[str]] = {
                "fields": ["id"],
                "batchSize": self.settings.page_size,
            }
            if token:
                params["nextPageToken"] = token
            body = self.client.send(
                "GET", f"/rest/v1/lists/{int(list_id)}/leads.json", params=params, idempotent=True
            )
            for item in body.get("result") or []:
                if isinstance(item, dict) and item.get("id") is not None:
                    yield str(item["id"])
            token = body.get("nextPageToken")
            if not token:
                return
