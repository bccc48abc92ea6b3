"""[sla] validation: every mistake names its key, secrets stay secret, the docs example loads."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from crm_bridge.config import load_config
from crm_bridge.errors import ConfigError
from crm_bridge.sla.policy import SlaSettings

from .conftest import SLACK_URL, admin_config, sla_config
from .tomlish import dumps

DOCS = Path(__file__).parents[2] / "docs" / "sla.md"


def problems(tmp_path: Path, sla: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> str:
    hooks = sla.pop("webhooks", {})
    for name, hook in hooks.items():
        monkeypatch.setenv(f"CRM_BRIDGE_SLA__WEBHOOKS__{name.upper()}__URL", hook["url"])
    sla["webhooks"] = {n: {k: v for k, v in h.items() if k != "url"} for n, h in hooks.items()}
    path = tmp_path / "c.toml"
    path.write_text(dumps({"sla": sla}))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def test_valid_config_loads_through_load_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sla = sla_config()
    hooks = sla.pop("webhooks")
    for name, hook in hooks.items():
        monkeypatch.setenv(f"CRM_BRIDGE_SLA__WEBHOOKS__{name.upper()}__URL", hook["url"])
    sla["webhooks"] = {n: {"format": h["format"]} for n, h in hooks.items()}
    path = tmp_path / "c.toml"
    path.write_text(dumps(admin_config(monkeypatch, sla=sla)))
    loaded = load_config(path)
    settings = loaded.settings.sla
    assert settings is not None
    assert settings.webhooks["managers"].url.get_secret_value() == SLACK_URL
    # The URL is a credential: never in a repr or a dump.
    assert SLACK_URL not in repr(settings)
    assert SLACK_URL not in str(settings.model_dump())
    assert settings.rep_calendars["bob"].timezone == "UTC"
    assert settings.team_of_rep == {"ann": "inside", "bob": "inside", "cat": "inside"}


@pytest.mark.parametrize(
    ("path", "value", "key", "message"),
    [
        (
            ("policies", "inbound", "accept", "target_hours"),
            0,
            "sla.policies.inbound.accept.target_hours",
            "greater than 0",
        ),
        (
            ("policies", "inbound", "accept", "remind_at"),
            1.5,
            "sla.policies.inbound.accept.remind_at",
            "less than 1",
        ),
        (
            ("policies", "inbound", "breach", 0, "action"),
            "explode",
            "sla.policies.inbound.breach.0.action",
            "escalate",
        ),
        (
            ("policies", "inbound", "reject_reasons", "spam"),
            "burn",
            "sla.policies.inbound.reject_reasons.spam",
            "recycle",
        ),
        (
            ("reps", "ann", "timezone"),
            "Mars/Olympus",
            "sla.reps.ann.timezone",
            "unknown IANA time zone",
        ),
        (("reps", "ann", "email"), "not-an-email", "sla.reps.ann.email", "not an e-mail"),
        (
            ("calendars", "inside", "hours"),
            {"monday": ["17:00-09:00"]},
            "sla.calendars.inside.hours",
            "monday",
        ),
        (("teams", "inside", "shoe_size"), 42, "sla.teams.inside.shoe_size", "unknown key"),
    ],
)
def test_bad_values_name_their_key(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    path: tuple[Any, ...],
    value: Any,
    key: str,
    message: str,
) -> None:
    sla = copy.deepcopy(sla_config())
    target: Any = sla
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    text = problems(tmp_path, sla, monkeypatch)
    assert key in text
    assert message in text


def test_references_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sla = sla_config()
    sla["teams"]["inside"]["calendar"] = "emea"
    sla["teams"]["inside"]["members"].append("zed")
    sla["policies"]["inbound"]["escalate_webhooks"] = ["pager"]
    text = problems(tmp_path, sla, monkeypatch)
    assert "teams.inside.calendar: unknown calendar 'emea'" in text
    assert "teams.inside.members: unknown rep 'zed'" in text
    assert "unknown webhook 'pager'" in text


def test_a_policy_needs_a_clock_and_recycle_ends_the_chain() -> None:
    sla = sla_config()
    del sla["policies"]["inbound"]["accept"]
    del sla["policies"]["inbound"]["first_touch"]
    with pytest.raises(ValueError, match="at least one clock"):
        SlaSettings.model_validate(sla)
    sla = sla_config()
    sla["policies"]["inbound"]["breach"] = [
        {"action": "recycle", "after_hours": 0},
        {"action": "escalate", "after_hours": 1},
    ]
    with pytest.raises(ValueError, match="recycle ends the chain"):
        SlaSettings.model_validate(sla)


def test_webhook_url_missing_points_at_the_env_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sla = sla_config()
    sla["webhooks"] = {"managers": {"format": "slack"}}
    sla["policies"]["inbound"]["escalate_webhooks"] = ["managers"]
    sla["policies"]["inbound"]["remind"] = {"task": True}
    path = tmp_path / "c.toml"
    path.write_text(dumps({"sla": sla}))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "CRM_BRIDGE_SLA__WEBHOOKS__MANAGERS__URL" in str(info.value)


def test_docs_example_is_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = DOCS.read_text()
    start = text.index("```toml\n") + len("```toml\n")
    example = text[start : text.index("```", start)]
    for name in ("MANAGERS_SLACK", "OPS"):
        monkeypatch.setenv(f"CRM_BRIDGE_SLA__WEBHOOKS__{name}__URL", "https://hooks.invalid/x")
    path = tmp_path / "c.toml"
    # What an admin does: the documented section added to the example configuration.
    path.write_text(dumps(admin_config(monkeypatch)) + "\n" + example)
    loaded = load_config(path)
    assert loaded.settings.sla is not None
    assert set(loaded.settings.sla.policies) == {"inbound"}
