"""The Dockerfile, the systemd unit and docs/operations.md, checked against the code.

No Docker engine runs where these tests run, so the image is not built here; its structure is
checked instead (non-root user, a health check on /healthz, the daemon as entrypoint).
"""

from __future__ import annotations

import configparser
import json
import re
import shlex
from pathlib import Path

from crm_bridge.ops.metrics import Metrics
from crm_bridge.ops.settings import ALERT_KINDS

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_the_image_runs_the_daemon_as_a_non_root_user() -> None:
    steps = final_stage()
    users = [rest for word, rest in steps if word == "USER"]
    assert users and users[-1] not in ("root", "0"), users
    entry = [json.loads(rest) for word, rest in steps if word == "ENTRYPOINT"]
    assert entry[-1] == ["crm-bridge", "daemon"]
    user_at = max(i for i, (word, _) in enumerate(steps) if word == "USER")
    entry_at = max(i for i, (word, _) in enumerate(steps) if word == "ENTRYPOINT")
    assert user_at < entry_at
    # No RUN after USER may need root (nothing is installed as the service user).
    assert not [rest for word, rest in steps[user_at:] if word == "RUN"]


def test_the_healthcheck_asks_healthz_on_the_port_the_daemon_serves() -> None:
    steps = final_stage()
    (cmd,) = [json.loads(rest) for word, rest in steps if word == "CMD"]
    port = cmd[cmd.index("--metrics-port") + 1]
    assert cmd[cmd.index("--metrics-host") + 1] == "0.0.0.0"
    (check,) = [rest for word, rest in steps if word == "HEALTHCHECK"]
    assert f"127.0.0.1:{port}/healthz" in check and "CMD" in check
    assert ("EXPOSE", port) in steps


def test_the_systemd_unit_runs_the_daemon_unprivileged_with_secrets_from_a_file() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "deploy/crm-bridge.service")
    service = unit["Service"]
    assert service["User"] not in ("root", "0")
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("crm-bridge") and argv[1] == "daemon" and "--metrics-port" in argv
    assert service["EnvironmentFile"].startswith("/etc/crm-bridge/")
    assert service["KillSignal"] == "SIGTERM"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_operations_doc_covers_every_metric_and_alert() -> None:
    doc = (ROOT / "docs/operations.md").read_text()
    names = {m.name for m in Metrics().registry.collect()}
    documented = set(re.findall(r"`(crm_bridge_[a-z_]+)`", doc))
    # prometheus-client drops the `_total` suffix from a counter's family name.
    assert {n.removesuffix("_total") for n in documented} >= names
    for kind in ALERT_KINDS:
        assert f"| `{kind}` |" in doc, kind
    for event in ("sync.cycle.end", "sync.dead_letter", "sync.guard.tripped", "http.retry"):
        assert f"`{event}`" in doc
