"""The one endpoint classifier, shared by the connector's call counter and the emulator's."""

from __future__ import annotations

import pytest

from crm_bridge.connectors.salesforce import auth, endpoints
from crm_bridge.connectors.salesforce.emulator import app
from crm_bridge.connectors.salesforce.endpoints import endpoint_family

V = "/services/data/v59.0"


@pytest.mark.parametrize(
    ("method", "path", "family"),
    [
        ("POST", "/services/oauth2/token", "auth"),
        ("GET", f"{V}/query", "query"),
        ("GET", f"{V}/queryAll/01gxx-200", "query"),
        ("POST", f"{V}/composite", "composite"),
        ("POST", f"{V}/composite/sobjects", "collections"),
        ("PATCH", f"{V}/composite/sobjects/Lead/Email", "collections"),
        ("POST", f"{V}/jobs/ingest", "bulk2"),
        ("GET", f"{V}/tooling/query", "tooling"),
        ("GET", f"{V}/limits", "limits"),
        ("GET", f"{V}/sobjects", "describe"),
        ("GET", f"{V}/sobjects/Lead", "describe"),
        ("GET", f"{V}/sobjects/Lead/describe/", "describe"),
        ("POST", f"{V}/sobjects/Lead", "sobject"),
        ("GET", f"{V}/sobjects/Lead/00Q000000000001", "sobject"),
        ("GET", f"{V}/sobjects/Lead/updated", "changes"),
        ("GET", f"{V}/sobjects/Lead/deleted", "changes"),
        ("GET", f"{V}/recent", "other"),
        ("GET", V, None),
        ("GET", "/services/data", None),
        ("GET", "/id/00D000000000001AAA/005000000000001AAA", None),
    ],
)
def test_endpoint_family(method: str, path: str, family: str | None) -> None:
    assert endpoint_family(method, path) == family


def test_connector_and_emulator_share_the_classifier() -> None:
    assert vars(auth)["endpoint_family"] is endpoints.endpoint_family
    assert vars(app)["endpoint_family"] is endpoints.endpoint_family
    assert not hasattr(app, "classify")  # no second copy in the emulator


def test_connector_books_uncounted_paths_under_other() -> None:
    assert auth._family("GET", V) == "other"
    assert auth._family("GET", f"{V}/query") == "query"
