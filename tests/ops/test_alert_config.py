"""The ``[alerts]`` section: webhook URLs only from the environment, names that env vars reach."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_bridge.config import load_config
from crm_bridge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
BASE = (ROOT / "tests/fixtures/memory.toml").read_text()
HOOK = "https://hooks.example/services/SENTINEL-alert-77"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_alert_webhook_url_from_the_environment_loads_and_is_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_BRIDGE_ALERTS__WEBHOOKS__OPS__URL", HOOK)
    text = BASE + '\n[alerts]\ndead_letter_spike = 5\n\n[alerts.webhooks.ops]\nformat = "slack"\n'
    loaded = load_config(write(tmp_path, text))
    alerts = loaded.settings.alerts
    assert alerts is not None and alerts.dead_letter_spike == 5
    assert alerts.webhooks["ops"].url.get_secret_value() == HOOK
    assert alerts.webhooks["ops"].format == "slack"
    assert HOOK in loaded.secret_values()
    assert HOOK not in repr(alerts)


def test_alert_webhook_url_in_the_toml_is_refused(tmp_path: Path) -> None:
    text = BASE + f'\n[alerts.webhooks.ops]\nurl = "{HOOK}"\n'
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    keys = {p.key: p for p in info.value.problems}
    assert keys["alerts.webhooks.ops.url"].env_var == "CRM_BRIDGE_ALERTS__WEBHOOKS__OPS__URL"
    assert HOOK not in str(info.value)


def test_unknown_alert_kinds_and_unreachable_webhook_names_are_refused(tmp_path: Path) -> None:
    text = BASE + '\n[alerts]\nsend = ["cycle_failed", "bogus"]\n\n[alerts.webhooks.Ops]\n'
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    shown = str(info.value)
    assert "alerts.send.1" in shown and "dead_letter_spike" in shown  # the allowed kinds
    assert "lower_snake_case" in shown and "CRM_BRIDGE_ALERTS__WEBHOOKS__<NAME>__URL" in shown
