"""``crm-bridge emulate``: run the local Salesforce and/or HubSpot emulators in the foreground.

Why a verb for this: developers and demo scripts need a Salesforce org and a HubSpot portal to
point crm-bridge (or a notebook with the vendor clients) at without an account, a sandbox or the
internet.  The emulators already exist as libraries (:mod:`crm_bridge.emulators`); this verb
starts them, prints everything needed to connect, and stops them cleanly on Ctrl-C / SIGTERM.

Why the output looks the way it does: the first block is ``name: value`` lines
(``salesforce: https://127.0.0.1:PORT``, ``salesforce.token_url: ...``) so scripts and tests can
parse it; then come ``--- title ---`` blocks with ready-to-paste snippets; the last line starts
with ``ready:`` once both servers accept connections.  Every credential printed is a fixed fake
of the emulator (see the vendors' ``settings.py``), so printing it is intended.
"""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from crm_bridge.cli._app import app, err_console, guarded, out
from crm_bridge.emulators import require_emulators
from crm_bridge.errors import ConfigError, ConfigProblem

__all__ = ["Which", "emulate"]

SF_CONNECTOR = "salesforce"
HS_CONNECTOR = "hubspot"
MK_CONNECTOR = "marketo"
_CERT_HOSTS = ("127.0.0.1", "localhost")


class Which(StrEnum):
    """Which emulator(s) to start."""

    salesforce = "salesforce"
    hubspot = "hubspot"
    marketo = "marketo"
    all = "all"


@dataclass
class _Block:
    """What one started emulator contributes to the printed output."""

    facts: list[tuple[str, str]]
    python: tuple[str, str]
    toml: list[str]
    env: list[tuple[str, str]]
    stop: Callable[[], None]
    notes: list[str] = field(default_factory=list)


def _problem(key: str, problem: str, fix: str) -> ConfigError:
    """A usage problem reported like a configuration problem: message, fix, exit code 2."""
    return ConfigError([ConfigProblem(key=key, problem=problem, fix=fix)], heading=problem)


