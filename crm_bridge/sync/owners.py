"""Owner mapping: a CRM user and a marketing-platform owner are the same person by e-mail.

The logical value of an owner field is the owner's e-mail, so the planner compares people, not
vendor ids.  When no owner on the target side has that e-mail, the pair's default owner is used
if one is configured; otherwise the record is dead-lettered with a reason naming the e-mail.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from crm_bridge.connector import Owner
from crm_bridge.store import Side

__all__ = ["UNMAPPED_PREFIX", "OwnerDirectory"]

UNMAPPED_PREFIX = "unmapped-owner:"


@dataclass
class OwnerDirectory:
    """Both sides' owners, indexed by id and by lower-cased e-mail."""

    _email_by_id: dict[Side, dict[str, str]] = field(default_factory=lambda: {"crm": {}, "map": {}})
    _id_by_email: dict[Side, dict[str, str]] = field(default_factory=lambda: {"crm": {}, "map": {}})

    @classmethod
    def build(cls, crm: Iterable[Owner], map_: Iterable[Owner]) -> OwnerDirectory:
        """Index both sides' owners (inactive owners are known but never chosen as targets)."""
        directory = cls()
        for side, owners in (("crm", crm), ("map", map_)):
            for owner in owners:
                email = owner.email.strip().lower()
                directory._email_by_id[side][owner.id] = email  # type: ignore[index]
                if owner.active:
                    directory._id_by_email[side].setdefault(email, owner.id)  # type: ignore[index]
        return directory

    def email_of(self, side: Side, owner_id: str) -> str:
        """The logical value for an owner id (a marker when the id is unknown)."""
        return self._email_by_id[side].get(owner_id, f"{UNMAPPED_PREFIX}{owner_id}")

    def id_for(self, side: Side, email: str) -> str | None:
        """The active owner on ``side`` with this e-mail, if any."""
        return self._id_by_email[side].get(email)
