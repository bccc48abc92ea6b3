"""``dlq list`` filters and ``--summary``, and the one table of code -> fix behind them."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from crm_bridge.cli import app
from crm_bridge.cli.sync_cmd import filter_dead_letters, summarize_dead_letters
from crm_bridge.dead_letter_fixes import DEAD_LETTER_FIXES, FALLBACK_FIX, fix_for
from crm_bridge.store import DeadLetter, Store

ROOT = Path(__file__).resolve().parents[2]
DAY1 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
DAY2 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_docs_errors_show_the_same_fix_for_every_code() -> None:
    text = (ROOT / "docs/errors.md").read_text(encoding="utf-8")
    documented = dict(re.findall(r"^\| `([A-Z_]+)` \| [^|]+ \| (.+) \|$", text, re.M))
    assert documented == {code: f.fix for code, f in DEAD_LETTER_FIXES.items()}
    assert FALLBACK_FIX in text
    assert fix_for("SOMETHING_NEW") == FALLBACK_FIX
    assert "default_map_owner" in fix_for("OWNER_NOT_FOUND")


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    with Store.open(url) as store, store.transaction() as tx:
        for i, (obj, code, at) in enumerate(
            [
                ("leads", "OWNER_NOT_FOUND", DAY1),
                ("leads", "OWNER_NOT_FOUND", DAY2),
                ("deals", "OWNER_NOT_FOUND", DAY2),
                ("leads", "DUPLICATE_IDENTITY", DAY1),
                ("leads", None, DAY2),
            ]
        ):
            tx.add_dead_letter(
                pair="main",
                side="map",
                obj=obj,
                record_key=f"r{i}",
                operation="create",
                payload={},
                reason=f"reason {i}",
                error_code=code,
                now=at,
            )
    return url


def _letters(url: str) -> list[DeadLetter]:
    with Store.open(url) as store, store.transaction(readonly=True) as tx:
        return tx.dead_letters(status="open", limit=100)


def test_filters_combine_code_object_and_since(store_url: str) -> None:
    letters = _letters(store_url)
    assert len(filter_dead_letters(letters, code="owner_not_found")) == 3
    assert len(filter_dead_letters(letters, code="OWNER_NOT_FOUND", obj="Leads")) == 2
    found = filter_dead_letters(letters, code="OWNER_NOT_FOUND", obj="leads", since=DAY2)
    assert [dl.record_key for dl in found] == ["r1"]


def test_summary_counts_by_code_most_frequent_first_with_the_fix(store_url: str) -> None:
    rows = summarize_dead_letters(_letters(store_url))
    assert [(code, n) for code, n, _ in rows] == [
        ("OWNER_NOT_FOUND", 3),
        ("DUPLICATE_IDENTITY", 1),
        ("(no code)", 1),
    ]
    assert rows[0][2] == DEAD_LETTER_FIXES["OWNER_NOT_FOUND"].fix
    assert rows[2][2] == FALLBACK_FIX


def _cli(store_url: str, *args: str) -> Result:
    root = logging.getLogger()
    handlers = list(root.handlers)
    try:
        return CliRunner().invoke(
            app,
            ["dlq", "list", *args, "--config", str(ROOT / "tests/fixtures/memory.toml")],
            env={"CRM_BRIDGE_STORE__URL": store_url, "COLUMNS": "250"},
        )
    finally:
        root.handlers[:] = handlers


def test_cli_summary_and_filters(store_url: str) -> None:
    summary = _cli(store_url, "--summary", "--object", "leads")
    assert summary.exit_code == 0, summary.output
    assert "(4 in all)" in summary.output
    assert "OWNER_NOT_FOUND" in summary.output and "crm-bridge owners" in summary.output

    listed = _cli(store_url, "--code", "DUPLICATE_IDENTITY")
    assert listed.exit_code == 0, listed.output
    assert "reason 3" in listed.output and "reason 0" not in listed.output

    since = _cli(store_url, "--since", "2026-03-02", "--summary")
    assert "(3 in all)" in since.output

    bad = _cli(store_url, "--since", "yesterday")
    assert bad.exit_code == 2 and "is not a date" in bad.output


def test_the_dead_letter_share_needs_both_the_ratio_and_the_floor() -> None:
    from crm_bridge.cli.sync_cmd import dead_letter_share
    from crm_bridge.config import SyncSettings
    from crm_bridge.sync.runner import CycleReport

    first_sync = CycleReport("main")
    first_sync.counts.update(created=1222, dead_lettered=3278)
    share = dead_letter_share(first_sync, SyncSettings())
    assert share.handled == 4500 and share.over and round(share.ratio, 2) == 0.73

    quiet = CycleReport("main")
    quiet.counts.update(updated=2, dead_lettered=1, echoes_skipped=40)  # echoes are not handled
    small = dead_letter_share(quiet, SyncSettings())
    assert small.handled == 3 and not small.over  # 33%, but under the floor of 10
    assert dead_letter_share(quiet, SyncSettings(dead_letter_floor=0)).over
