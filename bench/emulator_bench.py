"""Throughput and memory of the local emulators (prints figures, asserts nothing).

Why this shape: the emulators are what every sync and SLA test and bench runs against, so their
ceiling must be known to tell "crm-bridge is slow" from "the emulator is the bottleneck".  The
server runs as ``crm-bridge emulate`` in a SUBPROCESS, so server and load generator never share a
GIL, and the load comes from a few client processes x threads using httpx over loopback (the
vendor clients would measure their own deserialisation instead).  Rate limits are switched off
through the control plane, so the figures are the server's own.

Run (about a minute on 2 cores):

    /work/venv/bin/python bench/emulator_bench.py
    /work/venv/bin/python bench/emulator_bench.py --big    # 500k and 1M seeds, longer windows

Options: ``--seconds`` per scenario, ``--clients`` processes, ``--threads`` per process,
``--sizes`` seed sizes for the memory table (leads for Salesforce, contacts for HubSpot).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import re
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
FACT = re.compile(r"^([a-z_]+(?:\.[a-z_]+)?): (\S.*)$")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ the server subprocess


@dataclass
class Server:
    """A ``crm-bridge emulate VENDOR`` subprocess and the facts it printed."""

    proc: subprocess.Popen[str]
    facts: dict[str, str]
    ready_after: float

    @classmethod
    def start(cls, vendor: str, *extra: str) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_BRIDGE_")}
        began = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "crm_bridge", "emulate", vendor, "--port", "0", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=tempfile.gettempdir(),
        )
        assert proc.stdout is not None
        facts: dict[str, str] = {}
        for line in proc.stdout:
            if line.startswith("ready:"):
                break
            match = FACT.match(line.rstrip("\n"))
            if match and match.group(1) not in facts:
                facts[match.group(1)] = match.group(2)
        else:
            raise SystemExit(f"emulate {vendor} exited with {proc.wait()} before it was ready")
        return cls(proc, facts, time.perf_counter() - began)

    def verify(self) -> ssl.SSLContext | bool:
        ca = self.facts.get("salesforce.ca_path")
        return ssl.create_default_context(cafile=ca) if ca else True

    def control(self, vendor: str, path: str, body: Any) -> Any:
        with httpx.Client(verify=self.verify(), trust_env=False, timeout=60) as client:
            resp = client.post(f"{self.facts[f'{vendor}.control']}/{path}", json=body)
        resp.raise_for_status()
        return resp.json() if resp.content else None

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime

    def memory_mb(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) of the server process in MB."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        kb = {k: int(v.split()[0]) for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(.+)$", status, re.M)}
        return kb["VmRSS"] / 1024, kb["VmHWM"] / 1024

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()


# ------------------------------------------------------------------ load generators

Step = Callable[[httpx.Client, int], bool]
"""One request of a scenario (``i`` numbers the request); True when it succeeded."""


def sf_scenario(name: str, batch: int, base: str, token: str, version: str) -> Callable[..., Step]:
    """Salesforce sObject Collections create or update of ``batch`` Leads."""
    url = f"{base}/services/data/v{version}/composite/sobjects"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    tag = f"{os.getpid()}-{threading.get_ident()}"

    def lead(i: int, j: int) -> dict[str, Any]:
        return {
            "attributes": {"type": "Lead"},
            "LastName": f"Bench{j}",
            "Company": "Bench Ltd",
            "Email": f"b{tag}-{i}-{j}@bench.example",
        }

    def make(client: httpx.Client) -> Step:
        if name.startswith("create"):

            def create(c: httpx.Client, i: int) -> bool:
                body = {"allOrNone": False, "records": [lead(i, j) for j in range(batch)]}
                resp = c.post(url, json=body, headers=headers)
                return resp.status_code == 200 and '"success":false' not in resp.text

            return create
        body = {"allOrNone": False, "records": [lead(-1, j) for j in range(batch)]}
        ids = [r["id"] for r in client.post(url, json=body, headers=headers).json()]

        def update(c: httpx.Client, i: int) -> bool:
            records = [{"attributes": {"type": "Lead"}, "id": rid, "Title": f"t{i}"} for rid in ids]
            resp = c.patch(url, json={"allOrNone": False, "records": records}, headers=headers)
            return resp.status_code == 200 and '"success":false' not in resp.text

        return update

    return make


def hs_scenario(name: str, batch: int, base: str, token: str) -> Callable[..., Step]:
    """HubSpot contacts batch create, update or read of ``batch`` inputs."""
    url = f"{base}/crm/v3/objects/contacts/batch"
    headers = {"Authorization": f"Bearer {token}"}
    tag = f"{os.getpid()}-{threading.get_ident()}"

    def contact(i: int, j: int) -> dict[str, Any]:
        return {"properties": {"email": f"b{tag}-{i}-{j}@bench.example", "firstname": f"B{j}"}}

    def make(client: httpx.Client) -> Step:
        if name.startswith("create"):

            def create(c: httpx.Client, i: int) -> bool:
                inputs = [contact(i, j) for j in range(batch)]
                return (
                    c.post(f"{url}/create", json={"inputs": inputs}, headers=headers).status_code
                    == 201
                )

            return create
        inputs = [contact(-1, j) for j in range(batch)]
        made = client.post(f"{url}/create", json={"inputs": inputs}, headers=headers).json()
        ids = [r["id"] for r in made["results"]]
        if name.startswith("update"):

            def update(c: httpx.Client, i: int) -> bool:
                body = {"inputs": [{"id": rid, "properties": {"jobtitle": f"t{i}"}} for rid in ids]}
                return c.post(f"{url}/update", json=body, headers=headers).status_code == 200

            return update
        read_body = {"inputs": [{"id": rid} for rid in ids], "properties": ["email", "jobtitle"]}

        def read(c: httpx.Client, i: int) -> bool:
            return c.post(f"{url}/read", json=read_body, headers=headers).status_code == 200

        return read

    return make


@dataclass
class Job:
    """What one client process runs: the scenario and the shared start/end wall-clock times."""

    vendor: str
    scenario: str
    batch: int
    base: str
    token: str
    version: str
    ca_path: str | None
    threads: int
    start_at: float
    end_at: float


def run_client(job: Job) -> tuple[int, int, list[float]]:
    """One client process: ``threads`` threads, each with its own keep-alive httpx client."""
    results: list[tuple[int, int, list[float]]] = []
    lock = threading.Lock()

    def thread_main() -> None:
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=job.ca_path) if job.ca_path else True
        )
        ok = failed = 0
        latencies: list[float] = []
        with httpx.Client(verify=verify, trust_env=False, timeout=60) as client:
            if job.vendor == "salesforce":
                make = sf_scenario(job.scenario, job.batch, job.base, job.token, job.version)
            else:
                make = hs_scenario(job.scenario, job.batch, job.base, job.token)
            step = make(client)
            time.sleep(max(0.0, job.start_at - time.time()))  # all threads start together
            i = 0
            while time.time() < job.end_at:
                sent = time.perf_counter()
                good = step(client, i)
                latencies.append(time.perf_counter() - sent)
                ok += good
                failed += not good
                i += 1
        with lock:
            results.append((ok, failed, latencies))

    workers = [threading.Thread(target=thread_main) for _ in range(job.threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return (
        sum(r[0] for r in results),
        sum(r[1] for r in results),
        [x for r in results for x in r[2]],
    )


def throughput(
    server: Server, vendor: str, scenario: str, batch: int, args: argparse.Namespace, token: str
) -> None:
    facts = server.facts
    setup_allowance = 3.0  # each thread's setup call (creating the records to update/read)
    start_at = time.time() + setup_allowance
    end_at = start_at + args.seconds
    job = Job(
        vendor=vendor,
        scenario=scenario,
        batch=batch,
        base=facts[vendor],
        token=token,
        version=facts.get("salesforce.api_version", ""),
        ca_path=facts.get("salesforce.ca_path"),
        threads=args.threads,
        start_at=start_at,
        end_at=end_at,
    )
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(args.clients) as pool:
        pending = pool.map_async(run_client, [job] * args.clients)
        time.sleep(max(0.0, start_at - time.time()))
        cpu0 = server.cpu_seconds()
        outcomes = pending.get()
        cpu1 = server.cpu_seconds()
    ok = sum(o[0] for o in outcomes)
    failed = sum(o[1] for o in outcomes)
    lat = sorted(x for o in outcomes for x in o[2])
    rps = ok / args.seconds
    p50 = statistics.median(lat) * 1000 if lat else 0.0
    p95 = lat[int(len(lat) * 0.95)] * 1000 if lat else 0.0
    cpu_ms = (cpu1 - cpu0) * 1000 / max(1, ok + failed)
    print(
        f"  {vendor:10} {scenario:10} x{batch:<4} {rps:8.0f} req/s {rps * batch:9.0f} rec/s"
        f"  p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  server CPU {cpu_ms:5.2f} ms/req"
        f"  ({(cpu1 - cpu0) / args.seconds:4.0%} of a core)  errors {failed}",
        flush=True,
    )


def bench_throughput(args: argparse.Namespace) -> None:
    print(
        f"\nthroughput: {args.clients} client processes x {args.threads} threads (httpx, "
        f"keep-alive), {args.seconds:g} s per scenario, rate limits off",
        flush=True,
    )
    sf = Server.start("salesforce")
    try:
        sf.control("salesforce", "limits", {"daily_api_limit": 1_000_000_000, "used": 0})
        token = sf.control("salesforce", "token", {})["access_token"]
        for scenario, batch in (("create", 200), ("update", 200), ("create", 10), ("update", 10)):
            throughput(sf, "salesforce", scenario, batch, args, token)
    finally:
        sf.stop()
    hs = Server.start("hubspot")
    try:
        hs.control("hubspot", "rate-limits", {"enabled": False})
        token = hs.facts["hubspot.access_token"]
        for scenario, batch in (("create", 100), ("update", 100), ("read", 100)):
            throughput(hs, "hubspot", scenario, batch, args, token)
    finally:
        hs.stop()


def bench_memory(args: argparse.Namespace) -> None:
    print("\nmemory: RSS of the emulate process after --seed-leads N (a fresh process each)")
    for vendor in ("salesforce", "hubspot"):
        empty = Server.start(vendor)
        base_rss, _ = empty.memory_mb()
        empty.stop()
        print(f"  {vendor}: empty server {base_rss:.0f} MB RSS, ready in {empty.ready_after:.1f} s")
        for size in args.sizes:
            server = Server.start(vendor, "--seed-leads", str(size))
            rss, hwm = server.memory_mb()
            records = sum(
                int(part.split("=")[1]) for part in server.facts[f"{vendor}.records"].split()
            )
            server.stop()
            per_100k = (rss - base_rss) / records * 100_000
            print(
                f"  {vendor:10} seed {size:>9,}: {records:>9,} records  RSS {rss:6.0f} MB"
                f"  peak {hwm:6.0f} MB  {per_100k:5.0f} MB per 100k records"
                f"  (ready in {server.ready_after:5.1f} s)",
                flush=True,
            )


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    cpus = len(os.sched_getaffinity(0))
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {cpus} CPUs (nproc), {model}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per scenario")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--threads", type=int, default=2, help="threads per client process")
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[100_000, 200_000],
        help="seed sizes for the memory table, comma-separated",
    )
    parser.add_argument("--big", action="store_true", help="500k and 1M seeds, 10 s windows")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    if args.big:
        args.sizes = sorted({*args.sizes, 500_000, 1_000_000})
        args.seconds = max(args.seconds, 10.0)
    print(f"emulator bench: {machine()}")
    began = time.perf_counter()
    if not args.skip_throughput:
        bench_throughput(args)
    if not args.skip_memory:
        bench_memory(args)
    print(f"\ntotal {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
