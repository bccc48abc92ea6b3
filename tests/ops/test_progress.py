"""Progress: periodic ``sync.progress`` lines without a terminal, a rich display with one."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from rich.console import Console

from crm_bridge.ops.events import CycleResult, CycleStart, ObjectResult
from crm_bridge.ops.progress import ProgressSink, describe_backlog
from tests.ops.conftest import JsonLog

NOW = datetime(2026, 3, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def start(calls: list[int]) -> CycleStart:
    return CycleStart(
        pair="main",
        run_id=1,
        objects=("accounts", "leads"),
        backlog={("leads", "crm"): 7200.0},
        api_calls=lambda: calls[0],
    )


def done() -> CycleResult:
    return CycleResult(
        pair="main",
        run_id=1,
        status="ok",
        seconds=1,
        counts={},
        calls={},
        lag_seconds={},
        backlog=(),
        dead_letters=(),
        open_dead_letters=0,
        started_at=NOW,
        finished_at=NOW,
    )


def test_without_a_terminal_a_line_is_logged_every_period(json_log: JsonLog) -> None:
    clock, calls = Clock(), [0]
    sink = ProgressSink(interactive=False, every_seconds=30, monotonic=clock, thread=False)
    sink.cycle_begun(start(calls))
    clock.t, calls[0] = 10, 40
    assert sink.tick() == []  # too soon
    clock.t = 31
    (line,) = sink.tick()
    assert line == ("pair main: accounts (1/2), 40 API calls, 31s; backlog: leads.crm 2.0h behind")
    sink.object_done(
        ObjectResult("main", "accounts", 5, {"read_crm": 7}, {"crm": 0.0, "map": 0.0}, False)
    )
    sink.object_done(ObjectResult("main", "leads", 5, {"read_crm": 9}, {"crm": 0.0}, False))
    clock.t = 62
    (line,) = sink.tick()
    assert "finishing" in line and "backlog: none known" in line
    (event,) = json_log.events("sync.progress")[-1:]
    assert (event["objects_done"], event["read"], event["api_calls"]) == (2, 16, 40)
    sink.cycle_done(done())
    clock.t = 200
    assert sink.tick() == []  # nothing running


def test_in_a_terminal_a_rich_display_follows_the_cycle() -> None:
    clock, calls = Clock(), [3]
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160)
    sink = ProgressSink(console=console, monotonic=clock, thread=False)
    assert sink.interactive
    sink.cycle_begun(start(calls))
    sink.tick()
    sink.object_done(ObjectResult("main", "accounts", 1, {}, {}, False))
    sink.cycle_done(done())
    assert "pair main" in screen.getvalue() and "objects" in screen.getvalue()
    assert sink._progress is None  # the display is gone once no cycle runs


def test_backlog_descriptions() -> None:
    assert describe_backlog({}) == "none known"
    assert describe_backlog({("a", "crm"): 45, ("b", "map"): 90_000}) == (
        "b.map 25.0h behind, a.crm 45s behind"
    )
