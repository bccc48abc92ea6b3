"""The Asset API static-list calls: create into a folder, find by name, refuse a duplicate."""

from __future__ import annotations

import json

from crm_bridge.connectors.marketo.emulator import RunningMarketo

from .conftest import Api


def test_a_static_list_is_created_found_by_name_and_not_duplicated(
    api: Api, marketo: RunningMarketo
) -> None:
    folder = json.dumps({"id": 12, "type": "Folder"})
    created = api.raw(
        "POST", "/rest/asset/v1/staticLists.json", data={"name": "Nurture", "folder": folder}
    ).json()
    assert created["success"] is True
    (item,) = created["result"]
    assert item["name"] == "Nurture" and item["folder"] == {"id": 12, "type": "Folder"}
    assert item["createdAt"].endswith("Z+0000")
    # the lead-database API sees it too: membership works on the new id
    assert api.get("/rest/v1/lists.json", name="Nurture")["result"][0]["id"] == item["id"]
    found = api.get("/rest/asset/v1/staticList/byName.json", name="Nurture")
    assert found["result"][0]["id"] == item["id"]
    missing = api.get("/rest/asset/v1/staticList/byName.json", name="Nope")
    assert missing["success"] is True and not missing.get("result")
    again = api.raw(
        "POST", "/rest/asset/v1/staticLists.json", data={"name": "Nurture", "folder": folder}
    ).json()
    assert again["success"] is False and again["errors"][0]["code"] == "709"
    no_folder = api.raw("POST", "/rest/asset/v1/staticLists.json", data={"name": "X"}).json()
    assert no_folder["errors"][0]["code"] == "1002"
