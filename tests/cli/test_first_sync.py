"""A new admin's first sync against both seeded emulators, through the CLI in this process.

The emulators are seeded the way ``crm-bridge emulate all --seed-leads N`` seeds them; the config
and secrets are the ones :meth:`Sandbox.write_config` writes, as an admin's setup would be.  Each
test has its own store, and the seeded data is never written to twice in a way that matters: a
first sync is what is under test.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from crm_bridge.cli import app
from crm_bridge.cli.owners_cmd import STRICT_UNMATCHED_EXIT
from crm_bridge.cli.sync_cmd import DEAD_LETTER_EXIT
from crm_bridge.connectors.hubspot.emulator import HubSpotEmulatorSettings
from crm_bridge.connectors.hubspot.emulator.catalog import OWNERS
from crm_bridge.connectors.salesforce.emulator import SalesforceEmulator
from crm_bridge.demo.sandbox import Sandbox
from crm_bridge.store import Store

SEEDED = 120


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox.start(
        workdir=tmp_path_factory.mktemp("first-sync"),
        hubspot_settings=HubSpotEmulatorSettings(rate_limits_enabled=False),
    ) as running:
        running.salesforce.emulator.seed(leads=SEEDED, seed=0)
        running.hubspot.emulator.seed(contacts=SEEDED, seed=0)
        yield running


class Cli:
    """``crm-bridge VERB --config ...`` in this process with one test's store and secrets."""

    def __init__(self, sandbox: Sandbox, tmp: Path) -> None:
        self.config, secrets = sandbox.write_config(tmp)
        self.store_url = f"sqlite:///{tmp / 'state.sqlite3'}"
        self.env = {k: "" for k in os.environ if k.startswith("CRM_BRIDGE_")}
        self.env.update(secrets)
        self.env["CRM_BRIDGE_STORE__URL"] = self.store_url
        self.env["COLUMNS"] = "250"

    def __call__(self, *args: str, **env: str) -> Result:
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        try:
            return CliRunner().invoke(
                app, [*args, "--config", str(self.config)], env={**self.env, **env}
            )
        finally:  # the CLI logs to the runner's stderr, which is closed once it returns
            root.handlers[:] = handlers
            root.setLevel(level)


@pytest.fixture
def cli(sandbox: Sandbox, tmp_path: Path) -> Cli:
    return Cli(sandbox, tmp_path)


def test_seeded_salesforce_users_are_the_hubspot_owners_by_e_mail(sandbox: Sandbox) -> None:
    """The sales team exists in both systems with the same work e-mail, as in a real company."""
    org = sandbox.salesforce.emulator.org
    sf_emails = {str(u["Email"]).lower() for u in org.stores["User"].records.values()}
    sales = {o.email for o in OWNERS if o.team == "Sales"}
    assert sales <= sf_emails
    owned = {str(r["OwnerId"]) for r in org.stores["Lead"].records.values()}
    owner_emails = {str(org.stores["User"].records[i]["Email"]) for i in owned}
    assert owner_emails <= sales  # every seeded lead's owner has a HubSpot twin


def test_seeding_twice_reuses_the_people_instead_of_adding_users() -> None:
    emulator = SalesforceEmulator()  # not started: seeding needs only the org
    emulator.seed(leads=3, seed=0)
    users = len(emulator.org.stores["User"].records)
    assert users == 1 + 5  # the integration user, the manager and four reps
    emulator.seed(leads=3, seed=5)
    assert len(emulator.org.stores["User"].records) == users


def test_owners_lists_both_sides_and_how_each_matches(cli: Cli) -> None:
    result = cli("owners")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "rick.rep@example.com" in out and "same e-mail" in out
    # The integration user and the marketer exist on one side only: shown, with the fix.
    assert "integration@crm-bridge.example" in out
    assert "UNMATCHED" in out
    assert "set pairs.main.default_map_owner" in out
    assert "CRM_BRIDGE_PAIRS__MAIN__DEFAULT_MAP_OWNER" in out
    assert "crm owners: 5 of 6 match by e-mail" in out

    strict = cli("owners", "--strict")
    assert strict.exit_code == STRICT_UNMATCHED_EXIT


def test_owners_shows_the_default_owner_standing_in(cli: Cli) -> None:
    result = cli("owners", CRM_BRIDGE_PAIRS__MAIN__DEFAULT_MAP_OWNER="71000001")
    assert result.exit_code == 0, result.output
    assert "default owner" in result.output
    assert "the rest go to default_map_owner 71000001" in result.output
    bad = cli("owners", CRM_BRIDGE_PAIRS__MAIN__DEFAULT_MAP_OWNER="999")
    assert "pairs.main.default_map_owner = '999' is no map owner of hubspot" in bad.output


def test_first_sync_dead_letters_no_owner_and_exits_0(cli: Cli) -> None:
    result = cli("sync")
    assert result.exit_code == 0, result.output
    assert "created=" in result.output
    with Store.open(cli.store_url) as store, store.transaction(readonly=True) as tx:
        letters = tx.dead_letters(pair="main", status="open", limit=100_000)
    codes = {dl.error_code for dl in letters}
    assert "OWNER_NOT_FOUND" not in codes, codes
    # What is left are the seeds' deliberate duplicates (same e-mail twice on one side).
    assert codes <= {"DUPLICATE_IDENTITY"}, codes


def test_a_run_over_the_dead_letter_threshold_names_the_codes_and_exits_5(cli: Cli) -> None:
    """With the ratio at 0 and no floor, the seeds' duplicates alone trip it."""
    result = cli("sync", "--max-dead-letter-ratio", "0", CRM_BRIDGE_SYNC__DEAD_LETTER_FLOOR="0")
    assert result.exit_code == DEAD_LETTER_EXIT == 5, result.output
    assert "over sync.max_dead_letter_ratio = 0%" in result.output
    assert "DUPLICATE_IDENTITY:" in result.output
    assert "merge the two records" in result.output  # the fix from the one table
    assert "crm-bridge dlq list --summary --pair main" in result.output

    summary = cli("dlq", "list", "--summary")
    assert summary.exit_code == 0, summary.output
    assert "DUPLICATE_IDENTITY" in summary.output and "merge the two records" in summary.output


def test_sync_until_caught_up_runs_an_initial_load_to_its_end_in_one_command(cli: Cli) -> None:
    capped = {"CRM_BRIDGE_PAIRS__MAIN__MAX_RECORDS_PER_CYCLE": "40"}

    def summaries(output: str) -> list[str]:
        return [line for line in output.splitlines() if line.strip().startswith("pair=main")]

    def crm_phase() -> str:
        with Store.open(cli.store_url) as store, store.transaction(readonly=True) as tx:
            cursor = tx.get_change_cursor("main", "crm", "leads")
        assert cursor is not None
        return cursor.phase

    once = cli("sync", "--max-dead-letter-ratio", "1", **capped)
    assert once.exit_code == 0, once.output
    assert len(summaries(once.output)) == 1
    assert crm_phase() == "scanning"  # 120 seeded leads, 40 a cycle: more is waiting
    result = cli("sync", "--until-caught-up", "--max-dead-letter-ratio", "1", **capped)
    assert result.exit_code == 0, result.output
    assert len(summaries(result.output)) >= 2, result.output  # one line per cycle
    assert crm_phase() != "scanning"  # read to the end in one command
