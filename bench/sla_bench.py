"""SLA benchmark: one cycle over 100,000 open clocks; CPU time of evaluation and the calls made.

Run: /work/venv/bin/python bench/sla_bench.py [--clocks 100000] [--due-share 0.01]

The CRM is an in-process connector that counts calls (what a cycle costs is the point, not the
emulator's HTTP speed); the store is a real SQLite file; calendars are real (Europe/Berlin with
German holidays, reps overlaid in other zones).  Figures only, no asserts.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import httpx
import sqlalchemy as sa
from pydantic import SecretStr

from crm_bridge.connector import (
    Activity,
    Capability,
    Connector,
    ConnectorSettings,
    ObjectSpec,
    Owner,
    Record,
    WriteOp,
    WriteResult,
)
from crm_bridge.connectors.salesforce.activities import TIME_QUERY_THRESHOLD
from crm_bridge.sla.engine import SlaEngine, SlaReport
from crm_bridge.sla.policy import SlaSettings
from crm_bridge.sla.repository import SlaRepository
from crm_bridge.store import Store
from crm_bridge.store.schema import sla_clocks

NOW = datetime(2026, 3, 4, 14, 0, tzinfo=UTC)  # a Wednesday afternoon
REPS = 40
ACTIVITY_IDS_PER_CALL = 1_000  # what the Salesforce connector fits in one Composite call


class CountingSettings(ConnectorSettings):
    pass


class CountingCrm(Connector[CountingSettings]):
    """Answers like a CRM with no new changes or touches; counts every call it would make."""

    Settings: ClassVar[type[ConnectorSettings]] = CountingSettings
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.OWNERS, Capability.ACTIVITIES, Capability.TASKS, Capability.BATCH_UPSERT}
    )

    def objects(self) -> Sequence[ObjectSpec]:
        return [ObjectSpec("Lead", "Id", "SystemModstamp", "SystemModstamp", max_batch=1000)]

    def check(self) -> str:
        return "bench"

    def changes(self, obj: str, since: datetime | None) -> Iterator[Record]:
        self.calls["query"] += 1
        return iter(())

    def fetch(self, obj: str, ids: Iterable[str]) -> Iterator[Record]:
        return iter(())

    def write(self, obj: str, ops: Sequence[WriteOp]) -> list[WriteResult]:
        self.calls["write"] += 1
        return [WriteResult.success(op.key, getattr(op, "id", None) or op.key) for op in ops]

    def owners(self) -> Iterator[Owner]:
        self.calls["owners"] += 1
        for n in range(REPS):
            yield Owner(id=f"005{n:015d}", email=f"rep{n}@bench.example")
        yield Owner(id="005NURTURE", email="nurture@bench.example")

    def activities(
        self, obj: str, record_ids: Sequence[str], since: datetime | None
    ) -> Iterator[Activity]:
        # As the Salesforce connector: Task + Event, one Composite call per 1,000 ids each, or
        # one time-based query each when many ids are open and a cursor exists.
        if since is not None and len(record_ids) > TIME_QUERY_THRESHOLD:
            self.calls["activities"] += 2
        else:
            self.calls["activities"] += 2 * -(-len(record_ids) // ACTIVITY_IDS_PER_CALL)
        return iter(())

    def create_tasks(self, obj: str, tasks: Sequence[Any]) -> list[str | None]:
        # As the Salesforce connector: 1,000 tasks per Composite call.
        self.calls["task_batch"] += -(-len(tasks) // 1000)
        return [f"00T{t['record_id']}" for t in tasks]

    def create_task(
        self,
        obj: str,
        record_id: str,
        *,
        owner_id: str | None,
        subject: str,
        body: str = "",
        due: datetime | None = None,
    ) -> str:
        self.calls["task"] += 1
        return f"00T{record_id}"


def settings() -> SlaSettings:
    zones = ["Europe/Berlin", "Europe/London", "America/New_York", "Europe/Madrid"]
    reps = {
        f"rep{n}": {
            "email": f"rep{n}@bench.example",
            "cap": 10_000,
            **({"timezone": zones[n % 4]} if n % 4 else {}),
            **({"time_off": [{"start": "2026-03-04", "end": "2026-03-06"}]} if n % 10 == 0 else {}),
        }
        for n in range(REPS)
    }
    teams = {
        f"team{t}": {"calendar": "de", "members": [f"rep{n}" for n in range(t, REPS, 4)]}
        for t in range(4)
    }
    return SlaSettings.model_validate(
        {
            "crm": {
                "connector": "bench",
                "object": "Lead",
                "owner_field": "OwnerId",
                "status_field": "Status",
                "accepted_statuses": ["Accepted"],
            },
            "calendars": {
                "de": {
                    "timezone": "Europe/Berlin",
                    "holiday_country": "DE",
                    "holiday_subdivision": "BY",
                    "hours": {
                        d: ["09:00-12:00", "13:00-17:30"]
                        for d in ("mon", "tue", "wed", "thu", "fri")
                    },
                }
            },
            "reps": reps,
            "teams": teams,
            "policies": {
                "inbound": {
                    "teams": list(teams),
                    "mql": {"on": "crm"},
                    "accept": {"target_hours": 4},
                    "first_touch": {"target_hours": 8},
                    "remind": {"task": True, "webhook": "ops"},
                    "escalate_webhooks": ["managers"],
                    "breach": [
                        {"action": "escalate"},
                        {"action": "reassign", "after_hours": 1},
                        {"action": "recycle", "after_hours": 4},
                    ],
                }
            },
            "webhooks": {
                "managers": {"url": SecretStr("https://hooks.bench.invalid/s"), "format": "slack"},
                "ops": {"url": SecretStr("https://hooks.bench.invalid/j"), "format": "json"},
            },
            "recycle": {"crm_status": "Recycled", "owner_email": "nurture@bench.example"},
        }
    )


def populate(store: Store, cfg: SlaSettings, n: int, due_share: float, seed: int) -> None:
    """``n`` open clocks; ~``due_share`` of them cross a step threshold right about now."""
    rng = random.Random(seed)
    cal = cfg.calendars["de"]
    rows: list[dict[str, Any]] = []
    reps = list(cfg.reps)
    for i in range(n):
        rep = rng.choice(reps)
        team = cfg.team_of_rep[rep]
        if rng.random() < due_share:
            # Just past the 75% reminder of the accept clock (180 business minutes ago + a bit).
            back = timedelta(minutes=181 + rng.random() * 5)
        else:
            back = timedelta(minutes=rng.random() * 170)  # well inside every threshold
        # Walk back in business time so the clock is where we want it on the rep's calendar.
        assigned = _business_before(cal, NOW, back)
        accepted = rng.random() < 0.5
        rows.append(
            {
                "crm": "bench",
                "lead_id": f"00Q{i:015d}",
                "seq": 1,
                "policy": "inbound",
                "team": team,
                "rep": rep,
                "owner_id": f"005{int(rep[3:]):015d}",
                "assigned_at": assigned,
                "accepted_at": assigned + timedelta(minutes=5) if accepted else None,
                "status": "open",
                "updated_at": NOW,
                "source": rng.choice(["ORGANIC_SEARCH", "PAID_SEARCH", "REFERRALS"]),
            }
        )
    with store.transaction() as tx:
        SlaRepository(tx).conn.execute(sa.insert(sla_clocks), rows)


def _business_before(cal: Any, end: datetime, delta: timedelta) -> datetime:
    # Coarse inverse of add_business_time: step back minute blocks until the gap matches.
    lo, hi = end - delta * 4 - timedelta(days=4), end
    for _ in range(40):
        mid = lo + (hi - lo) / 2
        if cal.business_time_between(mid, end) > delta:
            lo = mid
        else:
            hi = mid
    return hi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clocks", type=int, default=100_000)
    parser.add_argument("--due-share", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cfg = settings()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
        t = time.perf_counter()
        populate(store, cfg, args.clocks, args.due_share, args.seed)
        print(f"populated {args.clocks} open clocks in {time.perf_counter() - t:.1f} s")
        posts = 0

        def hook(request: httpx.Request) -> httpx.Response:
            nonlocal posts
            posts += 1
            return httpx.Response(200)

        http = httpx.Client(transport=httpx.MockTransport(hook))
        crm = CountingCrm(CountingSettings(), name="bench")
        engine = SlaEngine(cfg, crm=crm, marketing=None, store=store, now=lambda: NOW, http=http)

        # 1. evaluation alone (the pure hot path), calendars warm after one pass
        with store.transaction(readonly=True) as tx:
            t, c = time.perf_counter(), time.process_time()
            repo = SlaRepository(tx)
            rows = list(repo.open_clocks("bench"))
            ledger = repo.all_actions("bench")
            load_wall, load_cpu = time.perf_counter() - t, time.process_time() - c
        engine.evaluate_rows(rows, ledger, NOW, SlaReport(started_at=NOW))  # warm-up
        c = time.process_time()
        due = engine.evaluate_rows(rows, ledger, NOW, SlaReport(started_at=NOW))
        eval_cpu = time.process_time() - c
        print(
            f"load open clocks from SQLite: {load_wall:.2f} s wall, {load_cpu:.2f} s CPU "
            f"({len(rows)} rows)"
        )
        print(
            f"evaluate {len(rows)} clocks: {eval_cpu:.3f} s CPU "
            f"({eval_cpu / max(1, len(rows)) * 1e6:.1f} us/clock), {len(due)} steps due"
        )

        # 2. a whole cycle: events (none), touches, evaluation, actions, commit
        t, c = time.perf_counter(), time.process_time()
        report = engine.run_cycle()
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        print(
            f"run_cycle: {wall:.2f} s wall, {cpu:.2f} s CPU "
            f"(evaluation {report.evaluation_cpu_seconds:.3f} s CPU)"
        )
        print(f"  actions: {dict(sorted(report.counts.items()))}")
        print(f"  calls: {dict(sorted(crm.calls.items()))}, webhook POSTs: {posts}")

        # 3. the same cycle again: nothing due, so no action calls
        crm.calls.clear()
        posts = 0
        again = engine.run_cycle()
        print(
            f"re-run: actions {dict(again.counts) or 'none'}, calls {dict(sorted(crm.calls.items()))}, "
            f"webhook POSTs {posts}, evaluation {again.evaluation_cpu_seconds:.3f} s CPU"
        )
        engine.close()
        http.close()
        store.close()


if __name__ == "__main__":
    main()
