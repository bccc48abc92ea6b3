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
from crm_bridge.errors import AuthError
from crm_bridge.log import MASK, configure_logging, get_logger

SENTINEL = "SENTINEL-s3cr3t-9f2c"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_BRIDGE_CONNECTORS__CRM_DEMO__API_TOKEN", SENTINEL)


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


def test_reprs_and_errors_do_not_show_secrets(secret_env: None) -> None:
    loaded = load_config(ROOT / "tests/fixtures/memory.toml")
    conn = loaded.connectors["crm_demo"]
    assert SENTINEL not in repr(loaded)
    assert SENTINEL not in repr(conn.settings)
    assert SENTINEL not in str(conn.settings.model_dump())
    assert SENTINEL not in repr(conn.create())


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
        result = subprocess.run(
            [sys.executable, "-m", "crm_bridge", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
        )
        assert SENTINEL not in result.stdout + result.stderr, args
