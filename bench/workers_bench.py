"""Workers benchmark: four pairs' first sync on 1 worker vs 3 workers; wall time, calls vs limits.

Prints figures only.  Each run gets a fresh PostgreSQL schema and four fresh Salesforce +
HubSpot sandboxes (each pair its own org and portal, seeded alike), with HubSpot's burst limit
set low (``--burst`` calls per ``--window`` s, the connectors configured the same) so that, as
with real vendor limits, a pair's cycle spends most of its time waiting for its portal's window
rather than on CPU.  ``crm-bridge worker`` processes are started as an admin would; the clock
runs from their start until every pair has finished one successful cycle.

Per run it prints: wall time, the cycles' API calls (from the runs table), and per portal the
most calls the emulator ever counted in one burst window against the limit, and how many calls
it refused (429) -- the vendor's own view of whether the fleet stayed under each account's limit.

    python bench/workers_bench.py                       # 1 and 3 workers
    python bench/workers_bench.py --workers 1 2 3 --leads 400
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from crm_bridge.connectors.hubspot.emulator import HubSpotEmulatorSettings
from crm_bridge.demo.sandbox import DEFAULT_PAIR, Sandbox, _toml
from crm_bridge.store import Store

ADMIN = os.environ.get("CRM_BRIDGE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
PAIRS = ("p0", "p1", "p2", "p3")
DEFAULT_OWNER = "maria.manager@example.com"


def _schema() -> tuple[str, str]:
    name = f"crmb_workers_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    url = make_url(ADMIN).set(drivername="postgresql+psycopg")
    return name, url.update_query_dict({"options": f"-csearch_path={name}"}).render_as_string(
        hide_password=False
    )


def _config(
    directory: Path, store_url: str, boxes: dict[str, Sandbox], burst: int, window: float
) -> tuple[Path, dict[str, str]]:
    env: dict[str, str] = {}
    lines = ["[store]", f"url = {_toml(store_url)}", "", "[daemon]", "interval_seconds = 600", ""]
    for n, (pair, sb) in enumerate(boxes.items()):
        tables = sb.connector_settings()
        sf, hs = tables["salesforce"], tables["hubspot"]
        env[f"CRM_BRIDGE_CONNECTORS__SF{n}__CLIENT_SECRET"] = str(sf.pop("client_secret"))
        env[f"CRM_BRIDGE_CONNECTORS__HS{n}__ACCESS_TOKEN"] = str(hs.pop("access_token"))
        hs.update(burst_limit=burst, burst_window_seconds=window)
        for name, table in ((f"sf{n}", sf), (f"hs{n}", hs)):
            lines.append(f"[connectors.{name}]")
            lines.extend(f"{k} = {_toml(v)}" for k, v in table.items())
            lines.append("")
        crm_owner = sb.salesforce.emulator.org.user_by_username(DEFAULT_OWNER)
        assert crm_owner is not None
        map_owner = next(
            o["id"] for o in sb.hubspot.emulator.portal.owners if o["email"] == DEFAULT_OWNER
        )
        lines.append(f"[pairs.{pair}]")
        pair_table = {**DEFAULT_PAIR, "crm": f"sf{n}", "map": f"hs{n}"}
        lines.extend(f"{k} = {_toml(v)}" for k, v in pair_table.items())
        lines += [
            f'default_crm_owner = "{crm_owner["Id"]}"',
            f'default_map_owner = "{map_owner}"',
            "",
        ]
    path = directory / "crm-bridge.toml"
    path.write_text("\n".join(lines) + "\n")
    return path, env


def run(workers: int, *, leads: int, contacts: int, burst: int, window: float) -> dict[str, Any]:
    schema, store_url = _schema()
    directory = Path(tempfile.mkdtemp(prefix="crm-bridge-workers-bench-"))
    boxes: dict[str, Sandbox] = {}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for n, pair in enumerate(PAIRS):
            sb = Sandbox.start(
                store_url=store_url,
                workdir=directory / pair,
                hubspot_settings=HubSpotEmulatorSettings(
                    rate_limits_enabled=True, burst_limit=burst, burst_window_seconds=window
                ),
            )
            boxes[pair] = sb
            sb.salesforce.emulator.seed(leads=leads, seed=7)  # alike: every pair the same work
            sb.hubspot.emulator.seed(contacts=contacts, seed=8)
            sb.align_owners()
            del n
        Store.open(store_url).close()
        config, secrets = _config(directory, store_url, boxes, burst, window)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_BRIDGE_")}
        env.update(secrets)
        started = time.monotonic()
        for n in range(workers):
            with open(directory / f"w{n}.out", "wb") as out:
                procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "crm_bridge",
                            "worker",
                            "--config",
                            str(config),
                            "--name",
                            f"w{n}",
                            "--heartbeat",
                            "1",
                        ],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
        with Store.open(store_url) as store:
            while True:
                with store.transaction(readonly=True) as tx:
                    runs = {p: tx.last_runs(p, limit=5) for p in PAIRS}
                if all(any(r.status == "ok" for r in rs) for rs in runs.values()):
                    break
                if time.monotonic() - started > 900:
                    raise SystemExit("pairs did not finish within 900 s")
                time.sleep(0.1)
        wall = time.monotonic() - started
        calls = sum(sum(r.calls.values()) for rs in runs.values() for r in rs if r.status == "ok")
        spans = [
            ((r.finished_at - r.started_at).total_seconds())
            for rs in runs.values()
            for r in rs
            if r.status == "ok" and r.finished_at is not None
        ]
        oks = [r for rs in runs.values() for r in rs if r.status == "ok" and r.finished_at]
        busy = (
            max(r.finished_at for r in oks if r.finished_at) - min(r.started_at for r in oks)
        ).total_seconds()
        portals = {p: sb.hubspot.emulator.limiter.status() for p, sb in boxes.items()}
        return {
            "workers": workers,
            "wall": wall,
            "busy": busy,
            "calls": calls,
            "cycle_seconds": spans,
            "peak": max(int(s["peak_burst"]) for s in portals.values()),
            "refused": sum(int(s["burst_refused"]) for s in portals.values()),
        }
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for sb in boxes.values():
            sb.stop()
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--leads", type=int, default=300)
    parser.add_argument("--contacts", type=int, default=300)
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument("--window", type=float, default=2.0)
    args = parser.parse_args()
    print(
        f"# {platform.python_version()} on {os.cpu_count()} CPUs; 4 pairs, each "
        f"{args.leads} Salesforce leads (+ seeded contacts, accounts, opportunities) and "
        f"{args.contacts} HubSpot contacts; HubSpot burst {args.burst}/{args.window:g} s per portal"
    )
    print(
        "| workers | wall time | first cycle start to last end | API calls | slowest cycle "
        "| peak calls in a burst window (limit) | 429s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.workers:
        r = run(n, leads=args.leads, contacts=args.contacts, burst=args.burst, window=args.window)
        print(
            f"| {r['workers']} | {r['wall']:.1f} s | {r['busy']:.1f} s | {r['calls']} "
            f"| {max(r['cycle_seconds']):.1f} s "
            f"| {r['peak']} ({args.burst}) | {r['refused']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
