"""pytest fixtures: one real Marketo emulator per session, reset before every test.

``marketo_server`` is the session-wide server; ``marketo`` resets data, tokens, faults, call
counts, the clock and the limits and yields the :class:`RunningMarketo`.  Rate limits stay on
(the vendor's 100 / 20 s, 10 in flight, 50,000 a day): the tests' call counts are far below them,
and the tests that exercise them lower them through ``POST /__emulator__/settings``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crm_bridge.connectors.marketo.emulator.emulator import MarketoEmulator, RunningMarketo


@pytest.fixture(scope="session")
def marketo_server() -> Iterator[RunningMarketo]:
    """A Marketo emulator listening on 127.0.0.1 for the whole test session."""
    running = MarketoEmulator().start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def marketo(marketo_server: RunningMarketo) -> RunningMarketo:
    """The session emulator, emptied and with default settings for this test."""
    marketo_server.emulator.reset()
    return marketo_server
