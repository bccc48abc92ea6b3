from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crm_bridge.connectors.example_memory import MemoryBackend, MemoryConnector, MemorySettings
from crm_bridge.connectors.hubspot.emulator import RunningHubSpot
from crm_bridge.connectors.salesforce.emulator import RunningSalesforce
from crm_bridge.store import Store
from crm_bridge.sync.mapping import PairSettings
from crm_bridge.sync.runner import SyncRunner
from tests.sync.emulated import Emulated, Make

PAIR: dict[str, Any] = {
    "crm": "crm",
    "map": "map",
    "overlap_seconds": 0,
    "objects": {
        "people": {
            "crm_object": "contacts",
            "map_object": "contacts",
            "identity": "email",
            "fields": {
                "email": {"crm": "email", "map": "email", "kind": "email", "rule": "crm_wins"},
                "name": {"crm": "name", "map": "name", "rule": "latest_wins"},
                "title": {"crm": "title", "map": "title", "rule": "crm_wins_unless_blank"},
                "score": {"crm": "score", "map": "score", "kind": "number", "rule": "map_wins"},
            },
        }
    },
}


class World:
    """Two in-memory systems, a real SQLite store and a runner between them."""

    def __init__(self, tmp_path: Path, **overrides: Any) -> None:
        self.crm = MemoryBackend(prefix="c")
        self.map = MemoryBackend(prefix="h")
        self.crm_conn = MemoryConnector(
            MemorySettings(objects=["contacts"], max_batch=3), name="crm", backend=self.crm
        )
        self.map_conn = MemoryConnector(
            MemorySettings(objects=["contacts"], max_batch=2), name="map", backend=self.map
        )
        self.store = Store.open(f"sqlite:///{tmp_path / 'state.sqlite3'}")
        self.settings = PairSettings.model_validate({**PAIR, **overrides})
        self.runner = self.new_runner()

    def new_runner(self) -> SyncRunner:
        return SyncRunner(
            name="p",
            settings=self.settings,
            crm=self.crm_conn,
            map_=self.map_conn,
            store=self.store,
        )

    def sync(self, **kwargs: Any) -> Any:
        return self.runner.run_cycle(**kwargs)

    def people(self, side: str) -> dict[str, dict[str, Any]]:
        backend = self.crm if side == "crm" else self.map
        return backend.live("contacts")

    def by_email(self, side: str) -> dict[str, dict[str, Any]]:
        return {str(v["email"]).lower(): v for v in self.people(side).values() if v.get("email")}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.store.close()


@pytest.fixture
def make(salesforce: RunningSalesforce, hubspot: RunningHubSpot, tmp_path: Path) -> Iterator[Make]:
    """Build :class:`Emulated` pairs on the freshly reset emulators; all closed afterwards."""
    made: list[Emulated] = []

    def build(*, store: str = "store", **kwargs: Any) -> Emulated:
        where = tmp_path / store
        where.mkdir(exist_ok=True)
        emulated = Emulated(salesforce, hubspot, where, **kwargs)
        made.append(emulated)
        return emulated

    yield build
    for emulated in made:
        emulated.close()
