"""Exit codes of ``sync``, ``daemon --cycles N`` and ``status`` when a pair's run fails.

A scheduler or a health check only sees the exit code, so each verb runs as a subprocess the way
an admin would run it: the config and secrets :meth:`Sandbox.write_config` writes, against both
emulators running in this process.  A run is made to fail with a HubSpot token the emulator
refuses (``AuthError``, exit 3, no retry) or with a 401 injected once through the fault plane.
Each test has its own store; the emulators hold no data, so a clean cycle is quick.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crm_bridge.cli.sync_cmd import LAST_RUN_FAILED_EXIT
from crm_bridge.connectors.hubspot.emulator import HubSpotEmulatorSettings
from crm_bridge.demo.sandbox import Sandbox
from crm_bridge.errors import AuthError

RUN_TIMEOUT = 120.0
TOKEN_VAR = "CRM_BRIDGE_CONNECTORS__HUBSPOT__ACCESS_TOKEN"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox.start(
        workdir=tmp_path_factory.mktemp("exit-codes"),
        hubspot_settings=HubSpotEmulatorSettings(rate_limits_enabled=False),
    ) as running:
        yield running


class Cli:
    """``python -m crm_bridge VERB --config ...`` with this test's store and secrets."""

    def __init__(self, sandbox: Sandbox, store: Path) -> None:
        config, secrets = sandbox.write_config(store.parent)
        self.config = config
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_BRIDGE_")}
        self.env.update(secrets)
        self.env["CRM_BRIDGE_STORE__URL"] = f"sqlite:///{store}"
        self.env["CRM_BRIDGE_DAEMON__INTERVAL_SECONDS"] = "1"  # the smallest the config allows
        self.env["COLUMNS"] = "250"  # status's table must not fold the error text

    def __call__(self, *args: str, bad_token: bool = False) -> subprocess.CompletedProcess[str]:
        env = {**self.env, TOKEN_VAR: "refused-token"} if bad_token else self.env
        return subprocess.run(
            [sys.executable, "-m", "crm_bridge", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            env=env,
            timeout=RUN_TIMEOUT,
        )


@pytest.fixture
def cli(sandbox: Sandbox, tmp_path: Path) -> Iterator[Cli]:
    sandbox.hubspot.emulator.reset()
    yield Cli(sandbox, tmp_path / "state.sqlite3")
    sandbox.hubspot.emulator.reset()


def test_daemon_exits_with_the_code_of_its_pairs_last_failure(cli: Cli, sandbox: Sandbox) -> None:
    """Both cycles failing exits like ``sync`` (3, AuthError); a pair whose last cycle recovered
    counts as healthy (0), although an earlier cycle failed."""
    failing = cli("daemon", "--cycles", "2", bad_token=True)
    assert failing.returncode == AuthError.exit_code, failing.stdout + failing.stderr
    assert "daemon stopped after 2 cycles (2 failed)" in failing.stdout
    assert "the last run of pair main did not succeed (exit 3)" in failing.stderr

    sandbox.hubspot.control("POST", "faults", {"path": "/crm/", "status": 401, "times": 1})
    recovered = cli("daemon", "--cycles", "2")
    assert "(1 failed)" in recovered.stdout, recovered.stdout + recovered.stderr
    assert recovered.returncode == 0, recovered.stderr


def test_status_exits_non_zero_while_the_last_run_failed(cli: Cli) -> None:
    """``status`` exits 10 after a failed ``sync`` (which itself exits 3) and 0 once a later run
    succeeded; the error names the pair and how its run ended."""
    assert cli("status").returncode == 0  # no runs yet
    failed_sync = cli("sync", bad_token=True)
    assert failed_sync.returncode == AuthError.exit_code, failed_sync.stderr
    after_failure = cli("status")
    assert after_failure.returncode == LAST_RUN_FAILED_EXIT == 10, after_failure.stderr
    assert "the last run of pair main (failed) did not succeed" in after_failure.stderr
    assert "INVALID_AUTHENTICATION" in after_failure.stdout  # the table is still printed
    clean_sync = cli("sync")
    assert clean_sync.returncode == 0, clean_sync.stderr
    after_recovery = cli("status")
    assert after_recovery.returncode == 0, after_recovery.stderr


def test_a_failing_job_named_like_a_pair_does_not_decide_the_daemons_exit_code() -> None:
    """The daemon reports the ``sla`` job's errors by name through the same ``on_error`` as pair
    runs; a pair called ``sla`` whose own run succeeded must still count as healthy."""
    from crm_bridge.cli.sync_cmd import _PairOutcomes
    from crm_bridge.errors import TransientError

    outcomes = _PairOutcomes(["sla", "main"])

    def sla_job() -> str:
        raise TransientError("webhook timed out")

    job = outcomes.job(sla_job)
    outcomes.succeeded("sla")
    with pytest.raises(TransientError) as exc:
        job()
    outcomes.failed("sla", exc.value)
    assert outcomes.failing == {}
    outcomes.failed("main", AuthError("refused"))
    outcomes.failed("sla", TransientError("pair run failed"))
    assert outcomes.failing == {"main": 3, "sla": 4}
    outcomes.succeeded("main")
    assert outcomes.failing == {"sla": 4}
