"""``crm-bridge emulate`` as a user runs it: a subprocess, its printed URLs, the real vendor clients.

Every test reads what the command printed and talks to the servers with nothing else: the
``salesforce: https://...`` facts, the pasted Python snippets (executed as they are), the
``export`` lines and the TOML block (fed to ``crm-bridge check``).  Stopping is checked by
signalling the process and polling its state against a deadline.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hubspot.crm.contacts import PublicObjectSearchRequest, SimplePublicObjectInputForCreate

from crm_bridge.connectors.hubspot.emulator import HubSpotEmulator
from crm_bridge.connectors.salesforce.emulator import SalesforceEmulator

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
FACT = re.compile(r"^([a-z_]+(?:\.[a-z_]+)?): (\S.*)$")


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_BRIDGE_")}
    env.update(extra or {})
    return env


class Emulate:
    """One ``python -m crm_bridge emulate ...`` process and what it printed."""

    def __init__(self, *args: str, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crm_bridge", "emulate", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_clean_env(),
            cwd=cwd,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        self._stderr: list[str] = []
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()

    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        self._stderr.extend(self.proc.stderr)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def wait_ready(self) -> None:
        """Collect stdout until the ``ready:`` line (or fail if the process dies first)."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no 'ready:' line within {START_TIMEOUT}s: {self.stdout}")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(timeout=STOP_TIMEOUT)
                pytest.fail(f"emulate exited {self.proc.returncode} early: {self.stderr}")
            self.stdout.append(line)
            if line.startswith("ready:"):
                return

    @property
    def facts(self) -> dict[str, str]:
        """The ``name: value`` lines before the first blank line."""
        found: dict[str, str] = {}
        for line in self.stdout:
            if not line:
                break
            match = FACT.match(line)
            if match:
                found[match.group(1)] = match.group(2)
        return found

    def section(self, title: str) -> str:
        """The text of the ``--- title... ---`` block."""
        start = next(i for i, line in enumerate(self.stdout) if line.startswith(f"--- {title}"))
        body: list[str] = []
        for line in self.stdout[start + 1 :]:
            if line.startswith("---"):
                break
            body.append(line)
        return "\n".join(body).strip() + "\n"

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Signal the process and poll until it has exited; its exit code."""
        self.proc.send_signal(sig)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                pytest.fail(f"emulate still running {STOP_TIMEOUT}s after {sig.name}")
            time.sleep(0.02)  # ok-sleep: polling the process state against a deadline
        # Drain the rest of stdout (the pump thread ends with None at EOF).
        while (line := self._lines.get(timeout=STOP_TIMEOUT)) is not None:
            self.stdout.append(line)
        return self.proc.returncode

    def kill(self) -> None:
        """Teardown after a failed test: SIGTERM (so the CA directory goes), then SIGKILL."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def emulate(tmp_path: Path) -> Iterator[Any]:
    started: list[Emulate] = []

    def start(*args: str) -> Emulate:
        process = Emulate(*args, cwd=tmp_path)
        started.append(process)
        process.wait_ready()
        return process

    yield start
    for process in started:
        process.kill()


def free_port_pair() -> int:
    """A port N such that N, N+1 and N+2 are all free on 127.0.0.1 right now ('all' uses 3)."""
    for _ in range(100):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            if port >= 65534:
                continue
            with socket.socket() as second, socket.socket() as third:
                try:
                    second.bind(("127.0.0.1", port + 1))
                    third.bind(("127.0.0.1", port + 2))
                except OSError:
                    continue
        return port
    raise RuntimeError("no three consecutive free ports")


def clients(proc: Emulate) -> dict[str, Any]:
    """Execute the printed Python snippets as a user would paste them; their globals."""
    namespace: dict[str, Any] = {}
    exec(proc.section("python: simple-salesforce"), namespace)
    exec(proc.section("python: hubspot-api-client"), namespace)
    return namespace


def control_get(proc: Emulate, vendor: str, path: str) -> Any:
    verify: ssl.SSLContext | bool = True
    if vendor == "salesforce":
        verify = ssl.create_default_context(cafile=proc.facts["salesforce.ca_path"])
    with httpx.Client(verify=verify, trust_env=False, timeout=30) as client:
        resp = client.get(f"{proc.facts[f'{vendor}.control']}/{path}")
    resp.raise_for_status()
    return resp.json()


