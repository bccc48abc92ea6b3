"""Associations v4 and inline associations, through the real client."""

from __future__ import annotations

import pytest
from hubspot.crm.associations.v4 import (
    AssociationSpec,
    BatchInputPublicAssociationMultiArchive,
    BatchInputPublicAssociationMultiPost,
    BatchInputPublicDefaultAssociationMultiPost,
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicAssociationMultiArchive,
    PublicAssociationMultiPost,
    PublicDefaultAssociationMultiPost,
    PublicFetchAssociationsBatchRequest,
    PublicObjectId,
)
from hubspot.crm.associations.v4.exceptions import ApiException
from hubspot.crm.companies import SimplePublicObjectInputForCreate as CompanyIn
from hubspot.crm.contacts import SimplePublicObjectInputForCreate as ContactIn
from hubspot.crm.deals import SimplePublicObjectInputForCreate as DealIn

from crm_bridge.connectors.hubspot.emulator import RunningHubSpot


def _records(hs: RunningHubSpot) -> tuple[str, str, str]:
    crm = hs.client().crm
    contact = crm.contacts.basic_api.create(ContactIn(properties={"email": "a@x.example"})).id
    company = crm.companies.basic_api.create(CompanyIn(properties={"name": "X"})).id
    deal = crm.deals.basic_api.create(DealIn(properties={"dealname": "D"})).id
    return contact, company, deal


def test_default_association_both_directions(hubspot: RunningHubSpot) -> None:
    contact, company, _ = _records(hubspot)
    v4 = hubspot.client().crm.associations.v4
    result = v4.basic_api.create_default("contacts", contact, "companies", company)
    assert result.results[0].association_spec.association_type_id == 279
    forward = v4.basic_api.get_page("contacts", contact, "companies")
    assert [
        (r.to_object_id, [t.type_id for t in r.association_types]) for r in forward.results
    ] == [(company, [279])]
    back = v4.basic_api.get_page("companies", company, "contacts")
    assert back.results[0].association_types[0].type_id == 280
    assert back.results[0].association_types[0].category == "HUBSPOT_DEFINED"


def test_batch_create_read_archive(hubspot: RunningHubSpot) -> None:
    contact, _, deal = _records(hubspot)
    batch = hubspot.client().crm.associations.v4.batch_api
    created = batch.create(
        "deals",
        "contacts",
        BatchInputPublicAssociationMultiPost(
            inputs=[
                PublicAssociationMultiPost(
                    _from=PublicObjectId(id=deal),
                    to=PublicObjectId(id=contact),
                    types=[
                        AssociationSpec(
                            association_category="HUBSPOT_DEFINED", association_type_id=3
                        )
                    ],
                )
            ]
        ),
    )
    assert created.results[0].from_object_type_id == "0-3"
    read = batch.get_page(
        "contacts",
        "deals",
        BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[PublicFetchAssociationsBatchRequest(id=contact)]
        ),
    )
    assert read.results[0].to[0].to_object_id == deal
    assert read.results[0].to[0].association_types[0].type_id == 4
    batch.archive(
        "deals",
        "contacts",
        BatchInputPublicAssociationMultiArchive(
            inputs=[
                PublicAssociationMultiArchive(
                    _from=PublicObjectId(id=deal), to=[PublicObjectId(id=contact)]
                )
            ]
        ),
    )
    after, status, _ = batch.get_page_with_http_info(
        "contacts",
        "deals",
        BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[PublicFetchAssociationsBatchRequest(id=contact)]
        ),
    )
    assert status == 207 and after.results == []
    assert after.errors[0].sub_category == "crm.associations.NO_ASSOCIATIONS_FOUND"


def test_batch_default_and_labelled_put_and_delete(hubspot: RunningHubSpot) -> None:
    contact, company, _ = _records(hubspot)
    v4 = hubspot.client().crm.associations.v4
    v4.batch_api.create_default(
        "contacts",
        "companies",
        BatchInputPublicDefaultAssociationMultiPost(
            inputs=[
                PublicDefaultAssociationMultiPost(
                    _from=PublicObjectId(id=contact), to=PublicObjectId(id=company)
                )
            ]
        ),
    )
    v4.basic_api.create(
        "contacts",
        contact,
        "companies",
        company,
        [AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=1)],
    )
    types = v4.basic_api.get_page("contacts", contact, "companies").results[0].association_types
    assert sorted(t.type_id for t in types) == [1, 279]
    v4.basic_api.archive("contacts", contact, "companies", company)
    assert v4.basic_api.get_page("contacts", contact, "companies").results == []


def test_inline_associations_on_create_and_read(hubspot: RunningHubSpot) -> None:
    crm = hubspot.client().crm
    company = crm.companies.basic_api.create(CompanyIn(properties={"name": "Y"})).id
    contact = crm.contacts.basic_api.create(
        ContactIn(
            properties={"email": "b@y.example"},
            associations=[
                {
                    "to": {"id": company},
                    "types": [
                        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279},
                        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1},
                    ],
                }
            ],
        )
    ).id
    fetched = crm.contacts.basic_api.get_by_id(contact, associations=["companies"])
    types = {a.type for a in fetched.associations["companies"].results}
    assert types == {"contact_to_company", "contact_to_company_unlabeled"}
    assert {a.id for a in fetched.associations["companies"].results} == {company}


def test_invalid_pair_and_missing_record(hubspot: RunningHubSpot) -> None:
    contact, _, _ = _records(hubspot)
    v4 = hubspot.client().crm.associations.v4
    with pytest.raises(ApiException) as exc:
        v4.basic_api.create_default("contacts", contact, "companies", "99999")
    assert exc.value.status == 404
    with pytest.raises(ApiException) as exc:
        v4.basic_api.get_page("calls", contact, "notes")
    assert exc.value.status == 400
