"""The calendar guide's ``overlay`` snippet, run as written on the TOML shapes the docs show.

Why: the snippet used to pass the raw rep table to ``overlay``, which refuses the rep's identity
keys (``email``, ``slack``, ``cap``) that every rep table of docs/sla.md carries; an admin
following the docs got a validation error.  These tests execute the documented code itself, so
the docs cannot drift from what works.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CALENDARS = ROOT / "docs/sla-calendars.md"
SLA = ROOT / "docs/sla.md"


def _blocks(path: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


def _snippet() -> str:
    (found,) = [b for b in _blocks(CALENDARS, "python") if "tomllib.loads(text)" in b]
    return found


def _run(text: str) -> Any:
    namespace: dict[str, Any] = {
        "text": text,
        "assigned_at": datetime(2026, 3, 6, 15, 0, tzinfo=UTC),  # a Friday afternoon
        "timedelta": timedelta,
    }
    exec(compile(_snippet(), str(CALENDARS), "exec"), namespace)
    return namespace


def test_the_snippet_works_on_the_calendar_guides_own_toml() -> None:
    (toml,) = [b for b in _blocks(CALENDARS, "toml") if "[sla.reps.alice]" in b]
    ran = _run(toml)
    alice = ran["alice"]
    assert str(alice.timezone) == "Europe/London"
    assert alice.hours["friday"] == []  # Fridays off, as the rep table says
    # Friday off: four business hours from Friday 15:00 run on Monday in London (GMT in March),
    # 09:00-12:00 then 13:00-14:00 around the team's lunch break.
    assert ran["deadline"] == datetime(2026, 3, 9, 14, 0, tzinfo=UTC)


def test_the_snippet_works_on_a_rep_table_shaped_like_docs_sla() -> None:
    """docs/sla.md's rep has email, slack, cap, timezone and time_off: the same code works."""
    (toml,) = [b for b in _blocks(SLA, "toml") if "[sla.reps.alice]" in b]
    assert 'slack = "U0ALICE"' in toml and "cap = 25" in toml  # the shape under test
    ran = _run(toml)
    assert str(ran["alice"].timezone) == "Europe/London"
    assert ran["deadline"] > ran["assigned_at"]


def test_the_raw_rep_table_is_what_overlay_refuses() -> None:
    """Guards the reason for the documented route: the raw table's identity keys are refused."""
    import tomllib

    import pytest
    from pydantic import ValidationError

    from crm_bridge.sla.calendar import BusinessCalendar, overlay

    (toml,) = [b for b in _blocks(SLA, "toml") if "[sla.reps.alice]" in b]
    cfg = tomllib.loads(toml)["sla"]
    team = BusinessCalendar.model_validate(cfg["calendars"]["emea"])
    with pytest.raises(ValidationError, match="email"):
        overlay(team, cfg["reps"]["alice"])
