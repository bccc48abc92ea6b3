"""The verbs as an admin runs them: subprocesses against both emulators running in this process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crm_bridge.connectors.hubspot.emulator import HubSpotEmulatorSettings
from crm_bridge.demo.sandbox import Sandbox
from crm_bridge.errors import AuthError, ConfigError
from tests.ops.conftest import Receiver

TOKEN_VAR = "CRM_BRIDGE_CONNECTORS__HUBSPOT__ACCESS_TOKEN"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox.start(
        workdir=tmp_path_factory.mktemp("ops-cli"),
        hubspot_settings=HubSpotEmulatorSettings(rate_limits_enabled=False),
    ) as running:
        yield running


class Cli:
    def __init__(self, sandbox: Sandbox, workdir: Path) -> None:
        config, secrets = sandbox.write_config(workdir)
        self.config = config
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_BRIDGE_")}
        self.env.update(secrets)
        self.env["CRM_BRIDGE_STORE__URL"] = f"sqlite:///{workdir / 'state.sqlite3'}"
        self.env["CRM_BRIDGE_DAEMON__INTERVAL_SECONDS"] = "1"
        self.env["CRM_BRIDGE_LOGGING__FORMAT"] = "json"
        self.env["COLUMNS"] = "250"

    def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "crm_bridge", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            env={**self.env, **env},
            timeout=120,
        )


def events(stderr: str) -> list[dict[str, object]]:
    found = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


@pytest.fixture
def cli(sandbox: Sandbox, tmp_path: Path) -> Iterator[Cli]:
    sandbox.hubspot.emulator.reset()
    yield Cli(sandbox, tmp_path)
    sandbox.hubspot.emulator.reset()


def test_a_failing_sync_exits_non_zero_and_raises_an_alert(cli: Cli, receiver: Receiver) -> None:
    failed = cli(
        "sync",
        **{TOKEN_VAR: "refused-token", "CRM_BRIDGE_ALERTS__WEBHOOKS__OPS__URL": receiver.url},
    )
    assert failed.returncode == AuthError.exit_code, failed.stderr
    (alert,) = receiver.events()
    assert alert["type"] == "crm_bridge.cycle_failed" and alert["error_class"] == "AuthError"
    assert "SECRET-path" not in failed.stdout + failed.stderr
    ends = [e for e in events(failed.stderr) if e["event"] == "sync.cycle.end"]
    assert ends and ends[0]["status"] == "failed"


def test_the_daemon_serves_metrics_and_logs_its_events_without_library_noise(cli: Cli) -> None:
    ran = cli("daemon", "--cycles", "1", "--metrics-port", "0")
    assert ran.returncode == 0, ran.stderr
    assert "serving http://127.0.0.1:" in ran.stdout and "/metrics and /healthz" in ran.stdout
    names = [e["event"] for e in events(ran.stderr)]
    assert "ops.listening" in names and "daemon.start" in names and "daemon.stop" in names
    assert "sync.cycle.end" in names
    assert not any(str(e.get("logger", "")).startswith("alembic") for e in events(ran.stderr))


def test_a_busy_metrics_port_is_a_config_error(cli: Cli) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        ran = cli("daemon", "--cycles", "1", "--metrics-port", str(port))
    assert ran.returncode == ConfigError.exit_code
    assert f"cannot listen on 127.0.0.1:{port}" in ran.stderr


def test_explain_answers_after_a_sync(cli: Cli, sandbox: Sandbox) -> None:
    owner = next(iter(sandbox.align_owners().values()))  # a user both sides know by e-mail
    sf = sandbox.salesforce.simple_salesforce()
    lead = sf.Lead.create(
        {"LastName": "L", "Company": "C", "Email": "x@lead.example", "OwnerId": owner}
    )["id"]
    synced = cli("sync")
    assert synced.returncode == 0, synced.stderr
    shown = cli("explain", "x@lead.example")
    assert shown.returncode == 0, shown.stderr
    assert f"crm {lead}" in shown.stdout
    assert shown.stdout.strip().splitlines()[-1].startswith("in sync")
    as_json = json.loads(cli("explain", lead, "--json", "--offline").stdout)
    assert as_json["link"]["crm_id"] == lead and as_json["summary"]
