"""The sync client of ``bench/sync_bench.py``, run in its own process so its memory is its own.

The bench process hosts both emulators (about 110 MB per 100k records); this process holds only
what a production ``crm-bridge daemon`` holds: the configuration, the two connectors, the pair
runner and the SQLite store.  The bench reads this process's ``VmHWM`` from
``/proc/<pid>/status``.

Protocol: one JSON object per line on stdin, one JSON reply per line on stdout.  Anything else
the process prints (structlog writes to stdout by default) is moved to stderr first, so the
protocol channel stays clean.

* ``{"cmd": "cycle"}`` -- one ``SyncRunner.run_cycle()``; replies with counts, calls per
  connector and endpoint family, wall-clock start/end and duration.
* ``{"cmd": "daemon", "interval": s, "push": bool, "safety_poll": s}`` -- start
  :class:`~crm_bridge.sync.daemon.Daemon` in a thread (with ``push``, on the connectors' push
  channels, as ``daemon.push = true`` does; the reply says ``"push": false`` when no connector
  has one); every finished cycle is sent as ``{"event": "cycle", ...}``.
  ``{"cmd": "stop"}`` stops it; the reply comes once the daemon has returned, with the calls
  spent while it ran.
* ``{"cmd": "memory", "top": n}`` -- the largest live allocation sites (``tracemalloc``, only
  when the spec asks for it) and the most numerous live object types (``gc``).
* ``{"cmd": "quit"}`` -- also writes the cProfile stats of all ``cycle`` commands when the spec
  names a ``profile`` path.

    python bench/_sync_client.py SPEC.json   # started by bench/sync_bench.py, not by hand
"""

from __future__ import annotations

import cProfile
import gc
import json
import os
import sys
import threading
import time
import traceback
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from crm_bridge.config import LoadedConfig, config_from_tables
from crm_bridge.session import Session
from crm_bridge.sync.daemon import Daemon
from crm_bridge.sync.push import PairFeeds
from crm_bridge.sync.runner import CycleReport, SyncRunner

PAIR = "main"


