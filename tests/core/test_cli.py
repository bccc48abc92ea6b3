"""The CLI through its real entry point (a subprocess), as an admin would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_BRIDGE_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "crm_bridge", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=ROOT,
        timeout=60,
    )


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("crm-bridge ")


def test_every_verb_has_help_with_an_example() -> None:
    for verb in (["config", "check"], ["connectors", "list"], ["check"]):
        result = run(*verb, "--help")
        assert result.returncode == 0, result.stderr
        assert "Example: crm-bridge" in result.stdout, verb


def test_config_check_ok_and_connectors_list() -> None:
    ok = run("config", "check", "--config", "tests/fixtures/memory.toml")
    assert ok.returncode == 0, ok.stderr
    assert "configuration OK" in ok.stdout
    listing = run("connectors", "list")
    assert listing.returncode == 0
    assert "example_memory" in listing.stdout


def test_config_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[connectors.sf]\ntype = "example_memory"\nclient_secret = "abc"\n')
    result = run("config", "check", "--config", str(bad))
    assert result.returncode == 2
    assert "CRM_BRIDGE_CONNECTORS__SF__CLIENT_SECRET" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_reports_pass_and_fail_per_connector(tmp_path: Path) -> None:
    result = run("check", "--config", "tests/fixtures/memory.toml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("PASS") == 2
