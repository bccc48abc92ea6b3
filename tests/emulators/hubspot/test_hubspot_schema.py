"""Properties, pipelines and owners through the real client."""

from __future__ import annotations

import json

import pytest
from hubspot.crm.contacts import SimplePublicObjectInputForCreate
from hubspot.crm.contacts.exceptions import ApiException as ContactError
from hubspot.crm.owners.exceptions import NotFoundException as OwnerNotFound
from hubspot.crm.properties import (
    BatchInputPropertyCreate,
    OptionInput,
    PropertyCreate,
    PropertyUpdate,
)
from hubspot.crm.properties.exceptions import ApiException

from crm_bridge.connectors.hubspot.emulator import RunningHubSpot

REASON = PropertyCreate(
    name="crm_bridge_loss_reason",
    label="Loss reason",
    type="enumeration",
    field_type="select",
    group_name="dealinformation",
    options=[
        OptionInput(label="Price", value="price", display_order=0, hidden=False),
        OptionInput(label="Competitor", value="competitor", display_order=1, hidden=False),
    ],
)


def test_default_definitions(hubspot: RunningHubSpot) -> None:
    core = hubspot.client().crm.properties.core_api
    stage = core.get_by_name("contacts", "lifecyclestage")
    assert [o.value for o in stage.options][:3] == ["subscriber", "lead", "marketingqualifiedlead"]
    status = core.get_by_name("contacts", "hs_lead_status")
    assert {o.value for o in status.options} == {
        "NEW",
        "OPEN",
        "IN_PROGRESS",
        "OPEN_DEAL",
        "UNQUALIFIED",
        "ATTEMPTED_TO_CONTACT",
        "CONNECTED",
        "BAD_TIMING",
    }
    deal_names = {p.name for p in core.get_all("deals").results}
    assert {
        "dealstage",
        "pipeline",
        "amount",
        "closedate",
        "closed_lost_reason",
        "closed_won_reason",
    } <= deal_names
    assert core.get_by_name("deals", "dealstage").modification_metadata.read_only_definition


def test_create_property_then_409_and_values_enforced(hubspot: RunningHubSpot) -> None:
    core = hubspot.client().crm.properties.core_api
    created = core.create("deals", REASON)
    assert created.name == "crm_bridge_loss_reason" and created.hubspot_defined is False
    with pytest.raises(ApiException) as exc:
        core.create("deals", REASON)
    assert exc.value.status == 409
    assert json.loads(exc.value.body)["category"] == "OBJECT_ALREADY_EXISTS"
    from hubspot.crm.deals import SimplePublicObjectInputForCreate as DealIn
    from hubspot.crm.deals.exceptions import ApiException as DealError

    deals = hubspot.client().crm.deals.basic_api
    deals.create(DealIn(properties={"dealname": "a", "crm_bridge_loss_reason": "price"}))
    with pytest.raises(DealError) as bad:
        deals.create(DealIn(properties={"dealname": "b", "crm_bridge_loss_reason": "budget"}))
    assert json.loads(bad.value.body)["errors"][0]["code"] == "INVALID_OPTION"


def test_patch_options_then_archive(hubspot: RunningHubSpot) -> None:
    core = hubspot.client().crm.properties.core_api
    core.create(
        "contacts",
        PropertyCreate(
            name="tier",
            label="Tier",
            type="enumeration",
            field_type="radio",
            group_name="contactinformation",
            options=[OptionInput(label="A", value="a", display_order=0, hidden=False)],
        ),
    )
    updated = core.update(
        "contacts",
        "tier",
        PropertyUpdate(
            label="Tier!",
            options=[
                OptionInput(label="A", value="a", display_order=0, hidden=False),
                OptionInput(label="B", value="b", display_order=1, hidden=False),
            ],
        ),
    )
    assert [o.value for o in updated.options] == ["a", "b"]
    contacts = hubspot.client().crm.contacts.basic_api
    contacts.create(SimplePublicObjectInputForCreate(properties={"tier": "b"}))
    core.archive("contacts", "tier")
    with pytest.raises(ContactError) as exc:
        contacts.create(SimplePublicObjectInputForCreate(properties={"tier": "a"}))
    assert json.loads(exc.value.body)["errors"][0]["code"] == "PROPERTY_DOESNT_EXIST"
    with pytest.raises(ApiException) as exc2:
        core.archive("contacts", "email")
    assert exc2.value.status == 400


