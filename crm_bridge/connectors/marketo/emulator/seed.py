"""Deterministic, realistic-looking leads for demos and volume tests.

Why deterministic: a failing test or a demo run must be reproducible from its seed.
"""

from __future__ import annotations

import random
from typing import Any

__all__ = ["seed_leads"]

_FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim")
_LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson")
_COMPANIES = ("Initech", "Globex", "Umbrella", "Hooli", "Vandelay", "Acme", "Stark", "Wayne")
_TITLES = ("VP Marketing", "Marketing Ops Manager", "CMO", "Demand Gen Lead", "Analyst")


def seed_leads(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` lead field dicts with unique emails (same seed, same leads)."""
    rng = random.Random(seed)
    leads = []
    for i in range(count):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        company = rng.choice(_COMPANIES)
        leads.append(
            {
                "email": f"{first}.{last}.{seed}.{i}@{company.lower()}.example".lower(),
                "firstName": first,
                "lastName": last,
                "company": company,
                "title": rng.choice(_TITLES),
                "leadScore": rng.randint(0, 100),
                "leadSource": rng.choice(("Web", "Event", "Partner", "Paid Search")),
            }
        )
    return leads