def _read_data(path: Path, which: Which) -> dict[str, dict[str, Any] | None]:
    """Split ``--data`` into one snapshot per emulator.

    For ``all`` the file is ``{"salesforce": {...}, "hubspot": {...}}`` (either key may be left
    out).  For one emulator it is that emulator's bare snapshot (what ``GET
    /__emulator__/snapshot`` answers) or the same combined form, so one file serves every verb.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _problem("--data", f"cannot read {path}: {exc}", "pass a JSON snapshot") from None
    if not isinstance(data, dict):
        raise _problem("--data", f"{path} is not a JSON object", "pass a JSON snapshot")
    combined = any(k in data for k in (SF_CONNECTOR, HS_CONNECTOR, MK_CONNECTOR))
    if which is Which.all and not combined:
        raise _problem(
            "--data",
            f"{path} has neither a 'salesforce' nor a 'hubspot' key (nor 'marketo')",
            'for "all" pass {"salesforce": <snapshot>, "hubspot": <snapshot>, '
            '"marketo": <snapshot>}',
        )
    result: dict[str, dict[str, Any] | None] = {}
    for name in (SF_CONNECTOR, HS_CONNECTOR, MK_CONNECTOR):
        part = data.get(name) if combined else (data if which.value == name else None)
        if part is not None and not isinstance(part, dict):
            raise _problem("--data", f"{path}: {name!r} is not a JSON object", "fix the file")
        result[name] = part
    return result


def _records(counts: dict[str, int]) -> str:
    return " ".join(f"{name}={n}" for name, n in sorted(counts.items()) if n) or "none"


def _q(value: str) -> str:
    """A double-quoted literal that is valid both as Python and as a TOML basic string."""
    return json.dumps(value)


def _start_salesforce(
    host: str, port: int, seed_leads: int, data: dict[str, Any] | None, tls_dir: Path
) -> _Block:
    from crm_bridge.connectors.salesforce.emulator import SalesforceEmulator
    from crm_bridge.emulators.runtime import TlsMaterial

    emulator = SalesforceEmulator()
    if data is not None:
        _load_snapshot(emulator, data, "Salesforce")
    if seed_leads:
        emulator.seed(leads=seed_leads, seed=0)
    running = emulator.start(host=host, port=port, tls=TlsMaterial.create(tls_dir))
    with emulator.org.lock:
        counts = {
            name: sum(1 for r in store.records.values() if not r.get("IsDeleted"))
            for name, store in emulator.org.stores.items()
        }
    s = emulator.settings
    url = running.base_url
    python = "\n".join(
        [
            "import requests",
            "from simple_salesforce import Salesforce",
            "",
            "session = requests.Session()",
            "session.trust_env = False  # else REQUESTS_CA_BUNDLE would override verify",
            f"session.verify = {_q(running.ca_path)}",
            "token = session.post(",
            f"    {_q(running.token_url)},",
            "    data={",
            '        "grant_type": "client_credentials",',
            f'        "client_id": {_q(running.client_id)},',
            f'        "client_secret": {_q(running.client_secret)},',
            "    },",
            ').json()["access_token"]',
            "sf = Salesforce(",
            f"    instance_url={_q(running.instance_url)},",
            "    session_id=token,",
            "    session=session,",
            f"    version={_q(running.api_version)},",
            ")",
        ]
    )
    toml = [
        f"[connectors.{SF_CONNECTOR}]",
        'type = "salesforce"',
        f"instance_url = {_q(running.instance_url)}",
        f"token_url = {_q(running.token_url)}",
        f"client_id = {_q(running.client_id)}",
        'grant_type = "client_credentials"',
        f"api_version = {_q(running.api_version)}",
        f"ca_bundle = {_q(running.ca_path)}",
    ]
    env = [
        ("TYPE", "salesforce"),
        ("INSTANCE_URL", running.instance_url),
        ("TOKEN_URL", running.token_url),
        ("CLIENT_ID", running.client_id),
        ("CA_BUNDLE", running.ca_path),
        ("CLIENT_SECRET", running.client_secret),
    ]
    notes = []
    if host not in _CERT_HOSTS:
        notes.append(
            f"warning: the emulator's TLS certificate is for {' and '.join(_CERT_HOSTS)} only; "
            f"clients connecting to {host} will fail certificate verification"
        )
    return _Block(
        facts=[
            (SF_CONNECTOR, url),
            ("salesforce.token_url", running.token_url),
            ("salesforce.client_id", running.client_id),
            ("salesforce.client_secret", running.client_secret),
            ("salesforce.username", running.integration_username),
            ("salesforce.password", s.user_password),
            ("salesforce.ca_path", running.ca_path),
            ("salesforce.api_version", running.api_version),
            ("salesforce.control", f"{url}/__emulator__"),
            ("salesforce.records", _records(counts)),
        ],
        python=("simple-salesforce", python),
        toml=toml,
        env=[(f"CRM_BRIDGE_CONNECTORS__{SF_CONNECTOR.upper()}__{k}", v) for k, v in env],
        stop=running.stop,
        notes=notes,
    )


def _load_snapshot(emulator: Any, data: dict[str, Any], vendor: str) -> None:
    """Restore ``--data`` into a fresh emulator; a file that is no snapshot is a clear error."""
    try:
        emulator.load(data)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise _problem(
            "--data", f"not a {vendor} emulator snapshot: {exc!r}", "use GET /snapshot"
        ) from None


def _start_hubspot(host: str, port: int, seed_leads: int, data: dict[str, Any] | None) -> _Block:
    from crm_bridge.connectors.hubspot.emulator import HubSpotEmulator, RunningHubSpot

    emulator = HubSpotEmulator()
    if data is not None:
        _load_snapshot(emulator, data, "HubSpot")
    if seed_leads:
        emulator.seed(contacts=seed_leads, seed=0)
    running: RunningHubSpot = emulator.start(host=host, port=port)
    with emulator.portal.lock:
        counts = {name: len(store.live) for name, store in emulator.portal.stores.items()}
    url = running.base_url
    python = "\n".join(
        [
            "from hubspot import HubSpot",
            "",
            f"hs = HubSpot(access_token={_q(running.access_token)}, host={_q(url)})",
        ]
    )
    toml = [f"[connectors.{HS_CONNECTOR}]", 'type = "hubspot"', f"host = {_q(url)}"]
    env = [("TYPE", "hubspot"), ("HOST", url), ("ACCESS_TOKEN", running.access_token)]
    return _Block(
        facts=[
            (HS_CONNECTOR, url),
            ("hubspot.access_token", running.access_token),
            ("hubspot.client_id", running.client_id),
            ("hubspot.client_secret", running.client_secret),
            ("hubspot.portal_id", str(running.portal_id)),
            ("hubspot.control", f"{url}/__emulator__"),
            ("hubspot.records", _records(counts)),
        ],
        python=("hubspot-api-client", python),
        toml=toml,
        env=[(f"CRM_BRIDGE_CONNECTORS__{HS_CONNECTOR.upper()}__{k}", v) for k, v in env],
        stop=running.stop,
    )


def _start_marketo(host: str, port: int, seed_leads: int, data: dict[str, Any] | None) -> _Block:
    from crm_bridge.connectors.marketo.emulator import MarketoEmulator, RunningMarketo

    emulator = MarketoEmulator()
    if data is not None:
        _load_snapshot(emulator, data, "Marketo")
    if seed_leads:
        emulator.seed(leads=seed_leads, seed=0)
    running: RunningMarketo = emulator.start(host=host, port=port)
    with emulator.instance.lock:
        counts = {"leads": len(emulator.instance.leads), "lists": len(emulator.instance.lists)}
    url = running.base_url
    python = "\n".join(
        [
            "from marketorestpython.client import MarketoClient",
            "",
            f"mc = MarketoClient({_q(running.munchkin_id)}, {_q(running.client_id)}, "
            f"{_q(running.client_secret)})",
            f"mc.host = {_q(url)}  # the client builds https://<munchkin>.mktorest.com",
        ]
    )
    toml = [
        f"[connectors.{MK_CONNECTOR}]",
        'type = "marketo"',
        f"base_url = {_q(url)}",
        f"client_id = {_q(running.client_id)}",
    ]
    env = [
        ("TYPE", "marketo"),
        ("BASE_URL", url),
        ("CLIENT_ID", running.client_id),
        ("CLIENT_SECRET", running.client_secret),
    ]
    return _Block(
        facts=[
            (MK_CONNECTOR, url),
            ("marketo.identity_url", running.identity_url),
            ("marketo.client_id", running.client_id),
            ("marketo.client_secret", running.client_secret),
            ("marketo.munchkin_id", running.munchkin_id),
            ("marketo.control", f"{url}/__emulator__"),
            ("marketo.records", _records(counts)),
        ],
        python=("marketorestpython", python),
        toml=toml,
        env=[(f"CRM_BRIDGE_CONNECTORS__{MK_CONNECTOR.upper()}__{k}", v) for k, v in env],
        stop=running.stop,
    )


def render(blocks: list[_Block]) -> str:
    """The whole announcement: parseable facts first, then the paste-ready snippets."""
    lines = [f"{key}: {value}" for block in blocks for key, value in block.facts]
    lines.append("(all credentials above are the emulators' fixed fakes: safe to print)")
    for block in blocks:
        title, code = block.python
        lines += ["", f"--- python: {title} ---", code]
    lines += ["", "--- crm-bridge config.toml (secrets come from the environment below) ---"]
    for block in blocks:
        lines += [*block.toml, ""]
    lines += ["--- crm-bridge environment (enough on its own, without a config file) ---"]
    lines += [f"export {k}={shlex.quote(v)}" for block in blocks for k, v in block.env]
    lines += ["---"]
    return "\n".join(lines)


@contextmanager
def _stop_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM; the previous handlers come back afterwards."""
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@app.command("emulate")
def emulate(
    which: Annotated[
        Which,
        typer.Argument(help="salesforce, hubspot, marketo, or all (every one at once)."),
    ] = Which.all,
    port: Annotated[
        int,
        typer.Option(
            "--port",
            min=0,
            max=65533,
            help="Port to listen on; 0 picks a free one. With 'all': N for Salesforce, N+1 "
            "for HubSpot and N+2 for Marketo.",
        ),
    ] = 0,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    seed_leads: Annotated[
        int,
        typer.Option(
            "--seed-leads",
            min=0,
            help="Seed N leads (Salesforce, Marketo) / N contacts (HubSpot), with the "
            "accounts, companies, deals and users around them (deterministic).",
        ),
    ] = 0,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            exists=True,
            dir_okay=False,
            help="Start from a snapshot (JSON of GET /__emulator__/snapshot). For 'all': "
            '{"salesforce": {...}, "hubspot": {...}}.',
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the local Salesforce, HubSpot and/or Marketo emulator until Ctrl-C or SIGTERM.

    Prints the URLs, the (fake) credentials, the Salesforce CA path and paste-ready snippets for
    simple-salesforce, hubspot-api-client, marketorestpython and crm-bridge's own connectors.

    Example: crm-bridge emulate all --seed-leads 500 --port 8443
    """
    with guarded():
        require_emulators("emulate")
        if data is not None and seed_leads:
            raise _problem("--seed-leads", "--data and --seed-leads do not mix", "pass one of them")
        snapshots = (
            _read_data(data, which)
            if data is not None
            else {SF_CONNECTOR: None, HS_CONNECTOR: None, MK_CONNECTOR: None}
        )
        with ExitStack() as stack:
            tls_dir = Path(tempfile.mkdtemp(prefix="crm-bridge-emulate-"))
            stack.callback(shutil.rmtree, tls_dir, ignore_errors=True)
            blocks: list[_Block] = []
            try:
                if which in (Which.salesforce, Which.all):
                    blocks.append(
                        _start_salesforce(host, port, seed_leads, snapshots[SF_CONNECTOR], tls_dir)
                    )
                    stack.callback(blocks[-1].stop)
                if which in (Which.hubspot, Which.all):
                    hs_port = port + 1 if which is Which.all and port else port
                    blocks.append(
                        _start_hubspot(host, hs_port, seed_leads, snapshots[HS_CONNECTOR])
                    )
                    stack.callback(blocks[-1].stop)
                if which in (Which.marketo, Which.all):
                    mk_port = port + 2 if which is Which.all and port else port
                    blocks.append(
                        _start_marketo(host, mk_port, seed_leads, snapshots[MK_CONNECTOR])
                    )
                    stack.callback(blocks[-1].stop)
            except OSError as exc:
                raise _problem(
                    "--port",
                    f"cannot listen on {host}: {exc.strerror or exc}",
                    "pick another --port",
                ) from None
            with _stop_signals() as stop:
                for block in blocks:
                    for note in block.notes:
                        err_console.print(note, markup=False)
                out.print(render(blocks), markup=False)
                out.print("ready: serving until Ctrl-C or SIGTERM", markup=False)
                sys.stdout.flush()
                stop.wait()
        out.print("stopped", markup=False)
