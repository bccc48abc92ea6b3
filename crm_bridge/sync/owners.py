"""Owner mapping: a CRM user and a marketing-platform owner are the same person by e-mail.

The logical value of an owner field is the owner's e-mail, so the planner compares people, not
vendor ids.  Where one person has different e-mails in the two systems, the pair's ``owner_map``
(CRM e-mail -> marketing e-mail) says so: marketing owners are then known by the CRM e-mail.  When no owner on the target side has that e-mail, the pair's default owner is used
if one is configured; otherwise the record is dead-lettered with a reason naming the e-mail.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from crm_bridge.connector import Owner
from crm_bridge.store import Side

__all__ = ["UNMAPPED_PREFIX", "MatchKind", "OwnerDirectory", "OwnerMatch", "match_owners"]

MatchKind = Literal["email", "owner_map", "default", "unmatched"]

UNMAPPED_PREFIX = "unmapped-owner:"


@dataclass
class OwnerDirectory:
    """Both sides' owners, indexed by id and by lower-cased e-mail."""

    _email_by_id: dict[Side, dict[str, str]] = field(default_factory=lambda: {"crm": {}, "map": {}})
    _id_by_email: dict[Side, dict[str, str]] = field(default_factory=lambda: {"crm": {}, "map": {}})

    @classmethod
    def build(
        cls,
        crm: Iterable[Owner],
        map_: Iterable[Owner],
        owner_map: Mapping[str, str] | None = None,
    ) -> OwnerDirectory:
        """Index both sides' owners (inactive owners are known but never chosen as targets).

        ``owner_map`` (CRM e-mail -> marketing e-mail, lower-cased) files a marketing owner
        under the CRM e-mail of the same person.
        """
        directory = cls()
        as_crm = {m: c for c, m in (owner_map or {}).items()}
        for side, owners in (("crm", crm), ("map", map_)):
            for owner in owners:
                email = owner.email.strip().lower()
                if side == "map":
                    email = as_crm.get(email, email)
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


@dataclass(frozen=True, slots=True)
class OwnerMatch:
    """Where the sync sends a record owned by ``owner`` (of ``side``) on the other side.

    ``kind`` is ``email`` (an active owner there has the same e-mail), ``default`` (none has:
    the pair's default owner of the other side stands in) or ``unmatched`` (none has and no
    default is set: such records are dead-lettered ``OWNER_NOT_FOUND``).
    """

    side: Side
    owner: Owner
    kind: MatchKind
    target_id: str | None
    target: Owner | None


def match_owners(
    crm: Iterable[Owner],
    map_: Iterable[Owner],
    *,
    defaults: Mapping[Side, str | None],
    owner_map: Mapping[str, str] | None = None,
) -> list[OwnerMatch]:
    """Every owner of both sides and how the planner would map it, CRM owners first.

    Why a function beside :class:`OwnerDirectory`: ``crm-bridge owners`` must show exactly the
    rule the planner applies (the same index, e-mail first, then the target side's default), so
    an admin sees before the first sync which records would dead-letter and which default
    would take them.  ``defaults`` are ``pairs.NAME.default_crm_owner`` / ``default_map_owner``.
    """
    owners: dict[Side, list[Owner]] = {"crm": list(crm), "map": list(map_)}
    directory = OwnerDirectory.build(owners["crm"], owners["map"], owner_map)
    aliased = dict(owner_map or {})
    aliased |= {m: c for c, m in aliased.items()}
    by_id: dict[Side, dict[str, Owner]] = {
        side: {o.id: o for o in found} for side, found in owners.items()
    }
    directions: tuple[tuple[Side, Side], ...] = (("crm", "map"), ("map", "crm"))
    out: list[OwnerMatch] = []
    for side, other in directions:
        for owner in owners[side]:
            email = owner.email.strip().lower()
            kind: MatchKind = "owner_map" if email in aliased else "email"
            logical = aliased.get(email, email) if side == "map" else email
            target_id = directory.id_for(other, logical) if email else None
            if target_id is None:
                target_id = defaults.get(other)
                kind = "default" if target_id else "unmatched"
            target = by_id[other].get(target_id) if target_id else None
            out.append(OwnerMatch(side, owner, kind, target_id, target))
    return out
