"""Sync benchmark on the emulators: API calls vs the theoretical minimum, throughput, latency, RSS.

Prints figures only (no pass/fail).  The minimums follow shared/reference user-asks-and-limits §3
(Q = 2,000 rows per SOQL page, H = 100 inputs per HubSpot batch, S = 200 rows per search page,
X = 1,000 records per Salesforce Composite call), summed over the pair's objects:

* initial CRM -> MAP, HubSpot empty: per object max(1, ceil(R/Q)) + ceil(W/H) + 1, where R is
  the CRM records to read, W the records HubSpot must receive, and the 1 is one (empty) search
  that shows the MAP side has nothing to send back;
* incremental, K rep edits in Salesforce and K marketer edits in HubSpot (one object):
  max(1, ceil(K/Q)) + ceil(K/H) + max(1, ceil(K/S)) + ceil(K/X), plus 2 per other object;
* idle: 2 per object (one read per side).

Token requests are counted but left out of the ratio (§3.1: whether they count is unconfirmed).

Where things run: both emulators live in this process (so the bench can see what each side holds
without spending API calls); the sync client runs in a subprocess (bench/_sync_client.py) whose
peak RSS (VmHWM in /proc/<pid>/status, reset per phase through /proc/<pid>/clear_refs) is the
client's alone.

    python bench/sync_bench.py                    # N in {10k, 100k}
    python bench/sync_bench.py --n 10000          # one size
    python bench/sync_bench.py --big              # adds N = 1,000,000 (about 2.5 GB of emulators)
    python bench/sync_bench.py --trace-memory     # tracemalloc in the client (slow; diagnosis)
    python bench/sync_bench.py --profile F.prof   # cProfile of the client's cycles (diagnosis)
    python bench/sync_bench.py --memray F.bin     # memray of the client, native allocations too
    python bench/sync_bench.py --connector-overrides F.json   # e.g. read only the mapped fields
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crm_bridge.connectors.hubspot.emulator import HubSpotEmulatorSettings
from crm_bridge.connectors.salesforce.reading import parse_sf_datetime
from crm_bridge.demo.sandbox import DEFAULT_PAIR, Sandbox
from crm_bridge.store import Store

Q, H, S, X = 2000, 100, 200, 1000
REP = "rick.rep@example.com"
MARKETER = "mark.marketer@example.com"
WRITES = ("created", "matched", "updated", "deleted")
CLIENT = Path(__file__).with_name("_sync_client.py")
# crm object -> (HubSpot object, pair object name): the preset's three objects.
OBJECTS = {
    "Account": ("companies", "accounts"),
    "Lead": ("contacts", "leads"),
    "Opportunity": ("deals", "deals"),
}


# -- the client process ----------------------------------------------------------------------


class ClientProcess:
    """bench/_sync_client.py in a subprocess: one JSON request/reply per line."""

    def __init__(self, spec: dict[str, Any], workdir: Path) -> None:
        spec_path = workdir / "client-spec.json"
        spec_path.write_text(json.dumps(spec))
        self.log_path = workdir / "client.log"
        self._log = self.log_path.open("w")
        command = [sys.executable, str(CLIENT), str(spec_path)]
        if spec.get("memray"):  # every allocation, native ones (SQLite, SSL) included
            command[1:1] = ["-m", "memray", "run", "-q", "--native", "-o", str(spec["memray"])]
        # The allocator setting the shipped units and container run the daemon with
        # (docs/operations.md, "Memory"), so peak RSS is what an admin's daemon would reach.
        env = {**os.environ, "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2")}
        self.proc = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )
        self.events: list[dict[str, Any]] = []
        ready = self._read_reply("ready")
        self.pid = int(ready["pid"])

    def _read_reply(self, cmd: str) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"sync client exited; see {self.log_path}")
            message: dict[str, Any] = json.loads(line)
            if "event" in message:
                self.events.append(message)
                continue
            if not message.get("ok"):
                raise RuntimeError(f"sync client failed on {cmd}:\n{message.get('error')}")
            return message

    def request(self, cmd: str, **kwargs: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kwargs}) + "\n")
        self.proc.stdin.flush()
        return self._read_reply(cmd)

    def memory_kb(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak since start or the last reset_peak) of the client, in kB."""
        found = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
        return found

    def reset_peak(self) -> None:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.request("quit")
            finally:
                self.proc.wait(timeout=30)
        self._log.close()


