"""The conformance kit against the real Marketo connector and the emulator over HTTP.

The backend driver acts as a marketer: leads created through the control plane (logged "New
Lead" with a non-API source), edits as UI edits ("Changed by user"), deletions and merges
straight on the instance (as the Marketo UI would).  Time moves on the emulator's clock and the
connector's ``LinkedClock`` together; faults are the emulator's fault plane, answered in the
vendor's HTTP-200 envelope.  Marketo stamps no last writer on a lead, so ``reports_modified_by``
is off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from crm_bridge.connectors.marketo import MarketoConnector
from crm_bridge.connectors.marketo.emulator import RunningMarketo
from crm_bridge.emulators.runtime import Fault
from crm_bridge.testing import BackendDriver, ConnectorContract
from tests.connectors.marketo.conftest import LinkedClock, MakeConnector

REST = r"^/rest/"
PAGE = 5


class MarketoDriver(BackendDriver):
    """A marketer working in the emulated instance, plus its clock and fault plane."""

    def __init__(self, marketo: RunningMarketo, connector_clock: LinkedClock) -> None:
        self.marketo = marketo
        self.connector_clock = connector_clock

    def create(self, obj: str, fields: Mapping[str, Any]) -> str:
        return self.create_many(obj, [fields])[0]

    def create_many(self, obj: str, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        return [str(i) for i in self.marketo.emulator.add_leads([dict(r) for r in rows])]

    def edit(self, obj: str, record_id: str, fields: Mapping[str, Any]) -> None:
        self.marketo.control("POST", f"leads/{record_id}/edit", {"changes": dict(fields)})

    def delete(self, obj: str, record_id: str) -> None:
        inst = self.marketo.emulator.instance
        with inst.lock:
            inst.delete_lead(inst.leads[int(record_id)])

    def merge(self, obj: str, winner: str, loser: str) -> None:
        inst = self.marketo.emulator.instance
        with inst.lock:
            inst.merge(inst.leads[int(winner)], [inst.leads[int(loser)]])

    def advance(self, seconds: float) -> None:
        self.marketo.emulator.clock.advance(seconds)
        self.connector_clock.advance(seconds)

    def inject_rate_limit(self) -> None:
        self.marketo.emulator.faults.add(
            Fault(path=REST, status=200, body={"marketo_error": "606"}, times=None)
        )

    def inject_auth_failure(self) -> None:
        self.marketo.emulator.faults.add(
            Fault(path=REST, status=200, body={"marketo_error": "601"}, times=None)
        )


class TestMarketoConformance(ConnectorContract):
    connector_class = MarketoConnector
    entry_point = "marketo"
    object_name = "leads"
    page_size = PAGE
    unknown_id = "999999"
    reports_modified_by = False

    @pytest.fixture
    def clock(self, marketo: RunningMarketo) -> LinkedClock:
        return LinkedClock(marketo.emulator.clock)

    @pytest.fixture
    def connector(self, make_connector: MakeConnector, clock: LinkedClock) -> MarketoConnector:
        return make_connector(clock=clock, page_size=PAGE)

    @pytest.fixture
    def driver(self, marketo: RunningMarketo, clock: LinkedClock) -> MarketoDriver:
        return MarketoDriver(marketo, clock)

    def sample_record(self, n: int) -> dict[str, Any]:
        return {"email": f"kit{n}@example.com", "firstName": f"Kit{n}"}

    def edited_fields(self, n: int) -> dict[str, Any]:
        return {"firstName": f"Edited{n}"}

    def invalid_record(self, n: int) -> dict[str, Any]:
        return {**self.sample_record(n), "leadScore": "not-a-number"}
