"""`crm-bridge demo` -- the README's main command -- runs end to end and proves agreement."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_and_both_sides_agree() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_BRIDGE_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "crm_bridge",
            "demo",
            "--leads",
            "300",
            "--contacts",
            "150",
            "--cycles",
            "2",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    agree = next(line for line in out.splitlines() if "linked lead/contact pairs agree" in line)
    agreed, _, total = agree.split()[:3]
    assert int(agreed) == int(total) > 0
    assert "cycle 2:" in out
    for act in ("remind=1", "escalate=1", "reassign=1", "recycle=1"):
        assert act in out, act
    assert "reason capture by rep" in out
