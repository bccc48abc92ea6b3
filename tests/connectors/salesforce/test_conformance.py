"""The conformance kit against the real Salesforce connector and the emulator over TLS.

The backend driver acts as a sales rep: a second User in the emulated org, logged in with the
real simple-salesforce client, so their edits carry their ``LastModifiedById`` and not the
integration user's.  Merges go through the emulator's control plane (Salesforce has no REST
merge resource); time moves on the emulator's clock; faults are the emulator's fault plane.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import pytest

from crm_bridge.connectors.salesforce import SalesforceConnector
from crm_bridge.connectors.salesforce.emulator import RunningSalesforce
from crm_bridge.emulators.runtime import Fault
from crm_bridge.testing import BackendDriver, ConnectorContract

from .conftest import MakeConnector

REP = "kit.rep@crm-bridge.example"
DATA_API = r"^/services/data/"


class SalesforceDriver(BackendDriver):
    """A sales rep working in the emulated org, plus the emulator's clock and fault plane."""

    def __init__(self, salesforce: RunningSalesforce) -> None:
        self.salesforce = salesforce
        emulator = salesforce.emulator
        with emulator.org.lock:
            if emulator.org.user_by_username(REP) is None:
                emulator.org.add_user(REP, "Kit", "Rep", email=REP)
        self.rep = salesforce.simple_salesforce(username=REP)

    def create(self, obj: str, fields: Mapping[str, Any]) -> str:
        return str(getattr(self.rep, obj).create(dict(fields))["id"])

    def create_many(self, obj: str, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        ids: list[str] = []
        for start in range(0, len(rows), 200):  # sObject Collections: 200 records per request
            records = [{"attributes": {"type": obj}, **row} for row in rows[start : start + 200]]
            answer = self.rep.restful(
                "composite/sobjects", method="POST", json={"allOrNone": True, "records": records}
            )
            assert all(item["success"] for item in answer), answer
            ids.extend(str(item["id"]) for item in answer)
        return ids

    def edit(self, obj: str, record_id: str, fields: Mapping[str, Any]) -> None:
        getattr(self.rep, obj).update(record_id, dict(fields))

    def delete(self, obj: str, record_id: str) -> None:
        getattr(self.rep, obj).delete(record_id)

    def merge(self, obj: str, winner: str, loser: str) -> None:
        self.salesforce.emulator.merge(obj, winner, [loser], as_user=REP)

    def advance(self, seconds: float) -> None:
        self.salesforce.emulator.clock.advance(seconds)

    def inject_rate_limit(self) -> None:
        self.salesforce.emulator.faults.add(
            Fault(
                path=DATA_API,
                status=429,
                headers={"Retry-After": "1"},
                body=[
                    {"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "ConcurrentPerOrgLongTxn"}
                ],
                times=None,
            )
        )

    def inject_auth_failure(self) -> None:
        # Every data call answers 401 INVALID_SESSION_ID, also after the connector's one refresh.
        self.salesforce.emulator.faults.add(Fault(path=DATA_API, status=401, times=None))


class TestSalesforceConformance(ConnectorContract):
    connector_class = SalesforceConnector
    entry_point = "salesforce"
    object_name = "Lead"
    page_size = 200  # the smallest batch Salesforce allows for queries
    unknown_id = "00Q5g00000ZZZZZZZZ"
    since_granularity = timedelta(seconds=1)  # SOQL datetime literals are whole seconds
    relation = ("Opportunity", "Contact")

    @pytest.fixture
    def connector(self, make_connector: MakeConnector) -> SalesforceConnector:
        # Collections only (no Bulk), 25 per batch: max_batch stays small enough to write in full.
        return make_connector(query_batch_size=200, bulk_threshold=0, write_batch=25)

    @pytest.fixture
    def driver(self, salesforce: RunningSalesforce) -> SalesforceDriver:
        return SalesforceDriver(salesforce)

    def sample_record(self, n: int) -> dict[str, Any]:
        return {"LastName": f"Kit{n}", "Company": "Acme", "Email": f"kit{n}@example.com"}

    def edited_fields(self, n: int) -> dict[str, Any]:
        return {"Title": f"Edited {n}"}

    def invalid_record(self, n: int) -> dict[str, Any]:
        return {**self.sample_record(n), "Status": "Not A Status"}


class PersonDriver(SalesforceDriver):
    """The rep works on Leads; the connector serves them as people (Leads and Contacts)."""

    def create(self, obj: str, fields: Mapping[str, Any]) -> str:
        return super().create(_sobject(obj), fields)

    def create_many(self, obj: str, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        return super().create_many(_sobject(obj), rows)

    def edit(self, obj: str, record_id: str, fields: Mapping[str, Any]) -> None:
        super().edit(_sobject(obj), record_id, fields)

    def delete(self, obj: str, record_id: str) -> None:
        super().delete(_sobject(obj), record_id)

    def merge(self, obj: str, winner: str, loser: str) -> None:
        super().merge(_sobject(obj), winner, loser)


def _sobject(obj: str) -> str:
    return "Lead" if obj == "Person" else obj


class TestSalesforcePersonConformance(TestSalesforceConformance):
    """The same contract on the Person object (two change streams merged, writes split by kind)."""

    object_name = "Person"

    @pytest.fixture
    def driver(self, salesforce: RunningSalesforce) -> SalesforceDriver:
        return PersonDriver(salesforce)
