"""Marketo calls of the ``marketo_hubspot`` pair (HubSpot as the CRM) at N leads, vs the minimum.

Why this figure: Marketo's budget is counted in calls for the whole instance (100 / 20 s, 50,000
a day, shared by every integration), so what one sync cycle of the pair spends on Marketo is
what an admin plans around.  Both emulators run in-process on one clock, the real connectors talk
to them over loopback, the store is SQLite in a temp dir.

Minimum Marketo calls (R = 300 records per call), per cycle:

* feed: 1 paging token + lead-changes pages + deletion/merge pages, each pass ⌈log rows/R⌉ pages
  (every page is a window of R log rows of any type, at least one page);
* reads: ⌈changed leads/R⌉ by id;
* writes: ⌈leads to write/R⌉ ``POST leads.json``.

Phases: initial (N leads in Marketo, HubSpot empty: read all, create N contacts), echo (the next
cycle reads nothing back on Marketo and writes nothing), incremental (the CRM edits k contacts:
⌈k/R⌉ Marketo writes), Marketo-side incremental (a marketer edits k leads: feed + ⌈k/R⌉ reads),
CRM creates (N new HubSpot contacts: ⌈N/R⌉ Marketo creates).

Run:  python bench/marketo_pair_bench.py [--n 3000] [--changed 100]
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path
from typing import Any

from crm_bridge.connector import Upsert
from crm_bridge.connectors.marketo import MarketoConnector, MarketoSettings
from crm_bridge.connectors.marketo.client import InstanceBudget
from crm_bridge.demo.marketo import MarketoSandbox
from crm_bridge.http import FakeClock
from crm_bridge.session import Session

R = 300


def pages(rows: int) -> int:
    return max(1, math.ceil(rows / R))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--changed", type=int, default=100)
    args = parser.parse_args()
    n, k = args.n, args.changed
    with MarketoSandbox.start("hubspot", workdir=Path(tempfile.mkdtemp())) as sandbox:
        assert sandbox.hubspot is not None
        config = sandbox.loaded_config()
        settings = config.connectors["marketo"].settings
        assert isinstance(settings, MarketoSettings)
        clock = FakeClock()
        mk = MarketoConnector(
            settings, name="marketo", clock=clock, budget=InstanceBudget(settings, clock)
        )
        # Leads arrive over time (10 a second), as in a real instance: only the last few seconds
        # fall inside the pair's 5 s re-read overlap, not the whole seed.
        ids: list[int] = []
        for start in range(0, n, 10):
            ids += sandbox.marketo.emulator.seed(leads=min(10, n - start), seed=start)
            sandbox.clock.advance(1)
        with Session(config, connectors={"marketo": mk}, now=sandbox.clock.now) as session:
            runner = session.runner("main")
            rows: list[tuple[str, dict[str, int], int, str]] = []

            def phase(name: str, minimum: int, how: str) -> dict[str, Any]:
                before = dict(mk.calls)
                report = runner.run_cycle()
                sandbox.clock.advance(120)
                spent = {
                    c: v - before.get(c, 0) for c, v in mk.calls.items() if v - before.get(c, 0)
                }
                rows.append((name, spent, minimum, how))
                return dict(report.counts)

            log = n  # "New Lead" rows
            phase(
                "initial", 1 + 2 * pages(log) + pages(n), "token + 2 feed passes + reads; 0 writes"
            )
            # the initial cycle wrote nothing to Marketo: the echo cycle reads the same window
            phase(
                "echo",
                1 + 2 * pages(50) + pages(50),
                "token + 2 feed passes + the 5 s overlap (~50 leads)",
            )
            hs = session.connector("hubspot")
            contacts = [r.id for r in hs.changes("contacts", None)][:k]
            hs.write(
                "contacts",
                [
                    Upsert(key=str(i), id=c, fields={"jobtitle": f"CRM edit {i}"})
                    for i, c in enumerate(contacts)
                ],
            )
            sandbox.clock.advance(120)
            phase("crm edits", 1 + 2 * pages(0) + pages(k), f"idle feed + ⌈{k}/300⌉ writes")
            for lead in ids[:k]:
                sandbox.marketo.control(
                    "POST", f"leads/{lead}/edit", {"changes": {"title": "Marketer edit"}}
                )
            sandbox.clock.advance(120)
            phase(
                "marketo edits",
                1 + 2 * pages(2 * k) + pages(k),
                f"feed over ~{2 * k} rows + ⌈{k}/300⌉ reads",
            )
            # N people created in the CRM: the cycle must create them in Marketo in ⌈N/300⌉ writes.
            new = [
                Upsert(key=str(i), fields={"email": f"crm{i}@bench.example", "lastname": "Crm"})
                for i in range(n)
            ]
            for start in range(0, n, 100):
                hs.write("contacts", new[start : start + 100])
            sandbox.clock.advance(120)
            phase(
                "crm creates",
                1 + 2 * pages(2 * k) + pages(k) + pages(n),
                f"feed/reads of the previous edits + ⌈{n}/300⌉ creates",
            )
    print(f"marketo_hubspot pair, N={n} leads, {k} edited per side (Marketo calls per cycle)")
    print(f"{'phase':<15}{'calls':>7}{'minimum':>9}  breakdown / minimum counted as")
    for name, spent, minimum, how in rows:
        total = sum(v for c, v in spent.items())
        detail = " ".join(f"{c}={v}" for c, v in sorted(spent.items()))
        print(f"{name:<15}{total:>7}{minimum:>9}  {detail}  |  {how}")


if __name__ == "__main__":
    main()
