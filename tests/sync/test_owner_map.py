"""``pairs.NAME.owner_map``: one person with a different e-mail in each system."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from crm_bridge.connector import Owner
from crm_bridge.sync.mapping import PairSettings
from crm_bridge.sync.owners import OwnerDirectory, match_owners

CRM = [Owner("005A", "Rick.Rep@corp.example", "Rick"), Owner("005B", "ann@corp.example", "Ann")]
MAP = [Owner("11", "rick@marketing.example", "Rick"), Owner("12", "ann@corp.example", "Ann")]
ALIASES = {"rick.rep@corp.example": "rick@marketing.example"}


def test_a_mapped_owner_is_the_same_person_on_both_sides() -> None:
    directory = OwnerDirectory.build(CRM, MAP, ALIASES)
    assert directory.email_of("map", "11") == directory.email_of("crm", "005A")
    assert directory.id_for("map", directory.email_of("crm", "005A")) == "11"
    assert directory.id_for("crm", directory.email_of("map", "11")) == "005A"
    plain = OwnerDirectory.build(CRM, MAP)
    assert plain.id_for("map", plain.email_of("crm", "005A")) is None  # without the map


def test_owners_command_shows_the_owner_map_match() -> None:
    matches = match_owners(CRM, MAP, defaults={"crm": None, "map": None}, owner_map=ALIASES)
    how = {(m.side, m.owner.id): (m.kind, m.target_id) for m in matches}
    assert how == {
        ("crm", "005A"): ("owner_map", "11"),
        ("crm", "005B"): ("email", "12"),
        ("map", "11"): ("owner_map", "005A"),
        ("map", "12"): ("email", "005B"),
    }


def test_owner_map_is_lower_cased_and_one_to_one() -> None:
    base = {"crm": "salesforce", "map": "hubspot", "preset": "hubspot_salesforce"}
    settings = PairSettings.model_validate(
        {**base, "owner_map": {"Rick.Rep@Corp.example": "R@M.x"}}
    )
    assert settings.owner_map == {"rick.rep@corp.example": "r@m.x"}
    with pytest.raises(ValidationError, match="at most one CRM e-mail"):
        PairSettings.model_validate(
            {**base, "owner_map": {"a@x.example": "m@x", "b@x.example": "M@x"}}
        )
