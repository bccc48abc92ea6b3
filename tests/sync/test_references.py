"""Reference fields: a person's company id is translated through the companies' links.

Two in-memory systems hold companies and people; a person's ``company_id`` names a company of
its own side.  The pair syncs companies first, then people, and must write the *other* side's
company id -- never the source's, never a dangling one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from crm_bridge.connectors.example_memory import MemoryBackend, MemoryConnector, MemorySettings
from crm_bridge.store import Store
from crm_bridge.sync.mapping import PairSettings
from crm_bridge.sync.runner import SyncRunner
from crm_bridge.sync.values import canonical

PAIR: dict[str, Any] = {
    "crm": "crm",
    "map": "map",
    "overlap_seconds": 0,
    "objects": {
        # People first on purpose: the runner orders objects by their references.
        "people": {
            "crm_object": "contacts",
            "map_object": "contacts",
            "identity": "email",
            "fields": {
                "email": {"crm": "email", "map": "email", "kind": "email", "rule": "crm_wins"},
                "name": {"crm": "name", "map": "name"},
                "company": {
                    "crm": "company_id",
                    "map": "company_id",
                    "kind": "reference",
                    "refers_to": "companies",
                },
            },
        },
        "companies": {
            "crm_object": "companies",
            "map_object": "companies",
            "identity": "domain",
            "fields": {
                "name": {"crm": "name", "map": "name"},
                "domain": {"crm": "website", "map": "domain", "kind": "domain"},
            },
        },
    },
}


class Two:
    """Both systems, a store, a runner."""

    def __init__(self, tmp_path: Path, **overrides: Any) -> None:
        self.crm = MemoryBackend(prefix="c")
        self.map = MemoryBackend(prefix="h")
        objects = ["contacts", "companies"]
        self.conns = {
            "crm": MemoryConnector(MemorySettings(objects=objects), name="crm", backend=self.crm),
            "map": MemoryConnector(MemorySettings(objects=objects), name="map", backend=self.map),
        }
        self.store = Store.open(f"sqlite:///{tmp_path / 'state.sqlite3'}")
        self.settings = PairSettings.model_validate({**PAIR, **overrides})
        self.at = datetime(2026, 12, 1, 9, tzinfo=UTC)  # the runner's clock (dead-letter backoff)

    def sync(self) -> Any:
        return SyncRunner(
            name="p",
            settings=self.settings,
            crm=self.conns["crm"],
            map_=self.conns["map"],
            store=self.store,
            now=lambda: self.at,
        ).run_cycle()

    def person(self, side: str, email: str) -> dict[str, Any]:
        backend = self.crm if side == "crm" else self.map
        (found,) = [v for v in backend.live("contacts").values() if v["email"] == email]
        return found

    def company_id(self, side: str, domain: str) -> str:
        backend = self.crm if side == "crm" else self.map
        rows = backend.live("companies")
        (found,) = [
            k
            for k, v in rows.items()
            if canonical(v.get("website", v.get("domain")), "domain") == domain
        ]
        return found


@pytest.fixture
def two(tmp_path: Path) -> Iterator[Two]:
    t = Two(tmp_path)
    yield t
    t.store.close()


def test_a_new_company_and_its_people_arrive_with_the_other_sides_company_id(two: Two) -> None:
    acme = two.crm.create(
        "companies", {"name": "Acme", "website": "https://www.Acme.example/about"}
    )
    two.crm.create("contacts", {"email": "ann@acme.example", "name": "Ann", "company_id": acme})
    report = two.sync()

    hub_acme = two.company_id("map", "acme.example")
    assert hub_acme != acme
    assert two.map.live("companies")[hub_acme]["domain"] == "acme.example"
    assert two.person("map", "ann@acme.example")["company_id"] == hub_acme
    assert report.counts["dead_lettered"] == 0
    # An idle cycle: the translated id reads back as the same logical value (no echo write).
    again = two.sync()
    assert again.counts["updated_crm"] == 0 and again.counts["updated_map"] == 0


def test_twins_on_the_domain_pair_instead_of_duplicating(two: Two) -> None:
    two.crm.create("companies", {"name": "Globex", "website": "http://globex.example"})
    two.map.create("companies", {"name": "Globex Corp", "domain": "GLOBEX.example"})
    two.sync()
    assert len(two.map.live("companies")) == 1 and len(two.crm.live("companies")) == 1
    with two.store.transaction(readonly=True) as tx:
        assert tx.count_links("p", "companies") == 1


def test_moving_a_person_to_another_company_moves_it_on_the_other_side(two: Two) -> None:
    acme = two.crm.create("companies", {"name": "Acme", "website": "acme.example"})
    initech = two.crm.create("companies", {"name": "Initech", "website": "initech.example"})
    bo = two.crm.create("contacts", {"email": "bo@acme.example", "name": "Bo", "company_id": acme})
    two.sync()
    two.crm.human_edit("contacts", bo, {"company_id": initech})
    two.sync()
    assert two.person("map", "bo@acme.example")["company_id"] == two.company_id(
        "map", "initech.example"
    )
    # ... and back the other way: the marketing side's id becomes the CRM's.
    hub_bo = next(k for k, v in two.map.live("contacts").items() if v["email"] == "bo@acme.example")
    two.map.human_edit("contacts", hub_bo, {"company_id": two.company_id("map", "acme.example")})
    two.sync()
    assert two.person("crm", "bo@acme.example")["company_id"] == acme


def test_a_company_that_is_not_linked_dead_letters_the_person_until_it_is(
    tmp_path: Path,
) -> None:
    two = Two(tmp_path)
    try:
        # The marketing side's company may not be created in the CRM (sales owns accounts).
        objects = {**PAIR["objects"]}
        objects["companies"] = {**objects["companies"], "create_on_crm": False}
        two.settings = PairSettings.model_validate({**PAIR, "objects": objects})
        orphan = two.map.create("companies", {"name": "Hooli", "domain": "hooli.example"})
        two.map.create(
            "contacts", {"email": "cy@hooli.example", "name": "Cy", "company_id": orphan}
        )
        two.sync()
        with two.store.transaction(readonly=True) as tx:
            (letter,) = tx.dead_letters(pair="p")
        assert letter.error_code == "REFERENCE_NOT_LINKED"
        assert "companies" in letter.reason
        # No person was created with a dangling (or the wrong side's) company id.
        assert all(v.get("company_id") != orphan for v in two.crm.live("contacts").values())

        # Sales creates the account; the replay then carries the person over with its id.
        hooli = two.crm.create("companies", {"name": "Hooli", "website": "hooli.example"})
        two.sync()
        two.at += timedelta(days=1)  # past the dead letter's backoff
        two.sync()
        assert two.person("crm", "cy@hooli.example")["company_id"] == hooli
        with two.store.transaction(readonly=True) as tx:
            assert tx.dead_letters(pair="p") == []
    finally:
        two.store.close()


def test_references_are_validated_and_ordered() -> None:
    settings = PairSettings.model_validate(PAIR)
    assert settings.ordered_objects() == ["companies", "people"]

    broken = {**PAIR["objects"]["people"]}
    broken["fields"] = {
        **broken["fields"],
        "company": {
            "crm": "company_id",
            "map": "company_id",
            "kind": "reference",
            "refers_to": "x",
        },
    }
    with pytest.raises(ValidationError, match=r"objects.people.fields.company.refers_to: 'x'"):
        PairSettings.model_validate({**PAIR, "objects": {"people": broken}})
    with pytest.raises(ValidationError, match="needs refers_to"):
        PairSettings.model_validate(
            {
                **PAIR,
                "objects": {
                    "people": {
                        **broken,
                        "fields": {
                            "email": broken["fields"]["email"],
                            "company": {"crm": "a", "map": "b", "kind": "reference"},
                        },
                    }
                },
            }
        )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://www.Acme.com/about?x=1", "acme.com"),
        ("acme.com", "acme.com"),
        ("http://shop.acme.com:8080", "shop.acme.com"),
        ("WWW.ACME.COM.", "acme.com"),
        ("", None),
    ],
)
def test_a_domain_is_its_host(raw: str, expected: str | None) -> None:
    assert canonical(raw, "domain") == expected
