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
