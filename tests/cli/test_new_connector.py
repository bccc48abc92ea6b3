"""``crm-bridge new-connector``: the scaffold installs, passes the kit and syncs, untouched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from crm_bridge.scaffold import ScaffoldError, scaffold


def test_a_scaffolded_connector_installs_passes_the_kit_and_syncs(tmp_path: Path) -> None:
    made = subprocess.run(
        [sys.executable, "-m", "crm_bridge", "new-connector", "acme_crm", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    root = tmp_path / "crm-bridge-acme-crm"
    assert (root / "src" / "crm_bridge_acme_crm" / "connector.py").is_file()
    site = tmp_path / "site"
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    env = {**os.environ, "PYTHONPATH": str(site)}
    listed = subprocess.run(
        [sys.executable, "-m", "crm_bridge", "connectors", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert "acme_crm" in listed.stdout, listed.stdout + listed.stderr
    tests = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-rA",
            str(root / "tests"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=root,
    )
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert "PASSED tests/test_sync_smoke.py::test_people_flow_both_ways_and_settle" in tests.stdout
    assert (
        "test_structure_declared_capabilities" in tests.stdout
        or "conformance" in tests.stdout.lower()
    )


def test_a_bad_name_is_refused_with_the_rule(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match="lowercase"):
        scaffold("Acme-CRM", tmp_path)
    scaffold("acme", tmp_path)
    with pytest.raises(ScaffoldError, match="already exists"):
        scaffold("acme", tmp_path)