def hubspot_canonical(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The snapshot with each object's records in id order.

    The portal lists records in its write order (by ``updatedAt``), which a load rebuilds from
    the data rather than from the file's order; the content is what must round-trip.
    """
    objects = {
        name: {part: sorted(rows, key=lambda row: row[0]) for part, rows in store.items()}
        for name, store in snapshot["objects"].items()
    }
    return {**snapshot, "objects": objects}


def run_cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crm_bridge", *args],
        capture_output=True,
        text=True,
        env=_clean_env(env),
        cwd=cwd,
        timeout=60,
    )


def test_all_on_port_n_serves_the_real_clients_and_exits_0_on_sigterm(emulate: Any) -> None:
    port = free_port_pair()
    proc = emulate("all", "--port", str(port))
    assert proc.facts["salesforce"] == f"https://127.0.0.1:{port}"
    assert proc.facts["hubspot"] == f"http://127.0.0.1:{port + 1}"
    assert proc.facts["marketo"] == f"http://127.0.0.1:{port + 2}"
    ca_path = Path(proc.facts["salesforce.ca_path"])
    assert ca_path.is_file()

    ns = clients(proc)
    sf, hs = ns["sf"], ns["hs"]
    created = sf.Lead.create(
        {"LastName": "Lovelace", "Company": "Analytical", "Email": "ada@emulate.example"}
    )
    rows = sf.query("SELECT Id, LastName FROM Lead WHERE Email = 'ada@emulate.example'")
    assert [(r["Id"], r["LastName"]) for r in rows["records"]] == [(created["id"], "Lovelace")]

    contact = hs.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(
            properties={"email": "grace@emulate.example", "firstname": "Grace"}
        )
    )
    read = hs.crm.contacts.basic_api.get_by_id(contact.id, properties=["email", "firstname"])
    assert read.properties["email"] == "grace@emulate.example"
    assert read.properties["firstname"] == "Grace"
    # The calls really reached these two servers (and were counted there).
    assert control_get(proc, "salesforce", "calls")["sobject"] == 1
    assert control_get(proc, "hubspot", "calls")["objects"] == 2

    # The clients' keep-alive connections are still open: stopping must not wait on them.
    assert proc.stop(signal.SIGTERM) == 0, proc.stderr
    assert proc.stdout[-1] == "stopped"
    assert not ca_path.exists(), "the throwaway CA directory is removed on exit"
    ns["session"].close()


def test_seed_leads_are_visible_through_the_clients_and_sigint_exits_0(emulate: Any) -> None:
    proc = emulate("all", "--port", "0", "--seed-leads", "50")
    sf_port = proc.facts["salesforce"].rsplit(":", 1)[1]
    hs_port = proc.facts["hubspot"].rsplit(":", 1)[1]
    assert sf_port != hs_port
    assert "Lead=50" in proc.facts["salesforce.records"].split()
    assert "contacts=50" in proc.facts["hubspot.records"].split()

    ns = clients(proc)
    assert ns["sf"].query("SELECT COUNT() FROM Lead")["totalSize"] == 50
    ids = [r["Id"] for r in ns["sf"].query_all("SELECT Id FROM Lead")["records"]]
    assert len(set(ids)) == 50
    found = ns["hs"].crm.contacts.search_api.do_search(
        public_object_search_request=PublicObjectSearchRequest(limit=1)
    )
    assert found.total == 50

    assert proc.stop(signal.SIGINT) == 0, proc.stderr
    ns["session"].close()


def test_data_round_trips_through_the_control_plane_snapshot(emulate: Any, tmp_path: Path) -> None:
    sf_emulator = SalesforceEmulator()
    sf_emulator.seed(leads=20, seed=7)
    hs_emulator = HubSpotEmulator()
    hs_emulator.seed(contacts=20, seed=7)
    original = json.loads(
        json.dumps({"salesforce": sf_emulator.snapshot(), "hubspot": hs_emulator.snapshot()})
    )
    data = tmp_path / "both.json"
    data.write_text(json.dumps(original))

    proc = emulate("all", "--data", str(data))
    assert control_get(proc, "salesforce", "snapshot") == original["salesforce"]
    assert hubspot_canonical(control_get(proc, "hubspot", "snapshot")) == hubspot_canonical(
        original["hubspot"]
    )
    assert "Lead=20" in proc.facts["salesforce.records"].split()
    assert "contacts=20" in proc.facts["hubspot.records"].split()
    assert proc.stop() == 0, proc.stderr


def test_one_emulator_takes_a_bare_snapshot(emulate: Any, tmp_path: Path) -> None:
    hs_emulator = HubSpotEmulator()
    hs_emulator.seed(contacts=5, seed=1)
    snapshot = json.loads(json.dumps(hs_emulator.snapshot()))
    data = tmp_path / "hubspot.json"
    data.write_text(json.dumps(snapshot))

    proc = emulate("hubspot", "--data", str(data))
    assert "salesforce" not in proc.facts
    assert "python: simple-salesforce" not in "\n".join(proc.stdout)
    assert hubspot_canonical(control_get(proc, "hubspot", "snapshot")) == hubspot_canonical(
        snapshot
    )
    assert proc.stop() == 0, proc.stderr


def test_marketo_alone_serves_the_marketo_connector_and_its_seed(emulate: Any) -> None:
    from pydantic import SecretStr

    from crm_bridge.connectors.marketo import MarketoConnector, MarketoSettings

    proc = emulate("marketo", "--seed-leads", "7")
    assert "hubspot" not in proc.facts and "salesforce" not in proc.facts
    assert proc.facts["marketo.records"] == "leads=7"
    settings = MarketoSettings(
        base_url=proc.facts["marketo"],
        client_id=proc.facts["marketo.client_id"],
        client_secret=SecretStr(proc.facts["marketo.client_secret"]),
    )
    with MarketoConnector(settings, name="mkto") as conn:
        assert "lead fields" in conn.check()
        assert len(list(conn.changes("leads", None))) == 7
    assert control_get(proc, "marketo", "calls")["leads"] >= 2
    assert proc.stop() == 0, proc.stderr


def test_printed_env_and_toml_configure_crm_bridges_own_connectors(
    emulate: Any, tmp_path: Path
) -> None:
    proc = emulate("all")
    exports = dict(
        line.removeprefix("export ").split("=", 1)
        for line in proc.section("crm-bridge environment").splitlines()
    )
    assert set(exports) >= {
        "CRM_BRIDGE_CONNECTORS__SALESFORCE__CLIENT_SECRET",
        "CRM_BRIDGE_CONNECTORS__HUBSPOT__ACCESS_TOKEN",
        "CRM_BRIDGE_CONNECTORS__MARKETO__CLIENT_SECRET",
    }

    env_only = run_cli("check", cwd=tmp_path, env=exports)
    assert env_only.returncode == 0, env_only.stdout + env_only.stderr
    assert env_only.stdout.count("PASS") == 3, env_only.stdout

    config = tmp_path / "config.toml"
    config.write_text(proc.section("crm-bridge config.toml"))
    secrets = {
        k: v for k, v in exports.items() if k.endswith(("__CLIENT_SECRET", "__ACCESS_TOKEN"))
    }
    with_toml = run_cli("check", "--config", str(config), cwd=tmp_path, env=secrets)
    assert with_toml.returncode == 0, with_toml.stdout + with_toml.stderr
    assert with_toml.stdout.count("PASS") == 3, with_toml.stdout
    assert proc.stop() == 0, proc.stderr


@pytest.mark.parametrize(
    ("args", "content", "message"),
    [
        (["all", "--seed-leads", "5", "--data", "{data}"], "{}", "do not mix"),
        (["all", "--data", "{data}"], '{"format": 1}', "neither a 'salesforce' nor"),
        (["salesforce", "--data", "{data}"], "[1, 2]", "not a JSON object"),
        (["salesforce", "--data", "{data}"], "{not json", "cannot read"),
        (["salesforce", "--data", "{data}"], '{"format": 99}', "not a Salesforce emulator"),
    ],
)
def test_bad_data_exits_2_without_traceback(
    tmp_path: Path, args: list[str], content: str, message: str
) -> None:
    data = tmp_path / "data.json"
    data.write_text(content)
    result = run_cli("emulate", *(a.format(data=data) for a in args), cwd=tmp_path, env={})
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "ready:" not in result.stdout


def test_a_port_in_use_exits_2_without_traceback(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("emulate", "hubspot", "--port", str(port), cwd=tmp_path, env={})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot listen" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_has_an_example() -> None:
    result = run_cli("emulate", "--help", cwd=ROOT, env={})
    assert result.returncode == 0
    assert "Example: crm-bridge emulate" in result.stdout
