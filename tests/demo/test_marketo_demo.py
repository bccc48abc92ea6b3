"""`crm-bridge demo --pair marketo_hubspot`: the Marketo <-> HubSpot CRM loop, end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_BRIDGE_")}
    return subprocess.run(
        [sys.executable, "-m", "crm_bridge", "demo", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


def test_marketo_demo_syncs_breaches_the_sla_and_pushes_a_reason() -> None:
    result = _demo("--pair", "marketo_hubspot", "--leads", "120", "--cycles", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "sync cycle 1: created=122" in out
    assert "sync cycle 2: nothing written" in out and "echo cycle: nothing written" in out
    assert "remind=1 recycle=1" in out and "'SLA nurture' list members=1" in out
    assert "lastLossReason='price'" in out and "list members=1" in out
    assert "122 HubSpot contacts, 122 Marketo leads; final cycle: nothing written" in out
    assert "Marketo loop complete" in out
    assert "client_secret" not in out.lower()


def test_unknown_demo_pair_is_a_config_error() -> None:
    result = _demo("--pair", "nope")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--pair" in result.stdout + result.stderr
