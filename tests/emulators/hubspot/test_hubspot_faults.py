"""Injected faults surface as the exceptions the real client raises; calls are counted by family."""

from __future__ import annotations

import json

import pytest
import urllib3
from hubspot.crm.contacts import (
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectId,
)
from hubspot.crm.contacts.exceptions import ApiException, ServiceException

from crm_bridge.connectors.hubspot.emulator import RunningHubSpot

READ = BatchReadInputSimplePublicObjectId(
    inputs=[SimplePublicObjectId(id="1")], properties=["email"], properties_with_history=[]
)


def _fault(hs: RunningHubSpot, **fault: object) -> None:
    hs.control("POST", "faults", fault)


def test_500_is_a_service_exception_with_hubspot_body(hubspot: RunningHubSpot) -> None:
    _fault(hubspot, path="/crm/v3/objects/contacts$", status=500)
    api = hubspot.client().crm.contacts.basic_api
    with pytest.raises(ServiceException) as exc:
        api.get_page()
    assert exc.value.status == 500
    assert json.loads(exc.value.body)["category"] == "INTERNAL_ERROR"
    assert api.get_page().results == []  # the fault was used up


def test_custom_status_and_body_pass_through(hubspot: RunningHubSpot) -> None:
    body = {"status": "error", "message": "nope", "category": "MISSING_SCOPES"}
    _fault(hubspot, path="batch/read", status=403, body=body)
    from hubspot.crm.contacts.exceptions import ForbiddenException

    with pytest.raises(ForbiddenException) as exc:
        hubspot.client().crm.contacts.batch_api.read(READ)
    assert json.loads(exc.value.body) == body


def test_injected_429_on_post_is_not_retried(hubspot: RunningHubSpot) -> None:
    _fault(hubspot, path="/search", status=429, headers={"Retry-After": "0"})
    with pytest.raises(ApiException) as exc:
        hubspot.client().crm.contacts.search_api.do_search(
            PublicObjectSearchRequest(filter_groups=[], limit=1, after="0")
        )
    assert exc.value.status == 429
    assert json.loads(exc.value.body)["policyName"] == "TEN_SECONDLY_ROLLING"


def test_503_with_retry_after_on_get_is_retried_transparently(hubspot: RunningHubSpot) -> None:
    _fault(
        hubspot, path="/crm/v3/objects/contacts$", status=503, headers={"Retry-After": "0"}, times=2
    )
    assert hubspot.client().crm.contacts.basic_api.get_page().results == []
    assert hubspot.control("GET", "calls")["objects"] == 3


def test_dropped_connection_on_post_raises_protocol_error(hubspot: RunningHubSpot) -> None:
    _fault(hubspot, path="batch/read", drop=True)
    with pytest.raises(urllib3.exceptions.ProtocolError):
        hubspot.client().crm.contacts.batch_api.read(READ)


def test_dropped_connections_on_get_exhaust_retries(hubspot: RunningHubSpot) -> None:
    _fault(hubspot, path="/crm/v3/objects/contacts$", drop=True, times=10)
    with pytest.raises(urllib3.exceptions.MaxRetryError) as exc:
        hubspot.client().crm.contacts.basic_api.get_page()
    assert isinstance(exc.value.reason, urllib3.exceptions.ProtocolError)


def test_latency_trips_the_client_timeout(hubspot: RunningHubSpot) -> None:
    _fault(hubspot, path="/search", latency=0.5)
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        hubspot.client().crm.contacts.search_api.do_search(
            PublicObjectSearchRequest(filter_groups=[], limit=1, after="0"), _request_timeout=0.1
        )


def test_skip_lets_the_first_calls_through(hubspot: RunningHubSpot) -> None:
    _fault(hubspot, path="/crm/v3/objects/contacts$", status=502, skip=1)
    api = hubspot.client().crm.contacts.basic_api
    api.get_page()
    with pytest.raises(ServiceException):
        api.get_page()


def test_calls_are_counted_by_family(hubspot: RunningHubSpot) -> None:
    client = hubspot.client()
    client.crm.contacts.basic_api.get_page()
    client.crm.contacts.batch_api.read(READ)
    client.crm.contacts.search_api.do_search(
        PublicObjectSearchRequest(filter_groups=[], limit=1, after="0")
    )
    client.crm.properties.core_api.get_all("contacts")
    client.crm.owners.owners_api.get_page()
    counts = hubspot.control("GET", "calls")
    assert counts == {
        "objects": 1,
        "batch": 1,
        "search": 1,
        "properties": 1,
        "owners": 1,
        "total": 5,
    }
