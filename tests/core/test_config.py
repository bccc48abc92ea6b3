from __future__ import annotations

from pathlib import Path

import pytest

from crm_bridge.config import env_var_for, load_config
from crm_bridge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_example_config_passes() -> None:
    loaded = load_config(ROOT / "tests/fixtures/memory.toml")
    assert set(loaded.connectors) >= {"crm_demo", "map_demo"}
    assert loaded.settings.logging.format == "kv"


def test_plaintext_secret_is_refused_naming_key_and_env(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[connectors.sf]\ntype = "example_memory"\napi_token = "abc"\n'
        '[connectors.other]\ntype = "example_memory"\nclient_secret = "abc"\n',
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    keys = {p.key: p for p in info.value.problems}
    assert keys["connectors.sf.api_token"].env_var == "CRM_BRIDGE_CONNECTORS__SF__API_TOKEN"
    assert "plain text" in keys["connectors.sf.api_token"].problem
    # a secret-looking key is refused even where the connector does not declare it
    assert keys["connectors.other.client_secret"].env_var == (
        "CRM_BRIDGE_CONNECTORS__OTHER__CLIENT_SECRET"
    )
    assert "abc" not in str(info.value)


def test_three_mistakes_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[logging]\nformat = "xml"\n[daemon]\ninterval_seconds = 0\n'
        '[connectors.a]\ntype = "no_such_connector"\n',
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    keys = [p.key for p in info.value.problems]
    assert keys == ["logging.format", "daemon.interval_seconds", "connectors.a.type"]
    text = str(info.value)
    assert "3 problems" in text
    assert "installed: example_memory" in text
    assert "CRM_BRIDGE_DAEMON__INTERVAL_SECONDS" in text


def test_unknown_key_lists_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, '[connectors.a]\ntype = "example_memory"\ncolour = "red"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.key == "connectors.a.colour"
    assert problem.fix is not None and "identity_field" in problem.fix


def test_environment_overrides_toml_and_secrets_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path, '[daemon]\ninterval_seconds = 30\n[connectors.a]\ntype = "example_memory"\n'
    )
    secrets = tmp_path / "secrets.env"
    secrets.write_text(
        "CRM_BRIDGE_CONNECTORS__A__API_TOKEN=from-file\nCRM_BRIDGE_DAEMON__INTERVAL_SECONDS=20\n"
    )
    monkeypatch.setenv("CRM_BRIDGE_DAEMON__INTERVAL_SECONDS", "10")
    loaded = load_config(path, secrets_file=secrets)
    assert loaded.settings.daemon.interval_seconds == 10
    token = loaded.connectors["a"].settings.api_token  # type: ignore[attr-defined]
    assert token.get_secret_value() == "from-file"
    assert "from-file" not in repr(loaded.connectors["a"].settings)
    assert loaded.secret_values() == ["from-file"]


def test_connector_from_environment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_BRIDGE_CONNECTORS__ENVONLY__TYPE", "example_memory")
    loaded = load_config(None)
    assert loaded.connectors["envonly"].type_name == "example_memory"


def test_store_password_in_toml_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[store]\nurl = "postgresql+psycopg://u:hunter22@db/x"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.env_var == "CRM_BRIDGE_STORE__URL"
    assert "hunter22" not in str(info.value)


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[store\n"))
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.toml")


def test_env_var_for() -> None:
    assert env_var_for("connectors", "sf", "client_id") == "CRM_BRIDGE_CONNECTORS__SF__CLIENT_ID"


def test_product_example_config_passes_with_its_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (ROOT / "config.example.toml").read_text()
    for var in (
        "CRM_BRIDGE_CONNECTORS__SALESFORCE__CLIENT_SECRET",
        "CRM_BRIDGE_CONNECTORS__HUBSPOT__ACCESS_TOKEN",
    ):
        assert var in text  # the file names every env var it needs
        monkeypatch.setenv(var, "set-by-test")
    loaded = load_config(ROOT / "config.example.toml")
    assert set(loaded.connectors) == {"salesforce", "hubspot"}
    pair = loaded.settings.pairs["main"]
    assert pair.objects["leads"].fields["title"].rule == "crm_wins"  # override on a preset
    assert pair.objects["deals"].crm_object == "Opportunity"  # the rest of the preset is kept


def test_product_example_config_without_secrets_names_them(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "CRM_BRIDGE_CONNECTORS__SALESFORCE__CLIENT_SECRET",
        "CRM_BRIDGE_CONNECTORS__HUBSPOT__ACCESS_TOKEN",
    ):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError) as info:
        load_config(ROOT / "config.example.toml")
    assert "hubspot" in str(info.value)


SLA_FIXTURE = ROOT / "tests/fixtures/memory_sla.toml"
HOOK = "https://hooks.slack.com/services/T000/B000/plain-text-hook"


