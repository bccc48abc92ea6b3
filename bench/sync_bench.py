"""Sync benchmark on the emulators: API calls vs the theoretical minimum, throughput, latency, RSS.

Prints figures only (no pass/fail).  Minimums follow shared/reference user-asks-and-limits §3:
initial CRM->MAP of N leads = ceil(N/2000) SOQL pages + ceil(N/100) HubSpot batch writes;
an incremental cycle with K changes on one side = max(1, ceil(K/2000)) + ceil(K/100) + 1 idle
read of the other side; an idle cycle = 1 read per side per object.

    python bench/sync_bench.py            # N in {10k}   (add --n 100000 for the 100k run)
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import statistics
import time
from datetime import UTC, datetime

from crm_bridge.demo.sandbox import DEFAULT_PAIR, Sandbox
from crm_bridge.emulators.hubspot import HubSpotEmulatorSettings


def calls(report: object) -> int:
    return sum(report.calls.values())  # type: ignore[attr-defined]


def run(n: int, k: int, tier: int) -> None:
    hs_settings = HubSpotEmulatorSettings(burst_limit=tier, rate_limits_enabled=True)
    with Sandbox.start(hubspot_settings=hs_settings) as sb:
        sb.align_owners()
        sb.salesforce.emulator.seed(leads=n, seed=3)
        pair = {
            **DEFAULT_PAIR,
            "default_map_owner": "71000001",
            "max_records_per_cycle": max(10_000, n),
        }
        with sb.session(sb.loaded_config(pair=pair)) as session:
            runner = session.runner("main")
            t0 = time.perf_counter()
            first = runner.run_cycle()
            initial_s = time.perf_counter() - t0
            created = first.counts["created"] + first.counts["matched"]
            read = first.counts["read_crm"]
            # per object: SOQL pages + HubSpot batch writes + one (empty) HubSpot search
            minimum = (
                math.ceil(read / 2000) + math.ceil(created / 100) + 2 * len(runner.settings.objects)
            )
            print(
                f"N={n}: initial sync created={created} dead_lettered={first.counts['dead_lettered']} "
                f"calls={calls(first)} minimum~{minimum} ratio={calls(first) / minimum:.2f} "
                f"time={initial_s:.1f}s records/s={created / initial_s:.0f} "
                f"ceiling(HubSpot {tier}/10s x100)={tier * 10} ratio={created / initial_s / (tier * 10):.2f}"
            )
            runner.run_cycle()  # read our own writes back once (echoes, 0 writes)
            first_idle = runner.run_cycle()  # re-reads the overlap window once, then settles
            print(
                f"N={n}: first idle cycle after the burst calls={calls(first_idle)} (overlap re-read once)"
            )
            idle = runner.run_cycle()
            objects = len(runner.settings.objects)
            print(
                f"N={n}: steady idle cycle calls={calls(idle)} minimum={2 * objects} writes=0 "
                f"(echo writes: {idle.counts.get('updated', 0)})"
            )
            sf = sb.salesforce.simple_salesforce(username="rick.rep@example.com")
            ids = [r["Id"] for r in sf.query(f"SELECT Id FROM Lead LIMIT {k}")["records"]]
            stamps = []
            for rid in ids:
                sf.Lead.update(rid, {"Title": "Bench VP"})
                stamps.append(time.time())
            t1 = time.perf_counter()
            inc = runner.run_cycle()
            inc_s = time.perf_counter() - t1
            done = time.time()
            lat = sorted(done - s for s in stamps)
            inc_min = max(1, math.ceil(k / 2000)) + math.ceil(k / 100) + objects * 2 - 1
            print(
                f"N={n}: incremental K={k} updated={inc.counts['updated']} calls={calls(inc)} "
                f"minimum~{inc_min} ratio={calls(inc) / inc_min:.2f} time={inc_s:.2f}s "
                f"change-to-visible p50={statistics.median(lat):.2f}s p95={lat[int(0.95 * (len(lat) - 1))]:.2f}s "
                f"(+ poll interval in a daemon)"
            )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"N={n}: peak RSS of bench process (client + both emulators) {rss:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, nargs="*", default=[10_000])
    parser.add_argument("--k", type=int, default=500)
    parser.add_argument("--tier", type=int, default=190, help="HubSpot burst calls per 10 s")
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()} x{os.cpu_count()}, "
        f"python {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d}"
    )
    for n in args.n:
        run(n, args.k, args.tier)


if __name__ == "__main__":
    main()
