"""Both Marketo pairs converge under the emulators' faults: throttling, 5xx and timeouts.

Each case arms one fault on one side (reads or writes) for the first cycle(s), while both sides
have new people and edits.  Whatever the cycle did (retried inside the call, failed the cycle,
dead-lettered a batch), clean cycles afterwards must end with every person once on each side,
linked once, no open dead letter, and a final cycle that writes nothing.  Timeouts are real
socket timeouts (a short client timeout against a held answer); every other wait is on the
injected clocks.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from crm_bridge.emulators.runtime import Fault
from tests.pairs.conftest import MakePair
from tests.pairs.harness import MarketoPair
from tests.sync.emulated import writes

MK_RATE = {"marketo_error": "606"}  # Marketo's throttle: HTTP 200, success false, code 606
MK_READ = r"/rest/v1/(activities|leads)"
MK_WRITE = r"/rest/v1/leads\.json$"
HS_READ = r"/crm/v3/objects/contacts/search"
HS_WRITE = r"/crm/v3/objects/contacts/batch/(create|update|upsert)"
SF_READ = r"/composite$"
SF_WRITE = r"/composite$"

# (side, fault) -- side "marketo" or "crm"; the crm fault depends on the pair.
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "marketo-606-reads": ("marketo", {"path": MK_READ, "method": "GET", "status": 200,
                                      "body": MK_RATE, "times": 3}),
    "marketo-503-reads": ("marketo", {"path": MK_READ, "method": "GET", "status": 503, "times": 2}),
    "marketo-606-writes": ("marketo", {"path": MK_WRITE, "method": "POST", "status": 200,
                                       "body": MK_RATE, "times": 2}),
    "marketo-503-writes": ("marketo", {"path": MK_WRITE, "method": "POST", "status": 503,
                                       "times": 10}),
    "marketo-timeout-reads": ("marketo", {"path": MK_READ, "method": "GET", "latency": 1.5,
                                          "times": 2}),
    "marketo-timeout-write-applied": ("marketo", {"path": MK_WRITE, "method": "POST",
                                                  "latency": 1.5, "after_apply": True,
                                                  "times": 10}),
    "crm-429-reads": ("crm", {"status": 429, "times": 3, "read": True}),
    "crm-503-writes": ("crm", {"status": 503, "times": 10, "read": False}),
}  # fmt: skip


def _crm_fault(p: MarketoPair, spec: dict[str, Any]) -> Fault:
    spec = dict(spec)
    read = spec.pop("read")
    if p.kind == "hubspot":
        path, method = (HS_READ, "POST") if read else (HS_WRITE, "POST")
        return Fault(path=path, method=method, headers={"Retry-After": "1"}, **spec)
    # Salesforce: reads and writes both go through Composite; writes carry sobjects collections.
    regex = None if read else "sobjects"
    return Fault(path=SF_WRITE, method="POST", body_regex=regex, **spec)


def _arm(p: MarketoPair, side: str, spec: dict[str, Any]) -> None:
    if side == "marketo":
        p.marketo.emulator.faults.add(Fault(**spec))
        return
    crm = p.hubspot or p.salesforce
    assert crm is not None
    crm.emulator.faults.add(_crm_fault(p, spec))


def _disarm(p: MarketoPair) -> None:
    p.marketo.emulator.faults.clear()
    crm = p.hubspot or p.salesforce
    assert crm is not None
    crm.emulator.faults.clear()


def _hits(p: MarketoPair) -> int:
    crm = p.hubspot or p.salesforce
    assert crm is not None
    return len(p.marketo.emulator.faults.hits()) + len(crm.emulator.faults.hits())


@pytest.mark.parametrize("case", sorted(CASES))
def test_pair_converges_after_faults(any_pair: MakePair, case: str) -> None:
    side, spec = CASES[case]
    p = any_pair(marketo_overrides={"timeout_seconds": 0.5, "max_attempts": 3})
    first = "firstname" if p.kind == "hubspot" else "FirstName"
    # A linked person both sides already agree on, then new people and edits on both sides.
    old_lead = p.create_lead("old@mkto.example", firstName="Old")
    p.advance(1)
    p.cycle()
    p.cycle()
    old_person = p.people()["old@mkto.example"]["id"]
    for i in range(3):
        p.create_lead(f"m{i}@mkto.example", firstName=f"M{i}")
        p.create_person(f"c{i}@crm.example", **{first: f"C{i}"})
    p.edit_lead(old_lead, title="Edited in Marketo")
    p.advance(1)

    _arm(p, side, spec)
    with contextlib.suppress(Exception):  # a cycle may fail outright; the next ones recover
        p.cycle()
    assert _hits(p) > 0, "the fault never struck: the case tests nothing"
    _disarm(p)
    p.advance(600)  # dead-letter back-off and any Retry-After pass on the emulators' clocks
    for _ in range(3):
        p.cycle()
        p.advance(600)

    emails = {"old@mkto.example"} | {f"m{i}@mkto.example" for i in range(3)}
    emails |= {f"c{i}@crm.example" for i in range(3)}
    people, leads = p.people(), p.leads()
    assert set(people) == set(leads) == emails  # by e-mail: nobody missing, nobody doubled
    assert len(p.marketo.emulator.instance.leads) == len(emails)
    links = p.links()
    assert len(links) == len(emails) == len({link.map_id for link in links})
    assert p.dead_letters() == []
    title = "jobtitle" if p.kind == "hubspot" else "Title"
    assert people["old@mkto.example"][title] == "Edited in Marketo"
    assert people["old@mkto.example"]["id"] == old_person
    before = p.data()
    assert writes(p.cycle()) == {}
    assert p.data() == before