def test_batch_create_properties_reports_existing(hubspot: RunningHubSpot) -> None:
    batch = hubspot.client().crm.properties.batch_api
    first = batch.create("deals", BatchInputPropertyCreate(inputs=[REASON]))
    assert first.status == "COMPLETE" and len(first.results) == 1
    again, status, _ = batch.create_with_http_info(
        "deals",
        BatchInputPropertyCreate(
            inputs=[
                REASON,
                PropertyCreate(
                    name="other_reason",
                    label="O",
                    type="string",
                    field_type="text",
                    group_name="dealinformation",
                ),
            ]
        ),
    )
    assert status == 207
    assert [p.name for p in again.results] == ["other_reason"]


def test_invalid_property_name_is_400(hubspot: RunningHubSpot) -> None:
    with pytest.raises(ApiException) as exc:
        hubspot.client().crm.properties.core_api.create(
            "contacts",
            PropertyCreate(
                name="Bad Name",
                label="x",
                type="string",
                field_type="text",
                group_name="contactinformation",
            ),
        )
    assert exc.value.status == 400


def test_default_pipeline_and_string_metadata(hubspot: RunningHubSpot) -> None:
    pipelines = hubspot.client().crm.pipelines
    (pipeline,) = pipelines.pipelines_api.get_all("deals").results
    assert (pipeline.id, pipeline.label) == ("default", "Sales Pipeline")
    stages = {s.id: s.metadata for s in pipeline.stages}
    assert stages["closedwon"] == {"isClosed": "true", "probability": "1.0"}
    assert stages["appointmentscheduled"]["probability"] == "0.2"
    listed = pipelines.pipeline_stages_api.get_all("deals", "default").results
    assert [s.id for s in listed] == list(stages)
    one = pipelines.pipeline_stages_api.get_by_id("deals", "default", "closedlost")
    assert one.metadata["isClosed"] == "true"
    from hubspot.crm.pipelines.exceptions import NotFoundException

    with pytest.raises(NotFoundException):
        pipelines.pipelines_api.get_by_id("deals", "nope")


def test_owners_paging_email_filter_and_lookup(hubspot: RunningHubSpot) -> None:
    owners = hubspot.client().crm.owners.owners_api
    page = owners.get_page(limit=4)
    assert len(page.results) == 4 and page.paging.next.after
    rest = owners.get_page(limit=4, after=page.paging.next.after)
    assert rest.paging is None and len(rest.results) == 2
    (rick,) = owners.get_page(email="rick.rep@example.com").results
    assert (rick.first_name, rick.last_name) == ("Rick", "Alvarez")
    assert owners.get_by_id(int(rick.id)).email == "rick.rep@example.com"
    assert owners.get_by_id(rick.user_id, id_property="userId").id == rick.id
    with pytest.raises(OwnerNotFound):
        owners.get_by_id(1)


def test_owner_ids_are_the_options_of_hubspot_owner_id(hubspot: RunningHubSpot) -> None:
    contacts = hubspot.client().crm.contacts.basic_api
    rick = hubspot.client().crm.owners.owners_api.get_page(email="rick.rep@example.com").results[0]
    contacts.create(SimplePublicObjectInputForCreate(properties={"hubspot_owner_id": rick.id}))
    with pytest.raises(ContactError) as exc:
        contacts.create(SimplePublicObjectInputForCreate(properties={"hubspot_owner_id": "42"}))
    assert json.loads(exc.value.body)["errors"][0]["code"] == "INVALID_OPTION"
