"""The worker's systemd template unit and docs/operations.md, checked against the code."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

from prometheus_client import CollectorRegistry

from crm_bridge.workers.metrics import WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]


def test_the_template_unit_runs_a_named_worker_with_its_port_as_instance() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "deploy/crm-bridge-worker@.service")
    service = unit["Service"]
    assert service["User"] not in ("root", "0")
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("crm-bridge") and argv[1] == "worker"
    assert argv[argv.index("--metrics-port") + 1] == "%i"
    assert "%i" in argv[argv.index("--name") + 1]  # two instances on one host differ by name
    assert service["KillSignal"] == "SIGTERM"
    assert service["EnvironmentFile"].startswith("/etc/crm-bridge/")


def test_operations_doc_covers_the_worker_metrics_and_events() -> None:
    doc = (ROOT / "docs/operations.md").read_text()
    registry = CollectorRegistry()
    WorkerMetrics(registry, "w")
    names = {m.name for m in registry.collect()}
    documented = {n.removesuffix("_total") for n in re.findall(r"`(crm_bridge_[a-z_]+)`", doc)}
    assert documented >= names
    for event in ("worker.job.start", "worker.job.failed", "worker.recover"):
        assert f"`{event}`" in doc
