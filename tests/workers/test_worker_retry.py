"""One worker against a pair whose writer lock someone else holds: it retries, never interleaves.

The test process holds pair ``main``'s store writer lock (as a manual ``crm-bridge sync`` would)
while a real ``crm-bridge worker`` runs: the worker's job waits ``--lock-wait``, fails, and is
retried by procrastinate with a growing wait -- without ever starting a run.  Once the lock is
released the retry succeeds.  Along the way the worker's own ``/metrics`` count the failed and
successful jobs, and ``crm-bridge status`` lists the worker as alive, then as stopped.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from crm_bridge.connectors.hubspot.emulator import HubSpotEmulatorSettings
from crm_bridge.demo.sandbox import Sandbox
from crm_bridge.store import Store

pytestmark = pytest.mark.postgres

DEADLINE = 40.0


@pytest.fixture
def world(
    pg_schema: Callable[[], str], tmp_path: Path
) -> Iterator[tuple[Sandbox, Path, dict[str, str]]]:
    sb = Sandbox.start(
        store_url=pg_schema(),
        workdir=tmp_path,
        hubspot_settings=HubSpotEmulatorSettings(rate_limits_enabled=False),
    )
    try:
        sb.salesforce.emulator.seed(leads=10, seed=3)
        sb.hubspot.emulator.seed(contacts=10, seed=4)
        config, secrets = sb.write_config(tmp_path)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_BRIDGE_")}
        env.update(secrets)
        yield sb, config, env
    finally:
        sb.stop()


def _poll(what: str, check: Callable[[], object], log: Path) -> object:
    deadline = time.monotonic() + DEADLINE
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(
                f"{what}: not reached in {DEADLINE} s\n{log.read_text(errors='replace')[-4000:]}"
            )
        time.sleep(0.05)  # ok-sleep: deadline poll of the worker's output and the store


def _status(config: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "crm_bridge", "status", "--config", str(config)],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout


def test_worker_retries_while_the_pair_lock_is_held_then_syncs(
    world: tuple[Sandbox, Path, dict[str, str]], tmp_path: Path
) -> None:
    sb, config, env = world
    log = tmp_path / "worker.out"
    store = Store.open(sb.store_url)
    proc: subprocess.Popen[bytes] | None = None
    try:
        with store.writer_lock("writer:main"):
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "crm_bridge",
                        "worker",
                        "--config",
                        str(config),
                        "--name",
                        "w-retry",
                        "--heartbeat",
                        "0.5",
                        "--lock-wait",
                        "0.5",
                        "--retries",
                        "5",
                        "--metrics-port",
                        "0",
                    ],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            _poll(
                "two failed attempts on the held lock",
                lambda: (
                    log.read_text(errors="replace").count("failed: writer lock 'writer:main'") >= 2
                ),
                log,
            )
            with store.transaction(readonly=True) as tx:
                assert tx.last_runs("main") == []  # no run started while the lock was held
            alive = _status(config, env)
            assert re.search(r"w-retry\s*│\s*yes", alive), alive

        def synced() -> bool:
            with store.transaction(readonly=True) as tx:
                return any(r.status == "ok" for r in tx.last_runs("main"))

        _poll("a successful cycle once the lock is free", synced, log)
        url = re.search(r"serving (http://\S+)/metrics", log.read_text())
        assert url, log.read_text()
        metrics = httpx.get(f"{url.group(1)}/metrics", timeout=10).text
        failed = re.search(
            r'crm_bridge_worker_jobs_total\{outcome="failed",pair="main",worker="w-retry"\} (\S+)',
            metrics,
        )
        ok = re.search(
            r'crm_bridge_worker_jobs_total\{outcome="ok",pair="main",worker="w-retry"\} (\S+)',
            metrics,
        )
        assert failed and float(failed.group(1)) >= 2, metrics
        assert ok and float(ok.group(1)) >= 1, metrics
        assert 'crm_bridge_worker_info{worker="w-retry"} 1.0' in metrics
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]
        stopped = _status(config, env)
        assert re.search(r"w-retry\s*│\s*no", stopped), stopped
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        store.close()