def own_memory_kb() -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon and RssFile of this process, in kB."""
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            found[key] = int(value.split()[0])
    return found


def build_config(spec: dict[str, Any]) -> LoadedConfig:
    """The same configuration ``Sandbox.loaded_config`` builds, from plain JSON."""
    return config_from_tables(
        spec["connectors"], {"store": {"url": spec["store_url"]}, "pairs": {PAIR: spec["pair"]}}
    )


class Client:
    """One session, one runner, and the calls counted per connector and endpoint family."""

    def __init__(self, spec: dict[str, Any], out: TextIO) -> None:
        self.session = Session(build_config(spec))
        self.runner: SyncRunner = self.session.runner(PAIR)
        self.out = out
        self.out_lock = threading.Lock()
        self.daemon: Daemon | None = None
        self.daemon_thread: threading.Thread | None = None
        self.last_calls = self._calls()
        self.daemon_calls = self.last_calls
        self.last_cpu = time.process_time()
        self.baseline: tracemalloc.Snapshot | None = None
        self.profile_path: str | None = spec.get("profile")
        self.profiler = cProfile.Profile() if self.profile_path else None

    def _calls(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for side, conn in self.runner.connectors.items():
            for family, n in conn.calls.items():
                total[f"{side}.{family}"] += n
        return total

    def _spent(self) -> dict[str, int]:
        now = self._calls()
        spent = now - self.last_calls
        self.last_calls = now
        return dict(spent)

    def send(self, message: dict[str, Any]) -> None:
        with self.out_lock:
            self.out.write(json.dumps(message) + "\n")
            self.out.flush()

    def describe(self, report: CycleReport, started: float) -> dict[str, Any]:
        ended = time.time()
        cpu = time.process_time()
        cpu_spent, self.last_cpu = cpu - self.last_cpu, cpu
        per_object = {obj: dict(kinds) for obj, kinds in report.actions.items()}
        return {
            "counts": dict(report.counts),
            "calls": self._spent(),
            "started": started,
            "ended": ended,
            "seconds": ended - started,
            "actions": per_object,
            "cpu": cpu_spent,
            "memory_kb": own_memory_kb(),
            "traced_kb": tracemalloc.get_traced_memory()[0] // 1024
            if tracemalloc.is_tracing()
            else None,
        }

    def cycle(self) -> dict[str, Any]:
        self.last_calls = self._calls()
        self.last_cpu = time.process_time()
        started = time.time()
        if self.profiler is not None:
            self.profiler.enable()
        try:
            report = self.runner.run_cycle()
        finally:
            if self.profiler is not None:
                self.profiler.disable()
        return self.describe(report, started)

    def start_daemon(
        self, interval: float, *, push: bool = False, safety_poll: float = 600.0
    ) -> dict[str, Any]:
        self.runner.resume()
        self.last_calls = self._calls()
        self.daemon_calls = self._calls()
        self.last_cpu = time.process_time()

        def on_cycle(n: int, report: CycleReport, elapsed: float) -> None:
            self.send({"event": "cycle", "n": n, **self.describe(report, time.time() - elapsed)})

        def pause(seconds: float) -> None:
            if self.daemon is not None:
                self.daemon.wait(seconds)

        feeds = (
            PairFeeds.open(self.runner, debounce=1.0, max_delay=5.0, pause=pause) if push else None
        )
        self.daemon = Daemon(
            runners=[self.runner],
            store=self.session.store,
            interval=interval,
            on_cycle=on_cycle,
            on_error=lambda name, exc: self.send({"event": "error", "error": str(exc)}),
            feeds=[feeds] if feeds is not None else [],
            safety_poll=safety_poll,
        )
        self.daemon_thread = threading.Thread(target=self.daemon.run, name="daemon", daemon=True)
        self.daemon_thread.start()
        sides = sorted(feeds.feeds) if feeds is not None else []
        return {"interval": interval, "push": feeds is not None, "fed_sides": sides}

    def stop_daemon(self) -> dict[str, Any]:
        if self.daemon is None or self.daemon_thread is None:
            return {"cycles": 0}
        self.daemon.stop()
        self.daemon_thread.join()
        stats = self.daemon.stats
        spent = self._calls() - self.daemon_calls
        self.daemon = None
        return {
            "cycles": stats.cycles,
            "hinted_cycles": stats.hinted_cycles,
            "fallbacks": stats.fallbacks,
            "calls": dict(spent),
        }

    def memory(self, top: int, baseline: bool) -> dict[str, Any]:
        gc.collect()
        types = Counter(type(o).__name__ for o in gc.get_objects())
        result: dict[str, Any] = {"gc_types": types.most_common(top), "memory_kb": own_memory_kb()}
        if tracemalloc.is_tracing():
            snap = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__)]
            )
            if self.baseline is not None:
                result["growth_by_line"] = [
                    [str(d.traceback), d.size_diff, d.count_diff]
                    for d in snap.compare_to(self.baseline, "lineno")[:top]
                ]
                result["growth_by_traceback"] = [
                    [d.traceback.format(limit=12), d.size_diff, d.count_diff]
                    for d in snap.compare_to(self.baseline, "traceback")[: max(3, top // 3)]
                ]
            if baseline:
                self.baseline = snap
            if PEAK.snapshot is not None:
                peak = PEAK.snapshot.filter_traces(
                    [tracemalloc.Filter(False, tracemalloc.__file__)]
                )
                result["at_execute_peak_mb"] = PEAK.traced / 2**20
                result["at_execute_peak_by_line"] = [
                    [str(s.traceback), s.size, s.count] for s in peak.statistics("lineno")[:top]
                ]
                result["at_execute_peak_by_traceback"] = [
                    [s.traceback.format(limit=12), s.size, s.count]
                    for s in peak.statistics("traceback")[:top]
                ]
            result["traced_mb"] = tracemalloc.get_traced_memory()[0] / 2**20
            result["by_line"] = [
                [str(s.traceback), s.size, s.count] for s in snap.statistics("lineno")[:top]
            ]
            result["by_traceback"] = [
                [s.traceback.format(limit=12), s.size, s.count]
                for s in snap.statistics("traceback")[: max(3, top // 3)]
            ]
        return result


class PeakProbe:
    """Diagnosis only: a tracemalloc snapshot whenever ``Executor.execute`` starts at a new high.

    That is the moment a cycle holds the most: both sides' changes, their links and the plan.
    The wrapper is installed in this process only and changes nothing in what the engine does.
    """

    def __init__(self) -> None:
        self.traced = 0
        self.snapshot: tracemalloc.Snapshot | None = None

    def install(self) -> None:
        from crm_bridge.sync import executor

        original = executor.Executor.execute

        def execute(this: executor.Executor, plan: Any) -> Any:
            current = tracemalloc.get_traced_memory()[0]
            if current > self.traced:
                self.traced = current
                self.snapshot = tracemalloc.take_snapshot()
            return original(this, plan)

        setattr(executor.Executor, "execute", execute)  # noqa: B010 -- a bench-only probe


PEAK = PeakProbe()


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    if spec.get("trace_memory"):
        tracemalloc.start(int(spec.get("trace_frames", 4)))
        PEAK.install()
    # Keep the protocol on the original stdout; everything else printed goes to stderr.
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    client = Client(spec, protocol)
    client.send({"reply": "ready", "ok": True, "pid": os.getpid()})
    for line in sys.stdin:
        request = json.loads(line)
        cmd = request["cmd"]
        try:
            if cmd == "cycle":
                body = client.cycle()
            elif cmd == "daemon":
                body = client.start_daemon(
                    float(request["interval"]),
                    push=bool(request.get("push")),
                    safety_poll=float(request.get("safety_poll", 600.0)),
                )
            elif cmd == "stop":
                body = client.stop_daemon()
            elif cmd == "memory":
                body = client.memory(int(request.get("top", 15)), bool(request.get("baseline")))
            elif cmd == "quit":
                client.stop_daemon()
                if client.profiler is not None and client.profile_path:
                    client.profiler.dump_stats(client.profile_path)
                client.session.close()
                client.send({"reply": cmd, "ok": True})
                return
            else:
                raise ValueError(f"unknown command {cmd!r}")
            client.send({"reply": cmd, "ok": True, **body})
        except Exception:  # reported to the bench, which stops the run
            client.send({"reply": cmd, "ok": False, "error": traceback.format_exc()})


if __name__ == "__main__":
    main()
