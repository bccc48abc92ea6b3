from __future__ import annotations

import pytest
from pydantic import ValidationError

from crm_bridge.presets import installed_presets, load_preset
from crm_bridge.sync.mapping import PairSettings


def test_the_in_tree_preset_is_registered_by_its_vendor() -> None:
    assert installed_presets()["hubspot_salesforce"].startswith("crm_bridge.connectors.salesforce.")
    objects = load_preset("hubspot_salesforce")
    assert objects["leads"]["crm_object"] == "Person"
    objects["leads"]["crm_object"] = "changed"  # a copy: the next load is untouched
    assert load_preset("hubspot_salesforce")["leads"]["crm_object"] == "Person"


def test_a_pair_extends_a_preset_field_by_field() -> None:
    pair = PairSettings.model_validate(
        {
            "crm": "sf",
            "map": "hs",
            "preset": "hubspot_salesforce",
            "objects": {"leads": {"fields": {"title": {"crm": "Title", "map": "role"}}}},
        }
    )
    assert pair.objects["leads"].fields["title"].map == "role"
    assert pair.objects["leads"].fields["email"].crm == "Email"  # the rest of the preset stays
    assert "deals" in pair.objects


def test_an_unknown_preset_names_the_installed_ones() -> None:
    with pytest.raises(ValidationError) as caught:
        PairSettings.model_validate({"crm": "sf", "map": "hs", "preset": "pardot_salesforce"})
    message = str(caught.value)
    assert "unknown preset 'pardot_salesforce'" in message
    assert "hubspot_salesforce" in message
    assert "marketo_hubspot" in message and "marketo_salesforce" in message
