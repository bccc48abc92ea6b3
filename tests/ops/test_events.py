"""The engine's own log events, on both emulators, read back from the JSON log."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta

import pytest

from crm_bridge.config import LoggingSettings
from crm_bridge.errors import SyncAbortedError
from crm_bridge.log import configure_logging
from crm_bridge.ops.events import cursor_lag
from crm_bridge.store import ChangeCursor
from tests.ops.conftest import JsonLog
from tests.sync.emulated import Make


def test_a_cycle_logs_start_object_and_end_events_with_counts_calls_and_duration(
    make: Make, json_log: JsonLog
) -> None:
    e = make()
    e.create_lead("lead@lead.example")
    e.create_contact("contact@contact.example")
    e.advance(1)

    report = e.cycle()

    (start,) = json_log.events("sync.cycle.start")
    assert start["pair"] == "main" and start["run_id"] == report.run_id
    assert "leads" in start["objects"] and start["level"] == "info"
    objects = {ev["object"]: ev for ev in json_log.events("sync.object.end")}
    assert set(objects) == set(start["objects"])
    assert objects["leads"]["counts"]["created"] == 2
    assert objects["leads"]["capped"] is False and objects["leads"]["lag_seconds"] == {
        "crm": 0.0,
        "map": 0.0,
    }
    (end,) = json_log.events("sync.cycle.end")
    assert end["status"] == "ok" and end["error"] is None
    assert end["counts"]["created"] == report.counts["created"] == 2
    # API calls by connector and endpoint family add up to what the run recorded.
    assert {name: sum(f.values()) for name, f in end["calls"].items()} == report.calls
    assert end["api_calls"] == sum(report.calls.values()) > 0
    assert all(isinstance(n, int) for f in end["calls"].values() for n in f.values())
    assert end["seconds"] >= 0 and end["dead_lettered"] == 0 and end["backlog"] == []


def test_dead_letters_and_a_tripped_guard_are_events(make: Make, json_log: JsonLog) -> None:
    e = make(pair={"delete_guard_floor": 0, "max_delete_ratio": 0.2})
    solo = e.salesforce.emulator.org.add_user(
        "solo.rep@example.com", "Solo", "Rep", email="solo.rep@example.com"
    )
    orphan = e.create_lead("orphan@lead.example", OwnerId=solo)
    kept = e.create_lead("kept@lead.example")
    e.advance(1)
    e.cycle()

    (letter,) = json_log.events("sync.dead_letter")
    assert letter["record"] == orphan and letter["code"] == "OWNER_NOT_FOUND"
    assert letter["level"] == "warning" and letter["pair"] == "main"
    assert json_log.events("sync.cycle.end")[-1]["dead_lettered"] == 1
    assert json_log.events("sync.cycle.end")[-1]["open_dead_letters"] == 1

    e.delete_lead(kept)
    e.advance(1)
    with pytest.raises(SyncAbortedError):
        e.runner.run_cycle()
    (trip,) = json_log.events("sync.guard.tripped")
    assert "max_delete_ratio" in trip["error"]
    end = json_log.events("sync.cycle.end")[-1]
    assert (end["status"], end["error_class"], end["level"]) == (
        "aborted",
        "SyncAbortedError",
        "error",
    )


def test_a_capped_read_reports_the_backlog_and_its_lag(make: Make, json_log: JsonLog) -> None:
    e = make(pair={"max_records_per_cycle": 2})
    for i in range(5):
        e.create_lead(f"l{i}@lead.example")
        e.advance(60)
    e.advance(3600)

    e.cycle()

    leads = next(ev for ev in json_log.events("sync.object.end") if ev["object"] == "leads")
    assert leads["capped"] is True
    # The last lead taken was modified over an hour before now: that is how far behind it is.
    assert leads["lag_seconds"]["crm"] > 3600
    end = json_log.events("sync.cycle.end")[-1]
    assert "leads" in end["backlog"] and end["lag_seconds"]["leads.crm"] > 3600
    e.cycle()
    assert json_log.events("sync.cycle.start")[-1]["backlog"]["leads.crm"] > 3600


def test_cursor_lag_counts_only_a_capped_read() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    old = now - timedelta(hours=2)
    assert cursor_lag(None, now) is None
    assert cursor_lag(ChangeCursor(newest=(old, "a"), phase="settled"), now) == 0.0
    scanning = ChangeCursor(newest=(now, "z"), phase="scanning", position=(old, "a"))
    assert cursor_lag(scanning, now) == 7200.0


@pytest.mark.parametrize("level", ["info", "debug"])
def test_library_noise_shows_only_at_debug(level: str) -> None:
    stream = io.StringIO()
    configure_logging(LoggingSettings(format="kv", level=level), stream=stream)  # type: ignore[arg-type]
    try:
        logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
        logging.getLogger("httpx").info("HTTP Request: GET https://x")
        logging.getLogger("urllib3.connectionpool").warning("Retrying connection")
        logging.getLogger("crm_bridge.events").info("ours")
    finally:
        configure_logging(LoggingSettings(), stream=io.StringIO())
    text = stream.getvalue()
    assert "ours" in text and "Retrying connection" in text  # warnings always show
    shown = "Context impl" in text and "HTTP Request" in text
    assert shown is (level == "debug")
