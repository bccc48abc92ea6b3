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
    _funnel_is_realistic(out)


def _rows(out: str, title: str) -> dict[str, list[str]]:
    """The rows of one rich table of the demo's output: first cell -> the other cells."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(title))
    rows: dict[str, list[str]] = {}
    for line in lines[start + 4 :]:
        if "└" in line:
            break
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if cells[0]:
            rows[cells[0]] = cells[1:]
    return rows


def _funnel_is_realistic(out: str) -> None:
    """Every stage counted, with conversion; campaigns and engagement not all "(none)"."""
    funnel = out[out.index("funnel (`crm-bridge funnel --backfill`)") :]
    stages = _rows(funnel, "funnel:")
    assert list(stages) == ["MQL", "SAL", "SQL", "Opportunity", "Won"]
    counts = [int(cells[0]) for cells in stages.values()]
    assert counts == sorted(counts, reverse=True) and counts[-1] > 0
    assert all(cells[1].endswith("%") for name, cells in stages.items() if name != "MQL")
    campaigns = _rows(funnel, "by campaign")
    assert len([c for c in campaigns if c != "(none)"]) >= 3
    buckets = _rows(funnel, "by engagement")
    assert {"0", "1-2", "3-5", "6+"} <= set(buckets)
    reps = _rows(funnel, "SAL stage: SLA attainment per rep")
    assert reps and all(cells[3].endswith("%") for cells in reps.values())
