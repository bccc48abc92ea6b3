"""``crm-bridge worker`` refuses a SQLite store with the key to change and the fix."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from crm_bridge.cli import app
from crm_bridge.errors import ConfigError


def test_worker_refuses_sqlite(tmp_path: Path) -> None:
    config = tmp_path / "crm-bridge.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "state.db"}"\n\n'
        '[connectors.memory_a]\ntype = "example_memory"\n\n'
        '[connectors.memory_b]\ntype = "example_memory"\n'
    )
    result = CliRunner().invoke(app, ["worker", "--config", str(config)])
    assert result.exit_code == ConfigError.exit_code, result.output
    assert "store.url" in result.output
    assert "PostgreSQL" in result.output
    assert "crm-bridge daemon" in result.output
    assert "CRM_BRIDGE_STORE__URL" in result.output
