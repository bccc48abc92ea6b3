"""Fixtures: a MarketoConnector talking to the real Marketo emulator over the socket.

The connector gets a :class:`LinkedClock`: a FakeClock (nothing really sleeps) whose sleeps also
move the emulator's clock, so a 606 back-off the connector "sleeps" really lets the instance's
20-second window pass on the server side.  Every connector gets its own :class:`InstanceBudget`
so one test's calls never pace another's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from crm_bridge.connectors.marketo import MarketoConnector, MarketoSettings
from crm_bridge.connectors.marketo.client import InstanceBudget
from crm_bridge.connectors.marketo.emulator import RunningMarketo
from crm_bridge.emulators.runtime import EmulatorClock
from crm_bridge.http import FakeClock


class LinkedClock(FakeClock):
    """A fake clock whose sleeps (and advances) also move the emulator's clock."""

    def __init__(self, emulator_clock: EmulatorClock) -> None:
        super().__init__()
        self.emulator_clock = emulator_clock

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        if seconds > 0:
            self.emulator_clock.advance(seconds)


MakeConnector = Callable[..., MarketoConnector]


def settings_for(marketo: RunningMarketo, **overrides: Any) -> MarketoSettings:
    values: dict[str, Any] = {
        "base_url": marketo.base_url,
        "identity_url": marketo.identity_url,
        "client_id": marketo.client_id,
        "client_secret": SecretStr(marketo.client_secret),
        "list_folder_id": 12,
    }
    values.update(overrides)
    return MarketoSettings(**values)


@pytest.fixture
def make_connector(marketo: RunningMarketo) -> Iterator[MakeConnector]:
    made: list[MarketoConnector] = []

    def make(*, clock: FakeClock | None = None, **overrides: Any) -> MarketoConnector:
        settings = settings_for(marketo, **overrides)
        clock = clock or LinkedClock(marketo.emulator.clock)
        conn = MarketoConnector(
            settings, name="mkto", clock=clock, budget=InstanceBudget(settings, clock)
        )
        made.append(conn)
        return conn

    yield make
    for conn in made:
        conn.close()


@pytest.fixture
def connector(make_connector: MakeConnector) -> MarketoConnector:
    return make_connector()


def server_calls(marketo: RunningMarketo) -> dict[str, int]:
    return {k: v for k, v in marketo.emulator.calls.snapshot().items() if k != "total" and v}
