"""Batch endpoints through the real client: limits, 207 partial results, upsert ``new``."""

from __future__ import annotations

import json

import pytest
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchInputSimplePublicObjectId,
    BatchReadInputSimplePublicObjectId,
    SimplePublicObjectBatchInput,
    SimplePublicObjectBatchInputForCreate,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectId,
)
from hubspot.crm.contacts.exceptions import ApiException

from crm_bridge.connectors.hubspot.emulator import RunningHubSpot


def _inputs(n: int, start: int = 0) -> BatchInputSimplePublicObjectBatchInputForCreate:
    return BatchInputSimplePublicObjectBatchInputForCreate(
        inputs=[
            SimplePublicObjectBatchInputForCreate(properties={"email": f"b{i}@example.com"})
            for i in range(start, start + n)
        ]
    )


def test_batch_create_100_is_ok_and_101_is_rejected(hubspot: RunningHubSpot) -> None:
    batch = hubspot.client().crm.contacts.batch_api
    result = batch.create(_inputs(100))
    assert result.status == "COMPLETE"
    assert len(result.results) == 100
    with pytest.raises(ApiException) as exc:
        batch.create(_inputs(101, start=200))
    assert exc.value.status == 400
    body = json.loads(exc.value.body)
    assert body["category"] == "VALIDATION_ERROR"
    assert "101" in body["message"]
    assert hubspot.client().crm.contacts.basic_api.get_page(limit=1).paging is not None
    assert len(hubspot.emulator.portal.store("contacts").live) == 100


def test_batch_create_is_all_or_nothing_without_trace_ids(hubspot: RunningHubSpot) -> None:
    batch = hubspot.client().crm.contacts.batch_api
    bad = BatchInputSimplePublicObjectBatchInputForCreate(
        inputs=[
            SimplePublicObjectBatchInputForCreate(properties={"email": "ok@example.com"}),
            SimplePublicObjectBatchInputForCreate(properties={"lifecyclestage": "bogus"}),
        ]
    )
    with pytest.raises(ApiException) as exc:
        batch.create(bad)
    assert exc.value.status == 400
    assert not hubspot.emulator.portal.store("contacts").live


def test_batch_create_with_trace_ids_reports_per_input(hubspot: RunningHubSpot) -> None:
    batch = hubspot.client().crm.contacts.batch_api
    traced = BatchInputSimplePublicObjectBatchInputForCreate(
        inputs=[
            SimplePublicObjectBatchInputForCreate(
                properties={"email": "ok@example.com"}, object_write_trace_id="t1"
            ),
            SimplePublicObjectBatchInputForCreate(
                properties={"lifecyclestage": "bogus"}, object_write_trace_id="t2"
            ),
        ]
    )
    result = batch.create(traced)
    assert result.num_errors == 1
    assert len(result.results) == 1
    assert result.errors[0].context["objectWriteTraceId"] == ["t2"]


def test_batch_read_reports_missing_ids_as_207(hubspot: RunningHubSpot) -> None:
    batch = hubspot.client().crm.contacts.batch_api
    created = batch.create(_inputs(2))
    ids = [r.id for r in created.results]
    ok = batch.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=i) for i in ids],
            properties=["email"],
            properties_with_history=[],
        )
    )
    assert sorted(r.id for r in ok.results) == sorted(ids)
    assert getattr(ok, "num_errors", None) is None
    partial, status, _ = batch.read_with_http_info(
        BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=ids[0]), SimplePublicObjectId(id="999999")],
            properties=["email"],
            properties_with_history=[],
        )
    )
    assert status == 207
    assert partial.num_errors == 1
    assert partial.errors[0].category == "OBJECT_NOT_FOUND"
    assert partial.errors[0].context == {"ids": ["999999"]}


def test_batch_read_by_email(hubspot: RunningHubSpot) -> None:
    batch = hubspot.client().crm.contacts.batch_api
    batch.create(_inputs(3))
    result = batch.read(
        BatchReadInputSimplePublicObjectId(
            id_property="email",
            properties=["email"],
            properties_with_history=[],
            inputs=[SimplePublicObjectId(id="b1@example.com")],
        )
    )
    assert [r.properties["email"] for r in result.results] == ["b1@example.com"]


def test_batch_update_and_missing_ids(hubspot: RunningHubSpot) -> None:
    batch = hubspot.client().crm.contacts.batch_api
    ids = [r.id for r in batch.create(_inputs(2)).results]
    result, status, _ = batch.update_with_http_info(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[
                SimplePublicObjectBatchInput(id=ids[0], properties={"firstname": "Zed"}),
                SimplePublicObjectBatchInput(id="424242", properties={"firstname": "Nope"}),
            ]
        )
    )
    assert status == 207
    assert [r.properties["firstname"] for r in result.results] == ["Zed"]
    assert result.errors[0].context["ids"] == ["424242"]


def test_batch_update_rejects_duplicate_ids(hubspot: RunningHubSpot) -> None:
    batch = hubspot.client().crm.contacts.batch_api
    (cid,) = [r.id for r in batch.create(_inputs(1)).results]
    with pytest.raises(ApiException) as exc:
        batch.update(
            BatchInputSimplePublicObjectBatchInput(
                inputs=[
                    SimplePublicObjectBatchInput(id=cid, properties={"firstname": "A"}),
                    SimplePublicObjectBatchInput(id=cid, properties={"firstname": "B"}),
                ]
            )
        )
    assert exc.value.status == 400
    assert "Duplicate IDs" in json.loads(exc.value.body)["message"]


def test_batch_upsert_by_email_marks_new(hubspot: RunningHubSpot) -> None:
    batch = hubspot.client().crm.contacts.batch_api
    batch.create(_inputs(1))
    result = batch.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                SimplePublicObjectBatchInputUpsert(
                    id="b0@example.com", id_property="email", properties={"firstname": "Old"}
                ),
                SimplePublicObjectBatchInputUpsert(
                    id="fresh@example.com", id_property="email", properties={"firstname": "New"}
                ),
            ]
        )
    )
    by_email = {r.properties["email"]: r for r in result.results}
    assert by_email["b0@example.com"].new is False
    assert by_email["fresh@example.com"].new is True
    assert by_email["fresh@example.com"].properties["firstname"] == "New"


def test_batch_archive(hubspot: RunningHubSpot) -> None:
    batch = hubspot.client().crm.contacts.batch_api
    ids = [r.id for r in batch.create(_inputs(3)).results]
    _, status, _ = batch.archive_with_http_info(
        BatchInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=ids[0]), SimplePublicObjectId(id="31337")]
        )
    )
    assert status == 204
    remaining = hubspot.client().crm.contacts.basic_api.get_page()
    assert [r.id for r in remaining.results] == ids[1:]
