"""Marketo API calls for a first load, a first read and an incremental cycle, vs the minimum.

Why calls and not seconds: Marketo's budget is counted in calls -- 100 per 20 s and 50,000 a
day for the whole instance, shared by every integration -- so what the connector spends per
cycle is the figure an admin needs.  The emulator runs in-process with its limits off (the
connector's own pacing is set out of the way too), the connector talks to it over loopback.

Theoretical minimum (R = 300 records per call):

* initial write: ⌈N/R⌉ ``POST leads.json`` calls;
* a change cycle: one paging token, then two passes over the activity log since ``since`` --
  lead changes, and deletions + merges -- each ⌈rows/R⌉ pages, because every feed page is a
  window of R log rows of *any* type (at least one page each), and ⌈changed/R⌉ reads by id.
  The first read (since=None) is that cycle over the whole log: rows = N "New Lead" rows.

Metadata read once per connector (``leads/describe.json``, ``activities/types.json``) and the
identity call are listed apart.

Run:  python bench/marketo_calls.py [--n 10000] [--changed-pct 1]
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter

from pydantic import SecretStr

from crm_bridge.connector import Upsert
from crm_bridge.connectors.marketo import MarketoConnector, MarketoSettings
from crm_bridge.connectors.marketo.emulator import MarketoEmulator

R = 300
METADATA = ("identity",)


def spent(conn: MarketoConnector, before: Counter[str]) -> Counter[str]:
    return conn.calls - before


def line(label: str, calls: Counter[str], minimum: int, seconds: float) -> str:
    total = sum(calls.values())
    detail = ", ".join(f"{k}={v}" for k, v in sorted(calls.items()))
    return f"{label:<22} {total:>6} {minimum:>8} {total / max(minimum, 1):>6.2f}x {seconds:>7.2f}s  {detail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="leads (default 10,000)")
    parser.add_argument("--changed-pct", type=float, default=1.0, help="share changed, in %%")
    args = parser.parse_args()
    n = args.n
    changed = max(1, round(n * args.changed_pct / 100))

    emulator = MarketoEmulator()
    emulator.configure(rate_limits_enabled=False)
    with emulator.start() as running:
        settings = MarketoSettings(
            base_url=running.base_url,
            client_id=running.client_id,
            client_secret=SecretStr(running.client_secret),
            rate_limit_calls=1_000_000,
            daily_call_limit=10_000_000,
        )
        with MarketoConnector(settings, name="bench") as conn:
            rows = []
            t0 = time.perf_counter()
            ops = [
                Upsert(
                    f"k{i}",
                    {"email": f"lead{i}@example.com", "firstName": f"F{i}"},
                    match_on="email",
                )
                for i in range(n)
            ]
            before = conn.calls.copy()
            for start in range(0, n, R):
                results = conn.write("leads", ops[start : start + R])
                assert all(r.ok for r in results), [r for r in results if not r.ok][:3]
            ids = [r.id for r in results]
            write_calls = spent(conn, before)
            write_calls.pop("identity", None)  # the token, fetched once
            rows.append(("initial write", write_calls, math.ceil(n / R), time.perf_counter() - t0))

            t0 = time.perf_counter()
            before = conn.calls.copy()
            records = list(conn.changes("leads", None))
            assert len(records) == n, len(records)
            read_calls = spent(conn, before)
            minimum = 1 + 2 * math.ceil(n / R) + math.ceil(n / R)
            rows.append(("first read", read_calls, minimum, time.perf_counter() - t0))
            all_ids = sorted({r.id for r in records}, key=int)
            del ids

            emulator.clock.advance(60)
            since = emulator.clock.now()
            step = max(1, n // changed)
            targets = all_ids[::step][:changed]
            for rid in targets:  # a person's edits in the Marketo UI
                running.control("POST", f"leads/{rid}/edit", {"changes": {"title": "Changed"}})
            t0 = time.perf_counter()
            before = conn.calls.copy()
            got = list(conn.changes("leads", since))
            assert sorted(r.id for r in got) == sorted(targets), (len(got), len(targets))
            inc_calls = spent(conn, before)
            log_rows = len(targets)  # one "Change Data Value" row per edit
            minimum = 1 + 2 * math.ceil(log_rows / R) + math.ceil(len(targets) / R)
            rows.append(
                (f"incremental ({len(targets)})", inc_calls, minimum, time.perf_counter() - t0)
            )

            emulator.clock.advance(60)
            since = emulator.clock.now()
            t0 = time.perf_counter()
            before = conn.calls.copy()
            assert list(conn.changes("leads", since)) == []
            rows.append(("idle cycle", spent(conn, before), 3, time.perf_counter() - t0))

        print(f"Marketo connector calls, N={n:,} leads, {args.changed_pct:g}% changed")
        print(f"{'phase':<22} {'calls':>6} {'minimum':>8} {'ratio':>7} {'time':>8}  by family")
        for label, calls, minimum, seconds in rows:
            print(line(label, calls, minimum, seconds))
        print(
            "(first read also looks up leads/describe.json and activities/types.json once per "
            "connector; identity calls are counted under 'identity')"
        )


if __name__ == "__main__":
    main()
