"""Who an event is about: one key per person across both systems.

Why a directory rather than a lookup per event: the same person appears as a HubSpot contact, a
Salesforce lead, later a Salesforce contact, and on opportunities only through contact roles or
the lead's conversion.  The store's links (and the events already logged) say which records are
one person; the directory gathers that once and answers every event from memory.
"""

from __future__ import annotations

from collections.abc import Iterable

from crm_bridge.funnel.events import person_key
from crm_bridge.store import Link

__all__ = ["PersonDirectory"]


class PersonDirectory:
    """``(system, record id) -> person`` and ``deal id -> person``, filled from what is known."""

    def __init__(self, known: dict[tuple[str, str], str] | None = None) -> None:
        self._records: dict[tuple[str, str], str] = dict(known or {})
        self._links: dict[int, str] = {}
        self._deals: dict[str, str] = {}

    def add_links(self, links: Iterable[Link], *, crm: str, marketing: str) -> None:
        """Both ids of every link name one person (its identity, the e-mail it matched on)."""
        for link in links:
            ids = [(crm, link.crm_id), (marketing, link.map_id)]
            found = next(
                (self._records[(s, i)] for s, i in ids if i and (s, i) in self._records), None
            )
            person = found or (
                person_key(link.identity, "link", str(link.id)) if link.identity else None
            )
            if person is None:
                person = f"link:{link.id}"
            self._links[link.id] = person
            for system, record_id in ids:
                if record_id:
                    self._records.setdefault((system, record_id), person)

    def remember(self, system: str, record_id: str, person: str) -> None:
        """A record now known to be ``person`` (first answer wins)."""
        self._records.setdefault((system, record_id), person)

    def remember_deal(self, deal_id: str, person: str) -> None:
        """A deal whose person is known (a conversion, a contact role)."""
        self._deals.setdefault(deal_id, person)

    def person(self, system: str, record_id: str, email: str | None = None) -> str:
        """The person of a record: by e-mail, else by what links and events said, else its id."""
        if email and "@" in email:
            key = person_key(email, system, record_id)
            self.remember(system, record_id, key)
            return key
        return self._records.get((system, record_id)) or person_key(None, system, record_id)

    def of_link(self, link_id: int) -> str | None:
        """The person a link stands for, if the link is known."""
        return self._links.get(link_id)

    def of_deal(self, deal_id: str) -> str | None:
        """The person a deal belongs to, if known."""
        return self._deals.get(deal_id)
