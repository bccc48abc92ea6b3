"""The overlap re-read after a bulk write reads the write burst once, not twice.

The overlap window is for changes committed late, so it is measured from when a read ran.  A
read that runs well after our writes (on the vendor's clock, bounded by the stamps of the writes
it reads back, :mod:`crm_bridge.sync.write_clock`) has seen them all: the re-read after it
starts at the newest instant instead of going over the burst again.  A read that ran within the
overlap of the burst keeps the whole window.  The write clock runs on the emulators' clock here,
so moving that clock is time passing for it too (no sleeping).
"""

from __future__ import annotations

from tests.sync.emulated import Emulated, Make

LEADS = 120


def _burst(make: Make) -> Emulated:
    """A pair whose last cycle wrote :data:`LEADS` new leads to HubSpot in one burst."""
    e = make()
    e.runner.write_clock.monotonic = lambda: e.now().timestamp()
    for n in range(LEADS):
        e.create_lead(f"burst{n}@echo.example", LastName=f"Burst{n}", Company="Echo")
    e.advance(1)
    assert e.cycle().counts["created"] >= LEADS
    return e


def test_a_read_long_after_the_burst_makes_the_next_overlap_read_its_newest_instant_only(
    make: Make,
) -> None:
    e = _burst(make)
    e.advance(10)  # twice the overlap: every echo is readable when the read runs
    back = e.cycle()
    assert back.counts["passed_over_map"] >= LEADS  # the echoes, read back once
    again = e.cycle()
    # the newest instant, no more: the last write batch (HubSpot takes 100 a batch), one stamp
    assert again.counts["passed_over_map"] <= LEADS % 100, again.counts
    assert again.counts.get("created", 0) == 0 and again.counts.get("updated", 0) == 0


def test_a_read_within_the_overlap_of_the_burst_reads_it_again(make: Make) -> None:
    e = _burst(make)
    back = e.cycle()  # a second after the burst: part of it may not have been readable yet
    assert back.counts["passed_over_map"] >= LEADS
    again = e.cycle()
    assert again.counts["passed_over_map"] >= LEADS, again.counts


def test_a_marketer_edit_the_search_index_held_back_arrives_with_the_narrowed_reread(
    make: Make,
) -> None:
    """HubSpot's index lags (3 s here, inside the 5 s overlap): an edit made just before a read
    is missing from it, and the re-read after it -- narrowed to when that read ran -- still
    reads it."""
    e = _burst(make)
    e.hubspot.emulator.settings.search_index_lag_seconds = 3
    lead_id, lead = next(iter((r["Id"], r) for r in e.leads().values()))
    contact = e.contacts()[str(lead["Email"]).casefold()]["id"]
    e.advance(5)  # the burst is in the index
    e.update_contact(contact, jobtitle="Held Back")
    back = e.cycle()  # at once: the edit is not in the index yet
    # the other echoes, read back; the edited contact is in none of the pages yet
    assert back.counts["passed_over_map"] >= LEADS - 1 and not back.counts.get("read_map")
    assert e.lead(lead_id)["Title"] != "Held Back"
    e.advance(3)
    e.cycle()
    assert e.lead(lead_id)["Title"] == "Held Back"
