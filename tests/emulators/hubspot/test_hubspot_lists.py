"""Lists v3 through the real client: MANUAL lists and the ``recordsIdsAdded`` (sic) response."""

from __future__ import annotations

import pytest
from hubspot.crm.contacts import SimplePublicObjectInputForCreate
from hubspot.crm.lists import ListCreateRequest, ListSearchRequest, MembershipChangeRequest
from hubspot.crm.lists.exceptions import ApiException, NotFoundException

from crm_bridge.connectors.hubspot.emulator import RunningHubSpot


def _contacts(hs: RunningHubSpot, n: int) -> list[str]:
    api = hs.client().crm.contacts.basic_api
    return [
        api.create(SimplePublicObjectInputForCreate(properties={"email": f"l{i}@x.example"})).id
        for i in range(n)
    ]


def _manual(hs: RunningHubSpot, name: str = "SLA breach") -> str:
    created = hs.client().crm.lists.lists_api.create(
        ListCreateRequest(name=name, object_type_id="0-1", processing_type="MANUAL")
    )
    return str(created.list.list_id)


def test_create_get_and_lookup_by_name(hubspot: RunningHubSpot) -> None:
    lists = hubspot.client().crm.lists.lists_api
    list_id = _manual(hubspot)
    fetched = lists.get_by_id(list_id).list
    assert (fetched.name, fetched.processing_type, fetched.object_type_id) == (
        "SLA breach",
        "MANUAL",
        "0-1",
    )
    assert lists.get_by_name("SLA breach", "0-1").list.list_id == list_id
    with pytest.raises(NotFoundException):
        lists.get_by_name("nope", "0-1")
    with pytest.raises(ApiException) as exc:
        _manual(hubspot)
    assert exc.value.status == 400


def test_memberships_add_remove_and_missing(hubspot: RunningHubSpot) -> None:
    ids = _contacts(hubspot, 3)
    list_id = _manual(hubspot)
    members = hubspot.client().crm.lists.memberships_api
    added = members.add(list_id, [ids[0], ids[1], "777777"])
    assert added.records_ids_added == [ids[0], ids[1]]
    assert added.record_ids_missing == ["777777"]
    again = members.add(list_id, [ids[0]])
    assert again.records_ids_added == []  # already a member: ignored
    removed = members.remove(list_id, [ids[1]])
    assert removed.record_ids_removed == [ids[1]]
    both = members.add_and_remove(
        list_id, MembershipChangeRequest(record_ids_to_add=[ids[2]], record_ids_to_remove=[ids[0]])
    )
    assert (both.records_ids_added, both.record_ids_removed) == ([ids[2]], [ids[0]])
    page = members.get_page(list_id)
    assert [m.record_id for m in page.results] == [ids[2]]
    assert page.results[0].membership_timestamp is not None
    of_record = members.get_lists("0-1", ids[2])
    assert [m.list_id for m in of_record.results] == [list_id]


def test_membership_wire_keys_are_spelled_like_hubspot(hubspot: RunningHubSpot) -> None:
    """``add`` and ``remove`` each answer all three arrays of ``MembershipsUpdateResponse``."""
    import httpx

    ids = _contacts(hubspot, 1)
    list_id = _manual(hubspot)
    auth = {"Authorization": f"Bearer {hubspot.access_token}"}
    url = f"{hubspot.base_url}/crm/v3/lists/{list_id}/memberships"
    added = httpx.put(f"{url}/add", json=[*ids, "777777"], headers=auth)
    assert added.json() == {
        "recordsIdsAdded": ids,
        "recordIdsRemoved": [],
        "recordIdsMissing": ["777777"],
    }
    removed = httpx.put(f"{url}/remove", json=ids, headers=auth)
    assert removed.json() == {
        "recordsIdsAdded": [],
        "recordIdsRemoved": ids,
        "recordIdsMissing": [],
    }


def test_memberships_answers_pass_the_clients_required_field_checks(
    hubspot: RunningHubSpot,
) -> None:
    """With client-side validation on, the client refuses an answer missing a required array."""
    ids = _contacts(hubspot, 1)
    list_id = _manual(hubspot)
    members = hubspot.client(client_side_validation=True).crm.lists.memberships_api
    added = members.add(list_id, ids)
    assert (added.records_ids_added, added.record_ids_removed) == (ids, [])
    removed = members.remove(list_id, ids)
    assert (removed.records_ids_added, removed.record_ids_removed) == ([], ids)


def test_membership_paging(hubspot: RunningHubSpot) -> None:
    ids = _contacts(hubspot, 5)
    list_id = _manual(hubspot)
    members = hubspot.client().crm.lists.memberships_api
    members.add(list_id, ids)
    first = members.get_page(list_id, limit=3)
    rest = members.get_page(list_id, limit=3, after=first.paging.next.after)
    assert [m.record_id for m in first.results + rest.results] == ids
    assert rest.paging is None


def test_dynamic_lists_reject_manual_changes(hubspot: RunningHubSpot) -> None:
    ids = _contacts(hubspot, 1)
    created = hubspot.client().crm.lists.lists_api.create(
        ListCreateRequest(
            name="Dyn",
            object_type_id="0-1",
            processing_type="DYNAMIC",
            filter_branch={"filterBranchType": "OR", "filterBranches": [], "filters": []},
        )
    )
    with pytest.raises(ApiException) as exc:
        hubspot.client().crm.lists.memberships_api.add(str(created.list.list_id), ids)
    assert exc.value.status == 400


def test_search_rename_delete(hubspot: RunningHubSpot) -> None:
    lists = hubspot.client().crm.lists.lists_api
    list_id = _manual(hubspot, "Routing queue A")
    _manual(hubspot, "Other")
    found = lists.do_search(ListSearchRequest(query="routing", processing_types=["MANUAL"]))
    assert [x.list_id for x in found.lists] == [list_id] and found.total == 1
    renamed = lists.update_name(list_id, list_name="Routing queue B")
    assert renamed.updated_list.name == "Routing queue B"
    lists.remove(list_id)
    with pytest.raises(NotFoundException):
        lists.get_by_id(list_id)
