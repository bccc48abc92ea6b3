"""Cross-references between config sections: SLA and reasons naming connectors, pairs, objects.

Each case starts from what an admin following the docs has: ``config.example.toml`` plus the
``[sla]`` block of docs/sla.md, and breaks one reference.  Every problem must name the key, its
env var and a fix that lists what exists.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crm_bridge.cli import app
from crm_bridge.config import LoadedConfig, load_config
from crm_bridge.errors import ConfigError, ConfigProblem

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "config.example.toml").read_text(encoding="utf-8")
SLA_BLOCK = re.findall(r"```toml\n(.*?)```", (ROOT / "docs/sla.md").read_text(), re.S)[0]
REASONS = '\n[reasons]\nversion = 1\n[reasons.codes.price]\ncategory = "lost"\nlabel = "Price"\n'


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("CRM_BRIDGE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("CRM_BRIDGE_CONNECTORS__SALESFORCE__CLIENT_SECRET", "s")
    monkeypatch.setenv("CRM_BRIDGE_CONNECTORS__HUBSPOT__ACCESS_TOKEN", "t")
    monkeypatch.setenv("CRM_BRIDGE_SLA__WEBHOOKS__MANAGERS_SLACK__URL", "https://hooks.invalid/a")
    monkeypatch.setenv("CRM_BRIDGE_SLA__WEBHOOKS__OPS__URL", "https://hooks.invalid/b")


def _load(tmp_path: Path, text: str) -> LoadedConfig:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, builtin_only=True)


def _problems(tmp_path: Path, text: str) -> dict[str, ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    return {p.key: p for p in caught.value.problems}


def test_the_documented_sla_and_reasons_sections_pass_on_the_example(tmp_path: Path) -> None:
    loaded = _load(tmp_path, EXAMPLE + SLA_BLOCK + REASONS)
    assert loaded.settings.sla is not None
    assert loaded.settings.sla.marketing is not None
    assert loaded.settings.sla.marketing.link_object in loaded.settings.pairs["main"].objects


def test_a_link_object_no_pair_defines_is_refused_naming_the_objects(tmp_path: Path) -> None:
    text = EXAMPLE + SLA_BLOCK.replace('link_object = "leads"', 'link_object = "lead"')
    problem = _problems(tmp_path, text)["sla.marketing.link_object"]
    assert "defines no object 'lead'" in problem.problem
    assert "accounts, deals, leads" in problem.problem  # the objects that exist
    assert problem.env_var == "CRM_BRIDGE_SLA__MARKETING__LINK_OBJECT"
    assert problem.fix is not None and 'link_object = "leads"' in problem.fix


def test_sla_connectors_that_are_not_configured_are_refused(tmp_path: Path) -> None:
    text = EXAMPLE + SLA_BLOCK.replace('connector = "salesforce"', 'connector = "sfdc"').replace(
        'connector = "hubspot"', 'connector = "hs"'
    )
    problems = _problems(tmp_path, text)
    crm = problems["sla.crm.connector"]
    assert "names connector 'sfdc', which is not configured" in crm.problem
    assert crm.env_var == "CRM_BRIDGE_SLA__CRM__CONNECTOR"
    assert crm.fix is not None and "hubspot, salesforce" in crm.fix
    assert "names connector 'hs'" in problems["sla.marketing.connector"].problem


def test_an_sla_link_pair_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    text = EXAMPLE + SLA_BLOCK.replace('link_pair = "main"', 'link_pair = "primary"')
    problem = _problems(tmp_path, text)["sla.marketing.link_pair"]
    assert "names pair 'primary'" in problem.problem and problem.fix == "use one of: main"


def test_the_sla_marketing_object_must_be_what_the_link_object_links(tmp_path: Path) -> None:
    text = EXAMPLE + SLA_BLOCK.replace('object = "contacts"', 'object = "deals"', 1)
    problem = _problems(tmp_path, text)["sla.marketing.object"]
    assert "links 'contacts' records" in problem.problem


def test_sla_connectors_must_be_the_link_pairs_sides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_BRIDGE_CONNECTORS__SF2__CLIENT_SECRET", "s")
    other = '\n[connectors.sf2]\ntype = "salesforce"\ninstance_url = "https://x.invalid"\n'
    other += 'token_url = "https://x.invalid/t"\nclient_id = "c"\n'
    text = EXAMPLE + other + SLA_BLOCK.replace('connector = "salesforce"', 'connector = "sf2"')
    problem = _problems(tmp_path, text)["sla.crm.connector"]
    assert "syncs 'salesforce' on that side" in problem.problem


def test_reasons_connectors_that_are_not_configured_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CRM_BRIDGE_SLA__WEBHOOKS__MANAGERS_SLACK__URL")  # no [sla] here
    monkeypatch.delenv("CRM_BRIDGE_SLA__WEBHOOKS__OPS__URL")
    text = EXAMPLE + REASONS.replace("version = 1", 'version = 1\ncrm = "sfdc"')
    problem = _problems(tmp_path, text)["reasons.crm"]
    assert "names connector 'sfdc'" in problem.problem
    assert problem.env_var == "CRM_BRIDGE_REASONS__CRM"


def test_config_check_lists_the_cross_reference_problems_without_a_traceback(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        EXAMPLE + SLA_BLOCK.replace('link_object = "leads"', 'link_object = "lead"'),
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2
    assert "sla.marketing.link_object" in result.output
    assert "Traceback" not in result.output