# -- counting --------------------------------------------------------------------------------


class Meter:
    """Calls per endpoint family as the emulators counted them, and HubSpot's 429 answers.

    The emulators count every request that reaches them, including ones answered 429; HubSpot's
    daily counter only counts admitted ones, so the difference is the number of 429s.
    """

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb

    def snapshot(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for prefix, emulator in (
            ("sf", self.sb.salesforce.emulator),
            ("hs", self.sb.hubspot.emulator),
        ):
            for family, n in emulator.calls.snapshot().items():
                if family != "total":
                    counts[f"{prefix}.{family}"] = n
        status = self.sb.hubspot.emulator.limiter.status()
        counts["hs.admitted"] = int(str(status["daily_used"]))
        return counts


def emulator_cpu() -> float:
    """CPU seconds of this process: the two emulators (the bench itself idles in a cycle)."""
    t = os.times()
    return t.user + t.system


def api_calls(delta: Counter[str]) -> int:
    """Data and metadata calls (not token requests, not the 429 bookkeeping key)."""
    skip = {"sf.auth", "hs.oauth", "hs.admitted"}
    return sum(n for k, n in delta.items() if k not in skip)


def rejected_429(delta: Counter[str]) -> int:
    sent = sum(
        n for k, n in delta.items() if k.startswith("hs.") and k not in ("hs.oauth", "hs.admitted")
    )
    return max(0, sent - delta["hs.admitted"])


def writes(reply: dict[str, Any]) -> int:
    counts: dict[str, int] = reply["counts"]
    return sum(counts.get(k, 0) for k in WRITES)


@dataclass
class Phase:
    name: str
    cycles: list[dict[str, Any]] = field(default_factory=list)
    emulator: Counter[str] = field(default_factory=Counter)
    peak_kb: int = 0
    minimum: int | None = None

    def add(self, reply: dict[str, Any], delta: Counter[str]) -> None:
        self.cycles.append(reply)
        self.emulator.update(delta)

    @property
    def calls(self) -> int:
        return api_calls(self.emulator)

    @property
    def seconds(self) -> float:
        if not self.cycles:
            return 0.0
        return float(self.cycles[-1]["ended"] - self.cycles[0]["started"])

    @property
    def cpu(self) -> tuple[float, float]:
        """CPU seconds of (the client, the emulators) over the phase's cycles."""
        return (
            sum(c.get("cpu", 0.0) for c in self.cycles),
            sum(c.get("emulator_cpu", 0.0) for c in self.cycles),
        )

    def counts(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for c in self.cycles:
            total.update(c["counts"])
        return total

    def families(self) -> str:
        shown = {k: v for k, v in sorted(self.emulator.items()) if v and k != "hs.admitted"}
        text = " ".join(f"{k}={v}" for k, v in shown.items())
        n429 = rejected_429(self.emulator)
        return text + (f" (of which HubSpot 429s={n429})" if n429 else "")

    def line(self, n: int) -> str:
        ratio = (
            f" minimum={self.minimum} ratio={self.calls / self.minimum:.2f}" if self.minimum else ""
        )
        return (
            f"N={n}: {self.name}: cycles={len(self.cycles)} calls={self.calls}{ratio} "
            f"time={self.seconds:.1f}s (CPU: client {self.cpu[0]:.1f}s, emulators {self.cpu[1]:.1f}s) "
            f"client peak RSS={self.peak_kb / 1024:.0f} MB\n"
            f"    by endpoint: {self.families()}"
        )


class Runner:
    """Drives the client cycle by cycle and attributes every emulator call to a phase."""

    def __init__(self, client: ClientProcess, meter: Meter) -> None:
        self.client = client
        self.meter = meter

    def cycle(self, phase: Phase) -> dict[str, Any]:
        before = self.meter.snapshot()
        cpu = emulator_cpu()
        reply = self.client.request("cycle")
        reply["emulator_cpu"] = emulator_cpu() - cpu
        delta = self.meter.snapshot()
        delta.subtract(before)
        reply["emulator"] = dict(+delta)
        phase.add(reply, +delta)
        return reply

    @contextmanager
    def measuring(self, phase: Phase) -> Iterator[Phase]:
        self.client.reset_peak()
        yield phase
        phase.peak_kb = self.client.memory_kb()["VmHWM"]


# -- the scenario ----------------------------------------------------------------------------


def idle_floor(objects: int) -> int:
    return 2 * objects


def initial_minimum(reads: dict[str, int], written: dict[str, int]) -> int:
    return sum(max(1, math.ceil(reads[o] / Q)) + math.ceil(written[o] / H) + 1 for o in reads)


def incremental_minimum(k_crm: int, k_map: int, objects: int) -> int:
    edited = (
        max(1, math.ceil(k_crm / Q))
        + math.ceil(k_crm / H)
        + max(1, math.ceil(k_map / S))
        + math.ceil(k_map / X)
    )
    return edited + idle_floor(objects - 1)


def hubspot_counts(sb: Sandbox) -> dict[str, int]:
    portal = sb.hubspot.emulator.portal
    with portal.lock:
        return {crm: len(portal.store(hs).live) for crm, (hs, _) in OBJECTS.items()}


def salesforce_counts(sb: Sandbox) -> dict[str, int]:
    org = sb.salesforce.emulator.org
    with org.lock:
        live = {
            obj: sum(1 for r in org.records_of(obj).values() if not r.get("IsDeleted"))
            for obj in (*OBJECTS, "Contact")
        }
    # The leads object syncs Salesforce's person: Leads and Contacts.
    return {
        "Lead": live["Lead"] + live.pop("Contact"),
        **{k: v for k, v in live.items() if k != "Lead"},
    }


def linked_leads(sb: Sandbox) -> list[tuple[str, str]]:
    """(Lead id, contact id) of every active leads link, read from the store while idle."""
    store = Store.open(sb.store_url)
    try:
        with store.transaction(readonly=True) as tx:
            return [
                (link.crm_id, link.map_id)
                for link in tx.iter_links("main", "leads")
                if link.crm_id and link.map_id
            ]
    finally:
        store.close()


def edit_salesforce(sf: Any, person_id: str, title: str) -> None:
    """A rep's edit of a linked person: a Lead, or a Contact (the pair syncs both)."""
    (sf.Lead if person_id.startswith("00Q") else sf.Contact).update(person_id, {"Title": title})


def edit_hubspot_batch(hs: Any, edits: list[tuple[str, str]]) -> None:
    from hubspot.crm.contacts import (
        BatchInputSimplePublicObjectBatchInput,
        SimplePublicObjectBatchInput,
    )

    api = hs.crm.contacts.batch_api
    for start in range(0, len(edits), H):
        inputs = [
            SimplePublicObjectBatchInput(id=cid, properties={"phone": phone})
            for cid, phone in edits[start : start + H]
        ]
        api.update(BatchInputSimplePublicObjectBatchInput(inputs=inputs))


@dataclass
class Edit:
    side: str  # where the edit was made: "crm" (a rep) or "map" (a marketer)
    lead_id: str
    contact_id: str
    value: str
    made_at: float = 0.0  # the source record's modification stamp (emulator clock, epoch s)
    visible_at: float | None = None  # the target record's stamp when the value first showed


class Watcher(threading.Thread):
    """Looks at the emulators' state (no API calls) until every edit shows on the other side."""

    def __init__(self, sb: Sandbox) -> None:
        super().__init__(name="watcher", daemon=True)
        self.sb = sb
        self.pending: list[Edit] = []
        self.lock = threading.Lock()
        self.done = threading.Event()

    def add(self, edit: Edit) -> None:
        with self.lock:
            self.pending.append(edit)

    def outstanding(self) -> int:
        with self.lock:
            return sum(1 for e in self.pending if e.visible_at is None)

    def run(self) -> None:
        org = self.sb.salesforce.emulator.org
        portal = self.sb.hubspot.emulator.portal
        while not self.done.is_set():
            with self.lock:
                waiting = [e for e in self.pending if e.visible_at is None]
            for edit in waiting:
                if edit.side == "crm":
                    with portal.lock:
                        rec = portal.store("contacts").live.get(int(edit.contact_id))
                        if rec is not None and rec.props.get("jobtitle") == edit.value:
                            edit.visible_at = rec.updated / 1000
                else:
                    with org.lock:
                        row = org.get(edit.lead_id)
                        if row is not None and row.get("Phone") == edit.value:
                            edit.visible_at = parse_sf_datetime(row["SystemModstamp"]).timestamp()
            time.sleep(0.05)


def source_stamp(sb: Sandbox, edit: Edit) -> float:
    if edit.side == "crm":
        org = sb.salesforce.emulator.org
        with org.lock:
            row = org.get(edit.lead_id)
            assert row is not None
            return parse_sf_datetime(row["SystemModstamp"]).timestamp()
    portal = sb.hubspot.emulator.portal
    with portal.lock:
        return portal.store("contacts").live[int(edit.contact_id)].updated / 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def idle_window(
    client: ClientProcess, *, poll: float, push: bool, safety_poll: float, seconds: float
) -> dict[str, Any] | None:
    """API calls of a daemon left alone for ``seconds`` (no edits): the price of staying current.

    ``None`` when ``push`` finds no channel.
    """
    started = client.request("daemon", interval=poll, push=push, safety_poll=safety_poll)
    if push and not started.get("push"):
        client.request("stop")
        return None
    time.sleep(seconds)
    stopped = client.request("stop")
    calls = {k: v for k, v in stopped.get("calls", {}).items() if not k.endswith("auth")}
    total = sum(calls.values())
    return {
        "push": push,
        "seconds": seconds,
        "calls": total,
        "per_minute": total * 60.0 / seconds,
        "by_family": calls,
        "cycles": stopped.get("cycles", 0),
    }


def latency_phase(
    sb: Sandbox,
    client: ClientProcess,
    links: list[tuple[str, str]],
    *,
    poll: float,
    seconds: float,
    rng: random.Random,
    push: bool = False,
    safety_poll: float = 600.0,
    tag: str = "555",
) -> dict[str, Any]:
    """Edits at random moments while the daemon polls every ``poll`` seconds.

    With ``push`` the daemon also listens to the connectors' push channels and polls only every
    ``safety_poll``; ``tag`` keeps each phase's values new (an edit to the value a field holds
    already would be "visible" at once).  ``None`` when ``push`` finds no channel.
    """
    sf = sb.salesforce.simple_salesforce(username=REP)
    hs_contacts = sb.hubspot.client(access_token=sb.hubspot.emulator.as_user(MARKETER))
    from hubspot.crm.contacts import SimplePublicObjectInput

    half = len(links) // 2
    plan = [(rng.uniform(0, seconds), "crm", lead, contact) for lead, contact in links[:half]]
    plan += [(rng.uniform(0, seconds), "map", lead, contact) for lead, contact in links[half:]]
    plan.sort()
    watcher = Watcher(sb)
    watcher.start()
    client.events.clear()
    client.reset_peak()
    started = client.request("daemon", interval=poll, push=push, safety_poll=safety_poll)
    if push and not started.get("push"):
        watcher.done.set()
        watcher.join()
        return None
    t0 = time.monotonic()
    for i, (at, side, lead, contact) in enumerate(plan):
        time.sleep(max(0.0, t0 + at - time.monotonic()))
        edit = Edit(side=side, lead_id=lead, contact_id=contact, value=f"+1 {tag} {i:07d}")
        if side == "crm":
            edit.value = f"Bench latency {tag} {i}"
            edit_salesforce(sf, lead, edit.value)
        else:
            hs_contacts.crm.contacts.basic_api.update(
                contact, SimplePublicObjectInput(properties={"phone": edit.value})
            )
        edit.made_at = source_stamp(sb, edit)
        watcher.add(edit)
    deadline = time.monotonic() + 3 * poll + 30
    while watcher.outstanding() and time.monotonic() < deadline:
        time.sleep(0.2)
    stopped = client.request("stop")
    watcher.done.set()
    watcher.join()
    peak_kb = client.memory_kb()["VmHWM"]
    seen = [e for e in watcher.pending if e.visible_at is not None]
    lat = {
        side: [e.visible_at - e.made_at for e in seen if e.side == side and e.visible_at]
        for side in ("crm", "map")
    }
    both = lat["crm"] + lat["map"]
    cycles = [e for e in client.events if e.get("event") == "cycle"]
    errors = [e for e in client.events if e.get("event") == "error"]
    return {
        "poll": poll,
        "push": push,
        "fed_sides": started.get("fed_sides", []),
        "hinted_cycles": stopped.get("hinted_cycles", 0),
        "fallbacks": stopped.get("fallbacks", 0),
        "calls": sum(v for k, v in stopped.get("calls", {}).items() if not k.endswith("auth")),
        "seconds": seconds,
        "edits": len(plan),
        "visible": len(seen),
        "cycles": stopped["cycles"],
        "cycle_seconds": [round(c["seconds"], 2) for c in cycles],
        "cycle_calls": [
            sum(v for k, v in c["calls"].items() if not k.endswith("auth")) for c in cycles
        ],
        "errors": [e["error"] for e in errors],
        "p50": statistics.median(both) if both else math.nan,
        "p95": percentile(both, 0.95) if both else math.nan,
        "max": max(both) if both else math.nan,
        "crm_to_map_p50_p95": [statistics.median(lat["crm"]), percentile(lat["crm"], 0.95)]
        if lat["crm"]
        else [],
        "map_to_crm_p50_p95": [statistics.median(lat["map"]), percentile(lat["map"], 0.95)]
        if lat["map"]
        else [],
        "peak_kb": peak_kb,
    }


def run(n: int, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    hs_settings = HubSpotEmulatorSettings(burst_limit=args.tier, rate_limits_enabled=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"sync-bench-{n}-"))
    result: dict[str, Any] = {"n": n, "workdir": str(workdir)}
    with Sandbox.start(hubspot_settings=hs_settings, workdir=workdir) as sb:
        sb.align_owners()
        t = time.perf_counter()
        sb.salesforce.emulator.seed(leads=n, seed=args.seed)
        print(
            f"N={n}: seeded Salesforce in {time.perf_counter() - t:.1f}s: {salesforce_counts(sb)}"
        )
        connectors = sb.connector_settings()
        connectors["hubspot"]["burst_limit"] = args.tier
        if args.push:
            hs = sb.hubspot
            connectors["hubspot"].update(
                portal_id=hs.portal_id,
                app_id=hs.app_id,
                private_app_id=hs.private_app_id,
                journal_client_id=hs.client_id,
                journal_client_secret=hs.client_secret,
                journal_poll_seconds=args.journal_poll,
            )
            connectors["salesforce"].update(cdc=True, pubsub_endpoint=sb.salesforce.pubsub_address)
        if args.connector_overrides:
            for name, table in json.loads(args.connector_overrides.read_text()).items():
                connectors[name].update(table)
        spec = {
            "connectors": connectors,
            "pair": {
                **DEFAULT_PAIR,
                "default_map_owner": "71000001",
                **({"max_records_per_cycle": args.cap} if args.cap else {}),
            },
            "store_url": sb.store_url,
            "trace_memory": args.trace_memory,
            "memray": str(args.memray) if args.memray else None,
            "profile": str(args.profile) if args.profile else None,
        }
        meter = Meter(sb)
        client = ClientProcess(spec, workdir)
        try:
            result.update(phases(sb, client, Runner(client, meter), n, args, rng))
        finally:
            client.close()
    if not args.keep_workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def phases(
    sb: Sandbox,
    client: ClientProcess,
    runner: Runner,
    n: int,
    args: argparse.Namespace,
    rng: random.Random,
) -> dict[str, Any]:
    objects = len(OBJECTS)
    floor = idle_floor(objects)
    out: dict[str, Any] = {"startup_peak_kb": client.memory_kb()["VmHWM"]}
    print(
        f"N={n}: client started, peak RSS so far {out['startup_peak_kb'] / 1024:.0f} MB (imports)"
    )

    # Initial: cycles until one writes nothing and spends no more than the idle floor -- or
    # spends what the quiet cycle before it spent (steady above the floor: e.g. a contact-role
    # change sitting at the cursor's instant costs one read by id per idle cycle).
    reads = salesforce_counts(sb)
    quiet_calls: int | None = None
    hs_before = hubspot_counts(sb)
    whole = Phase("initial (load + echo read-back)")
    with runner.measuring(whole):
        for _ in range(args.max_cycles):
            probe = Phase("probe")
            reply = runner.cycle(probe)
            mem = reply["memory_kb"]
            traced = reply.get("traced_kb")
            print(
                f"  cycle {len(whole.cycles) + 1}: {reply['seconds']:.1f}s (CPU client "
                f"{reply['cpu']:.1f}s, emulators {reply['emulator_cpu']:.1f}s) "
                f"calls={api_calls(probe.emulator)} client RSS={mem['VmRSS'] // 1024} MB "
                f"(anon {mem['RssAnon'] // 1024}, file {mem['RssFile'] // 1024})"
                + (f" traced={traced // 1024} MB" if traced is not None else "")
                + f" counts={dict(sorted(reply['counts'].items()))}",
                flush=True,
            )
            if args.trace_memory and len(whole.cycles) == 1:
                client.request("memory", baseline=True)  # baseline after cycle 1
            calls = api_calls(probe.emulator)
            if writes(reply) == 0 and (calls <= floor or calls == quiet_calls):
                break  # quiet: this cycle belongs to the idle phase, not the initial one
            quiet_calls = calls if writes(reply) == 0 else None
            whole.add(reply, probe.emulator)
    # The load ends with the last cycle that wrote; the cycles after it only read back our own
    # writes (echoes) and re-read the overlap window once.
    last = max((i for i, c in enumerate(whole.cycles) if writes(c)), default=len(whole.cycles) - 1)
    load, settle = Phase("initial load"), Phase("initial echo read-back / overlap settle")
    for i, c in enumerate(whole.cycles):
        (load if i <= last else settle).add(c, Counter(c["emulator"]))
    if args.trace_memory:
        report = client.request("memory", top=25)
        path = Path(tempfile.gettempdir()) / f"sync-bench-memory-{n}.json"
        path.write_text(json.dumps(report, indent=1))
        print(f"N={n}: tracemalloc after the initial phase (growth since cycle 1) in {path}")
    written = {crm: c - hs_before[crm] for crm, c in hubspot_counts(sb).items()}
    whole.minimum = initial_minimum(reads, written)
    total_written = sum(written.values())
    ceiling = args.tier / 10 * H
    load_rate = total_written / load.seconds if load.seconds else math.nan
    whole_rate = total_written / whole.seconds if whole.seconds else math.nan
    counts = whole.counts()
    print(whole.line(n))
    print(
        f"    load cycles={len(load.cycles)} ({load.seconds:.1f}s), echo/settle cycles="
        f"{len(settle.cycles)} ({settle.seconds:.1f}s); Salesforce rows={reads}, written to "
        f"HubSpot={written}, dead-lettered={counts.get('dead_lettered', 0)}"
    )
    print(
        f"    records/s: {load_rate:.0f} over the load cycles, {whole_rate:.0f} until quiet; "
        f"ceiling {ceiling:.0f} (HubSpot {args.tier}/10 s x {H}); ratio {load_rate / ceiling:.2f} / "
        f"{whole_rate / ceiling:.2f}"
    )
    out["initial"] = {
        "cycles": len(whole.cycles),
        "load_cycles": len(load.cycles),
        "calls": whole.calls,
        "minimum": whole.minimum,
        "families": dict(whole.emulator),
        "rejected_429": rejected_429(whole.emulator),
        "load_seconds": load.seconds,
        "seconds": whole.seconds,
        "written": written,
        "reads": reads,
        "load_rate": load_rate,
        "rate": whole_rate,
        "ceiling": ceiling,
        "peak_kb": whole.peak_kb,
        "counts": dict(counts),
        "per_cycle": [
            {
                "seconds": round(c["seconds"], 2),
                "calls": c["emulator"],
                "counts": c["counts"],
            }
            for c in whole.cycles
        ],
    }

    # Idle: the steady cycle (one read per side per object).
    idle = Phase("steady idle")
    with runner.measuring(idle):
        runner.cycle(idle)
    idle.minimum = floor
    print(idle.line(n))
    out["idle"] = {
        "calls": idle.calls,
        "minimum": floor,
        "families": dict(idle.emulator),
        "peak_kb": idle.peak_kb,
    }

    # Incremental: K rep edits in Salesforce and K marketer edits in HubSpot, then one cycle.
    links = linked_leads(sb)
    rng.shuffle(links)
    k = args.k
    lat_edits = args.latency_edits
    if len(links) < 2 * k + lat_edits:
        raise RuntimeError(f"only {len(links)} linked leads for {2 * k + lat_edits} edits")
    sf_links, hs_links = links[:k], links[k : 2 * k]
    lat_links = links[2 * k : 2 * k + lat_edits]
    sf = sb.salesforce.simple_salesforce(username=REP)
    for i, (lead, _) in enumerate(sf_links):
        edit_salesforce(sf, lead, f"Bench VP {i}")
    hs_user = sb.hubspot.client(access_token=sb.hubspot.emulator.as_user(MARKETER))
    edit_hubspot_batch(
        hs_user, [(contact, f"+1 555 {i:07d}") for i, (_, contact) in enumerate(hs_links)]
    )
    inc = Phase(f"incremental, K={k} rep edits in Salesforce + K={k} marketer edits in HubSpot")
    with runner.measuring(inc):
        reply = runner.cycle(inc)
    inc.minimum = incremental_minimum(k, k, objects)
    print(inc.line(n))
    print(f"    counts={dict(sorted(reply['counts'].items()))}")
    echo = Phase("incremental echo read-back / overlap settle")
    with runner.measuring(echo):
        quiet_calls = None
        for _ in range(args.max_cycles):
            probe = Phase("probe")
            reply = runner.cycle(probe)
            echo.add(reply, probe.emulator)
            calls = api_calls(probe.emulator)
            if writes(reply) == 0 and (calls <= floor or calls == quiet_calls):
                break
            quiet_calls = calls if writes(reply) == 0 else None
    print(echo.line(n) + f"\n    (the last of these cycles is a steady idle one at {floor} calls)")
    out["incremental"] = {
        "k": k,
        "calls": inc.calls,
        "minimum": inc.minimum,
        "families": dict(inc.emulator),
        "seconds": inc.seconds,
        "counts": reply_counts(inc),
        "peak_kb": inc.peak_kb,
        "echo_cycles": len(echo.cycles),
        "echo_calls": echo.calls,
        "echo_families": dict(echo.emulator),
        "echo_peak_kb": echo.peak_kb,
    }

    # Latency at the poll interval: the daemon runs, reps and marketers edit at random moments.
    peaks_extra: list[int] = []
    lat = latency_phase(
        sb,
        client,
        lat_links,
        poll=args.poll,
        seconds=args.latency_seconds or 6 * args.poll,
        rng=rng,
    )
    assert lat is not None  # a polled phase always runs
    print(
        f"N={n}: change-to-visible at poll interval {args.poll:.0f}s: {lat['visible']}/{lat['edits']} "
        f"visible, p50={lat['p50']:.2f}s p95={lat['p95']:.2f}s max={lat['max']:.2f}s "
        f"(SF->HS p50/p95={fmt_pair(lat['crm_to_map_p50_p95'])}, HS->SF p50/p95="
        f"{fmt_pair(lat['map_to_crm_p50_p95'])}); daemon cycles={lat['cycles']} "
        f"cycle seconds={lat['cycle_seconds']} calls per cycle={lat['cycle_calls']} "
        f"client peak RSS={lat['peak_kb'] / 1024:.0f} MB"
    )
    out["latency"] = lat
    if args.push:
        pushed = latency_phase(
            sb,
            client,
            lat_links,
            poll=args.poll,
            seconds=args.latency_seconds or 6 * args.poll,
            rng=rng,
            push=True,
            safety_poll=args.safety_poll,
            tag="556",
        )
        if pushed is None:
            print(f"N={n}: push: no connector of the pair has a push channel set up")
        else:
            print(
                f"N={n}: change-to-visible with push (fed sides {pushed['fed_sides']}, safety "
                f"poll {args.safety_poll:.0f}s): {pushed['visible']}/{pushed['edits']} visible, "
                f"p50={pushed['p50']:.2f}s p95={pushed['p95']:.2f}s max={pushed['max']:.2f}s "
                f"(SF->HS p50/p95={fmt_pair(pushed['crm_to_map_p50_p95'])}, HS->SF p50/p95="
                f"{fmt_pair(pushed['map_to_crm_p50_p95'])}); hinted cycles="
                f"{pushed['hinted_cycles']} full cycles={pushed['cycles']} fallbacks="
                f"{pushed['fallbacks']} calls={pushed['calls']}"
            )
            out["push_latency"] = pushed
            peaks_extra.append(pushed["peak_kb"])
        for mode in (False, True):
            idle_run = idle_window(
                client,
                poll=args.poll,
                push=mode,
                safety_poll=args.safety_poll,
                seconds=args.idle_seconds,
            )
            if idle_run is None:
                continue
            label = "push" if mode else f"poll {args.poll:.0f}s"
            print(
                f"N={n}: idle {args.idle_seconds:.0f}s, {label}: calls={idle_run['calls']} "
                f"({idle_run['per_minute']:.1f}/min) by family={idle_run['by_family']}"
            )
            out[f"idle_{'push' if mode else 'poll'}"] = idle_run
    peaks = [
        *peaks_extra,
        out["startup_peak_kb"],
        whole.peak_kb,
        idle.peak_kb,
        inc.peak_kb,
        echo.peak_kb,
        lat["peak_kb"],
    ]
    out["peak_kb"] = max(peaks)
    print(f"N={n}: client peak RSS over the run {out['peak_kb'] / 1024:.0f} MB")
    return out


def reply_counts(phase: Phase) -> dict[str, int]:
    return dict(phase.counts())


def fmt_pair(values: list[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values) if values else "n/a"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, {datetime.now(UTC):%Y-%m-%d}"
    )


def code_state() -> str:
    """The commit measured, and which product files differed from it (read-only git)."""
    root = Path(__file__).resolve().parent.parent
    git = ["git", "--no-optional-locks", "-C", str(root)]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "crm_bridge"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    changed = [line[3:] for line in dirty if line.strip()]
    return head + (f" + uncommitted changes in {', '.join(changed)}" if changed else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--big", action="store_true", help="also N = 1,000,000")
    parser.add_argument("--k", type=int, default=500, help="edits per side, incremental phase")
    parser.add_argument("--tier", type=int, default=190, help="HubSpot burst calls per 10 s")
    parser.add_argument("--poll", type=float, default=10.0, help="daemon interval, seconds")
    parser.add_argument("--latency-seconds", type=float, default=0.0, help="default 6 x poll")
    parser.add_argument("--latency-edits", type=int, default=120, help="both sides together")
    parser.add_argument(
        "--push", action="store_true", help="also a push-mode latency phase and idle windows"
    )
    parser.add_argument(
        "--journal-poll", type=float, default=2.0, help="push: HubSpot journal poll, seconds"
    )
    parser.add_argument("--safety-poll", type=float, default=600.0, help="push mode, seconds")
    parser.add_argument(
        "--idle-seconds", type=float, default=60.0, help="push: each idle window's length"
    )
    parser.add_argument("--max-cycles", type=int, default=200)
    parser.add_argument(
        "--cap", type=int, help="the pair's max_records_per_cycle (default: the engine's)"
    )
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--trace-memory", action="store_true", help="tracemalloc in the client")
    parser.add_argument(
        "--memray",
        type=Path,
        help="record the client under memray (pip install memray) into this file (diagnosis)",
    )
    parser.add_argument(
        "--profile", type=Path, help="cProfile the client's cycle-by-cycle phases into this file"
    )
    parser.add_argument(
        "--connector-overrides",
        type=Path,
        help='JSON {"salesforce": {...}, "hubspot": {...}} merged into the connector settings',
    )
    parser.add_argument(
        "--keep-workdir", action="store_true", help="keep the store and client.log of each run"
    )
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args()
    sizes = [*args.n, *([1_000_000] if args.big else [])]
    print(f"machine: {machine()}")
    print(f"code: {code_state()}")
    results = []
    for n in sizes:
        results.append(run(n, args))
        if args.json:
            args.json.write_text(
                json.dumps({"machine": machine(), "code": code_state(), "runs": results}, indent=1)
            )


if __name__ == "__main__":
    main()