def test_webhook_url_in_toml_is_refused_with_every_other_problem(tmp_path: Path) -> None:
    text = SLA_FIXTURE.read_text().replace(
        '[sla.webhooks.managers]\nformat = "slack"',
        f'[sla.webhooks.managers]\nformat = "slack"\nurl = "{HOOK}"',
    )
    text += "\n[daemon]\ninterval_seconds = 0\n"
    text = text.replace("[connectors.map_demo]\n", '[connectors.map_demo]\napi_token = "tok-123"\n')
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    keys = {p.key: p for p in info.value.problems}
    refused = keys["sla.webhooks.managers.url"]
    assert "plain text" in refused.problem
    assert refused.env_var == "CRM_BRIDGE_SLA__WEBHOOKS__MANAGERS__URL"
    assert refused.fix is not None
    assert "delete it from the TOML" in refused.fix
    assert "CRM_BRIDGE_SLA__WEBHOOKS__MANAGERS__URL" in refused.fix
    # All at once: the connector secret, the bad interval and the URL nobody set for `ops`.
    assert {
        "connectors.map_demo.api_token",
        "daemon.interval_seconds",
        "sla.webhooks.ops.url",
    } <= set(keys)
    assert info.value.exit_code == 2
    assert HOOK not in str(info.value)
    assert "tok-123" not in str(info.value)


def test_webhook_urls_from_environment_and_secrets_file_load_and_are_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops = "https://ops.example/hooks/from-file"
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"CRM_BRIDGE_SLA__WEBHOOKS__OPS__URL={ops}\n")
    monkeypatch.setenv("CRM_BRIDGE_SLA__WEBHOOKS__MANAGERS__URL", HOOK)
    loaded = load_config(SLA_FIXTURE, secrets_file=secrets)
    assert loaded.settings.sla is not None
    hooks = loaded.settings.sla.webhooks
    assert hooks["managers"].url.get_secret_value() == HOOK
    assert hooks["ops"].url.get_secret_value() == ops
    assert hooks["managers"].format == "slack"  # the rest of the table still comes from the TOML
    assert set(loaded.secret_values()) == {HOOK, ops}
    assert HOOK not in repr(loaded) and ops not in repr(loaded)


def test_missing_webhook_url_points_only_at_the_env_var() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(SLA_FIXTURE)
    keys = {p.key: p for p in info.value.problems}
    assert set(keys) == {"sla.webhooks.managers.url", "sla.webhooks.ops.url"}
    missing = keys["sla.webhooks.ops.url"]
    assert missing.env_var == "CRM_BRIDGE_SLA__WEBHOOKS__OPS__URL"
    # The TOML would refuse it, so the fix must not suggest it.
    assert missing.fix == "set CRM_BRIDGE_SLA__WEBHOOKS__OPS__URL"


def test_webhook_names_must_be_lower_snake_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = SLA_FIXTURE.read_text().replace("webhooks.ops]", "webhooks.Ops]")
    text = text.replace('"managers", "ops"', '"managers", "Ops"')
    monkeypatch.setenv("CRM_BRIDGE_SLA__WEBHOOKS__MANAGERS__URL", HOOK)
    monkeypatch.setenv("CRM_BRIDGE_SLA__WEBHOOKS__OPS__URL", HOOK)
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    (problem,) = info.value.problems
    assert problem.key == "sla.webhooks"
    assert "lower_snake_case" in problem.problem and "'Ops'" in problem.problem


PAIR_TABLE = """crm = "crm_demo"
map = "map_demo"
[{key}.objects.contacts]
crm_object = "contacts"
map_object = "contacts"
[{key}.objects.contacts.fields.email]
crm = "email"
map = "email"
kind = "email"
"""


def _with_pair(tmp_path: Path, key: str) -> Path:
    """tests/fixtures/memory.toml plus one pair at TOML table ``key`` (e.g. ``pairs.main``)."""
    base = (ROOT / "tests/fixtures/memory.toml").read_text()
    return write(tmp_path, f"{base}\n[{key}]\n" + PAIR_TABLE.format(key=key))


@pytest.mark.parametrize(
    ("table", "key", "why"),
    [
        ("pairs.reasons", "pairs.reasons", "reason capture stores its cursors under that name"),
        ('pairs."sla:crm_demo"', "pairs.sla:crm_demo", "must not contain ':'"),
        ('pairs."eu:main"', "pairs.eu:main", "reserved for internal cursor names"),
    ],
)
def test_pair_names_of_internal_cursors_are_refused(
    tmp_path: Path, table: str, key: str, why: str
) -> None:
    """``reasons`` (the reason capture's cursors) and any name with ``:`` (the SLA engine's
    ``sla:<connector>``) are refused, naming the key, why, and the fix."""
    with pytest.raises(ConfigError) as info:
        load_config(_with_pair(tmp_path, table))
    (problem,) = info.value.problems
    assert problem.key == key
    assert why in problem.problem
    assert problem.fix is not None and "rename the pair" in problem.fix
    assert key in str(info.value)
