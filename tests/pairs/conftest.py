from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from crm_bridge.connectors.hubspot.emulator import RunningHubSpot
from crm_bridge.connectors.marketo.emulator import RunningMarketo
from crm_bridge.connectors.salesforce.emulator import RunningSalesforce
from tests.pairs.harness import MarketoPair

MakePair = Callable[..., MarketoPair]


def _maker(
    crm: str, marketo: RunningMarketo, tmp_path: Path, **emulator: Any
) -> Iterator[MakePair]:
    made: list[MarketoPair] = []

    def build(**kwargs: Any) -> MarketoPair:
        pair = MarketoPair(crm, marketo, tmp_path, **emulator, **kwargs)
        made.append(pair)
        return pair

    yield build
    for pair in made:
        pair.close()


@pytest.fixture
def hubspot_pair(
    hubspot: RunningHubSpot, marketo: RunningMarketo, tmp_path: Path
) -> Iterator[MakePair]:
    """Build ``marketo_hubspot`` pairs (HubSpot as the CRM) on the reset emulators."""
    yield from _maker("hubspot", marketo, tmp_path, hubspot=hubspot)


@pytest.fixture
def salesforce_pair(
    salesforce: RunningSalesforce, marketo: RunningMarketo, tmp_path: Path
) -> Iterator[MakePair]:
    """Build ``marketo_salesforce`` pairs on the reset emulators."""
    yield from _maker("salesforce", marketo, tmp_path, salesforce=salesforce)


@pytest.fixture(params=["hubspot", "salesforce"])
def any_pair(request: pytest.FixtureRequest) -> MakePair:
    """Either Marketo pair: the same scenario must converge with both CRMs."""
    name = "hubspot_pair" if request.param == "hubspot" else "salesforce_pair"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]
