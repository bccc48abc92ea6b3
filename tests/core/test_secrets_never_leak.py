"""Every secret set to a sentinel never shows up in logs, reprs, exception text or CLI output."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from crm_bridge.config import LoggingSettings, load_config
from crm_bridge.errors import AuthError, ConfigError
from crm_bridge.log import MASK, configure_logging, get_logger
from crm_bridge.sla.webhooks import WebhookSender

SENTINEL = "SENTINEL-s3cr3t-9f2c"
# A webhook URL is a credential as a whole: anyone holding it can post.
HOOK_SENTINEL = "https://hooks.slack.com/services/T0/B0/SENTINEL-h00k-4d1e"
HOOK_FILE_SENTINEL = "https://ops.example/hooks/SENTINEL-f1le-77aa"
ROOT = Path(__file__).resolve().parents[2]
SLA_FIXTURE = ROOT / "tests/fixtures/memory_sla.toml"


def shows_hook(text: str) -> bool:
    """Whether either webhook URL, or its secret path, appears in ``text``."""
    return any(s in text for s in ("SENTINEL-h00k-4d1e", "SENTINEL-f1le-77aa"))


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_BRIDGE_CONNECTORS__CRM_DEMO__API_TOKEN", SENTINEL)


@pytest.fixture
def webhook_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One webhook URL from the environment, the other from a secrets file (returned)."""
    monkeypatch.setenv("CRM_BRIDGE_SLA__WEBHOOKS__MANAGERS__URL", HOOK_SENTINEL)
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"CRM_BRIDGE_SLA__WEBHOOKS__OPS__URL={HOOK_FILE_SENTINEL}\n")
    return secrets


@pytest.mark.parametrize("fmt", ["kv", "json"])
def test_logs_mask_secret_values_and_secretstr(secret_env: None, fmt: str) -> None:
    loaded = load_config(ROOT / "tests/fixtures/memory.toml")
    stream = io.StringIO()
    configure_logging(
        LoggingSettings(format=fmt, level="debug"), secrets=loaded.secret_values(), stream=stream
    )
    log = get_logger("test")
    log.info("token used", token=SecretStr(SENTINEL), url=f"https://x/?t={SENTINEL}")
    try:
        raise AuthError(f"refused {SENTINEL}")
    except AuthError:
        log.exception("auth failed")
    logging.getLogger("urllib3").warning("third-party says %s", SENTINEL)
    text = stream.getvalue()
    assert SENTINEL not in text
    assert text.count(MASK) >= 3
    if fmt == "json":
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        assert lines[0]["event"] == "token used"


@pytest.mark.parametrize("fmt", ["kv", "json"])
def test_logs_mask_webhook_urls(webhook_secrets: Path, fmt: str) -> None:
    loaded = load_config(SLA_FIXTURE, secrets_file=webhook_secrets)
    stream = io.StringIO()
    configure_logging(
        LoggingSettings(format=fmt, level="debug"), secrets=loaded.secret_values(), stream=stream
    )
    log = get_logger("test")
    log.info("posting", url=HOOK_SENTINEL, hooks=[HOOK_FILE_SENTINEL])
    try:
        raise RuntimeError(f"POST {HOOK_SENTINEL} failed")
    except RuntimeError:
        log.exception("webhook failed")
    logging.getLogger("httpx").info('HTTP Request: POST %s "HTTP/1.1 500"', HOOK_FILE_SENTINEL)
    text = stream.getvalue()
    assert not shows_hook(text)
    assert text.count(MASK) >= 4


def test_reprs_and_errors_do_not_show_webhook_urls(
    webhook_secrets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = load_config(SLA_FIXTURE, secrets_file=webhook_secrets)
    sla = loaded.settings.sla
    assert sla is not None
    for shown in (
        repr(loaded),
        str(loaded.settings),
        repr(sla.webhooks),
        str(sla.model_dump()),
        repr(WebhookSender(sla.webhooks)),
    ):
        assert not shows_hook(shown)
    # Written in the TOML it is refused, and the error does not repeat it.
    monkeypatch.delenv("CRM_BRIDGE_SLA__WEBHOOKS__MANAGERS__URL")
    bad = tmp_path / "bad.toml"
    bad.write_text(
        SLA_FIXTURE.read_text().replace(
            "[sla.webhooks.managers]\n", f'[sla.webhooks.managers]\nurl = "{HOOK_SENTINEL}"\n'
        )
    )
    with pytest.raises(ConfigError) as info:
        load_config(bad, secrets_file=webhook_secrets)
    assert [p.key for p in info.value.problems] == ["sla.webhooks.managers.url"]
    assert not shows_hook(str(info.value))


def test_reprs_and_errors_do_not_show_secrets(secret_env: None) -> None:
    loaded = load_config(ROOT / "tests/fixtures/memory.toml")
    conn = loaded.connectors["crm_demo"]
    assert SENTINEL not in repr(loaded)
    assert SENTINEL not in repr(conn.settings)
    assert SENTINEL not in str(conn.settings.model_dump())
    assert SENTINEL not in repr(conn.create())


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI as an admin would, in a fresh process with only ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "crm_bridge", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def test_cli_output_never_shows_secrets(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_BRIDGE_")}
    env["CRM_BRIDGE_CONNECTORS__CRM_DEMO__API_TOKEN"] = SENTINEL
    env["CRM_BRIDGE_LOGGING__LEVEL"] = "debug"
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[connectors.x]\ntype = "example_memory"\napi_token = "{SENTINEL}"\n')
    for args in (
        ["config", "check", "--config", "tests/fixtures/memory.toml"],
        ["check", "--config", "tests/fixtures/memory.toml"],
        ["config", "check", "--config", str(bad)],
    ):
        result = _cli(args, env)
        assert SENTINEL not in result.stdout + result.stderr, args


def test_cli_output_never_shows_webhook_urls(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_BRIDGE_")}
    env["CRM_BRIDGE_SLA__WEBHOOKS__MANAGERS__URL"] = HOOK_SENTINEL
    env["CRM_BRIDGE_LOGGING__LEVEL"] = "debug"
    env["CRM_BRIDGE_STORE__URL"] = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"CRM_BRIDGE_SLA__WEBHOOKS__OPS__URL={HOOK_FILE_SENTINEL}\n")
    bad = tmp_path / "bad.toml"
    bad.write_text(
        SLA_FIXTURE.read_text().replace(
            "[sla.webhooks.ops]\n", f'[sla.webhooks.ops]\nurl = "{HOOK_FILE_SENTINEL}"\n'
        )
    )
    fixture = str(SLA_FIXTURE)
    for args, code in (
        (["config", "check", "--config", fixture, "--secrets-file", str(secrets)], 0),
        (["sla", "run", "--config", fixture, "--secrets-file", str(secrets)], 0),
        (["sla", "status", "--config", fixture, "--secrets-file", str(secrets)], 0),
        (["config", "check", "--config", str(bad)], 2),
    ):
        result = _cli(args, env)
        assert result.returncode == code, (args, result.stderr)
        assert not shows_hook(result.stdout + result.stderr), args
    assert "sla.webhooks.ops.url" in result.stderr
    assert "CRM_BRIDGE_SLA__WEBHOOKS__OPS__URL" in result.stderr
