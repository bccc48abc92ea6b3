"""An initial load read through one Bulk 2.0 snapshot, cycle after cycle, on both emulators."""

from __future__ import annotations

from tests.sync.emulated import Make

BULK = {"query_batch_size": 200, "bulk_query_threshold": 300, "bulk_query_page": 200}


def test_an_initial_load_over_several_capped_cycles_runs_one_bulk_job_and_loses_nothing(
    make: Make,
) -> None:
    e = make(pair={"max_records_per_cycle": 150}, salesforce_overrides=BULK)
    e.salesforce.emulator.seed(leads=450)
    org = e.salesforce.emulator.org
    live = [r for r in org.stores["Lead"].records.values() if not r.get("IsDeleted")]
    people = [*live, *org.stores["Contact"].records.values()]  # the pair syncs both as people
    # A lead and a contact sharing an e-mail are one person in HubSpot.
    expected = sorted({str(r["Email"]).lower() for r in people if r.get("Email")})
    e.advance(1)
    # A rep edits a lead while the load is under way (after the job's cut-off).
    first = e.cycle()
    assert e.crm._snapshots  # the load is under way from the snapshot
    late = sorted(live, key=lambda r: str(r["SystemModstamp"]))[-1]
    e.update_lead(str(late["Id"]), Company="Changed mid-load")
    reports = [first, *(e.cycle() for _ in range(9))]
    query_jobs = [job for job in org.bulk_jobs.values() if job.is_query]
    assert len(query_jobs) == 1  # the later cycles read the spooled snapshot
    contacts = e.contacts()
    emails = sorted(str(c["email"]).lower() for c in contacts.values() if c.get("email"))
    assert emails == expected  # every lead once: no loss, no duplicate
    by_email = {str(c["email"]).lower(): c for c in contacts.values() if c.get("email")}
    assert by_email[str(late["Email"]).lower()]["company"] == "Changed mid-load"
    assert sum(r.counts["read_crm"] for r in reports[-2:]) < 10  # the load is over
    assert e.crm._snapshots == {}  # the cursor passed the cut-off: the spool is gone
