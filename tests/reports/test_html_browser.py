"""The HTML report in a real headless Chromium: it renders, has its charts, logs no console error.

Chromium comes from Debian's packages (``apt-get install -y chromium``, done by ``.ci/run``); no
driver or extra download is needed: ``--dump-dom`` prints the DOM after scripts ran, and
``--enable-logging=stderr`` prints every console message (errors and uncaught exceptions
included) as a ``CONSOLE`` line.  A deliberately broken page proves the detector itself works.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crm_bridge.funnel.fill import funnel_from_store
from crm_bridge.funnel.repository import EventRepository
from crm_bridge.reports.model import build_report
from crm_bridge.reports.render_html import render_html
from crm_bridge.store import Store
from tests.funnel.brute import brute_funnel
from tests.funnel.test_model import NOW, random_log
from tests.reasons.conftest import reasons_settings

from .test_report import FIXTURE

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((path for name in CANDIDATES if (path := shutil.which(name))), None)
pytestmark = pytest.mark.skipif(
    BROWSER is None,
    reason="no Chromium binary on PATH (CI installs it: apt-get install -y chromium)",
)


@dataclass(frozen=True)
class Rendered:
    dom: str
    console: list[str]


def _render(
    page: Path,
    profile: Path,
    *,
    size: tuple[int, int] = (1280, 900),
    screenshot: Path | None = None,
) -> Rendered:
    assert BROWSER is not None
    action = [f"--screenshot={screenshot}"] if screenshot is not None else ["--dump-dom"]
    done = subprocess.run(
        [
            BROWSER,
            f"--window-size={size[0]},{size[1]}",
            "--hide-scrollbars",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=3000",
            *action,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return Rendered(done.stdout, console)


def test_report_renders_with_charts_and_no_console_errors(tmp_path: Path) -> None:
    model = build_report(FIXTURE, reasons_settings(), generated_at=datetime(2026, 4, 1, tzinfo=UTC))
    page = tmp_path / "report.html"
    page.write_text(render_html(model), encoding="utf-8")

    result = _render(page, tmp_path / "profile")

    assert result.console == []
    charts = re.search(r'<html[^>]*\sdata-charts="(\d+)"', result.dom)
    assert charts is not None, "the inline script did not run"
    assert int(charts.group(1)) == result.dom.count('<svg class="chart"') >= 5
    assert result.dom.count("<rect") >= len(model.months) + len(model.reasons)
    assert "Trend by month" in result.dom and "Reason capture by rep" in result.dom


DESKTOP, PHONE = (1280, 900), (390, 844)


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_funnel_section_numbers_match_the_store(tmp_path: Path, size: tuple[int, int]) -> None:
    """Stage counts and loss counts read back from the rendered DOM equal a brute-force count
    of the events in the store; nothing is wider than a phone; screenshots are taken."""
    events = random_log(11)
    with Store.open(f"sqlite:///{tmp_path / 'state.sqlite3'}") as store:
        with store.transaction() as tx:
            EventRepository(tx).append(events, now=NOW)
        funnel = funnel_from_store(store, generated_at=NOW)
    report = build_report(FIXTURE, reasons_settings(), generated_at=NOW)
    page = tmp_path / "report.html"
    page.write_text(render_html(report, funnel=funnel), encoding="utf-8")

    result = _render(page, tmp_path / "profile", size=size)
    shot = tmp_path / f"report-{size[0]}.png"
    _render(page, tmp_path / "profile-shot", size=size, screenshot=shot)

    assert result.console == []
    assert _png_size(shot) == size
    assert re.search(r'<html[^>]*\sdata-overflow="false"', result.dom), "page wider than window"
    expected = brute_funnel(events, NOW)
    shown = dict(re.findall(r'<g class="stage" data-stage="(\w+)" data-count="(\d+)"', result.dom))
    assert shown == {
        s: str(expected[f"count.{s}"]) for s in ("mql", "sal", "sql", "opportunity", "won")
    }
    losses = dict(re.findall(r'data-loss="(\w+)" data-count="(\d+)"', result.dom))
    assert losses == {s: str(expected[f"loss.{s}"]) for s in ("rejected", "disqualified", "lost")}
    assert result.dom.index('id="funnel"') < result.dom.index("Trend by month")
    assert "By content engagement" in result.dom and "By source" in result.dom


def test_the_detector_sees_console_errors(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><body><script>console.error('boom'); missing();</script>"
        "</body></html>",
        encoding="utf-8",
    )
    result = _render(page, tmp_path / "profile")
    assert any("boom" in line for line in result.console)
    assert any("Uncaught ReferenceError" in line for line in result.console)
