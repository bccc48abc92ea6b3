"""How a pair maps objects and fields: per field the sides, the conflict rule and the direction.

A field map names the field on each side, the conflict rule, the direction changes may flow, and
an optional value map (CRM value -> MAP value) for picklists whose vocabularies differ, such as
``StageName`` <-> ``dealstage``.  Presets (installed by connectors, see
:func:`crm_bridge.presets.load_preset`) give a working map out of the box; the TOML can extend
or override any object or field of a preset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crm_bridge.presets import load_preset

__all__ = [
    "REFERENCE_KINDS",
    "ConflictRule",
    "DeletePolicy",
    "Direction",
    "FieldKind",
    "FieldMap",
    "ObjectMap",
    "PairSettings",
]

ConflictRule = Literal["crm_wins_unless_blank", "crm_wins", "map_wins", "latest_wins", "never"]
Direction = Literal["both", "crm_to_map", "map_to_crm"]
DeletePolicy = Literal["delete", "archive", "flag"]
FieldKind = Literal[
    "text", "number", "date", "bool", "owner", "email", "domain", "reference", "references"
]
REFERENCE_KINDS: frozenset[str] = frozenset({"reference", "references"})
"""Kinds whose values are record ids of another object (one id, or a set of them)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FieldMap(_Frozen):
    """One logical field: where it lives on each side and how conflicts on it are settled."""

    crm: str = Field(description="Field name on the CRM side, e.g. Email.")
    map: str = Field(description="Field name on the marketing side, e.g. email.")
    kind: FieldKind = Field("text", description="How values are normalised before comparing.")
    rule: ConflictRule = Field("latest_wins", description="Who wins when both sides changed it.")
    direction: Direction = Field("both", description="Which way changes may flow.")
    on_create: bool = Field(
        False,
        description="Also write the field when the bridge creates a record on the side its "
        "direction does not flow to: a starting value only (a new Contact's account from the "
        "marketing person's company), skipped when it cannot be written (an unlinked reference).",
    )
    values: dict[str, str] = Field(
        default_factory=dict, description="CRM value -> MAP value, for differing picklists."
    )
    refers_to: str | None = Field(
        None,
        description="For kinds 'reference' (one id) and 'references' (a set of ids, e.g. an "
        "opportunity's contact roles): the pair's object whose record ids this field holds (e.g. "
        "accounts); ids are translated through that object's links.",
    )

    @model_validator(mode="after")
    def _reference_names_its_object(self) -> FieldMap:
        if (self.kind in REFERENCE_KINDS) != (self.refers_to is not None):
            raise ValueError(
                f"a field of kind {self.kind!r} needs refers_to (the object whose ids it holds), "
                "and refers_to is only for kinds 'reference' and 'references'"
            )
        return self

    def to_map_value(self, crm_value: str) -> str:
        """The MAP spelling of a CRM picklist value (unchanged when unmapped)."""
        return self.values.get(crm_value, crm_value)

    def to_crm_value(self, map_value: str) -> str:
        """The CRM spelling of a MAP value: the first CRM value mapped to it."""
        for crm_value, mapped in self.values.items():
            if mapped == map_value:
                return crm_value
        return map_value

    def flows_to(self, side: Literal["crm", "map"]) -> bool:
        """Whether changes may be written to ``side``."""
        return self.direction == "both" or self.direction == f"{_other(side)}_to_{side}"

    def seeds(self, side: Literal["crm", "map"]) -> bool:
        """Whether a create on ``side`` carries the field although changes never flow there."""
        return self.on_create and not self.flows_to(side)


def _other(side: str) -> str:
    return "map" if side == "crm" else "crm"


class ObjectMap(_Frozen):
    """One object synced between the sides, e.g. HubSpot contacts <-> Salesforce Lead."""

    crm_object: str = Field(description="Object name on the CRM connector.")
    map_object: str = Field(description="Object name on the marketing connector.")
    identity: str | None = Field(
        "email", description="Logical field matching unlinked records across sides."
    )
    create_on_crm: bool = Field(True, description="Create CRM records for new MAP records.")
    create_on_map: bool = Field(True, description="Create MAP records for new CRM records.")
    delete_policy: DeletePolicy = Field(
        "flag", description="delete, archive, or flag (keep the other side, record it)."
    )
    fields: dict[str, FieldMap] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _identity_is_mapped(self) -> ObjectMap:
        if self.identity is not None and self.identity not in self.fields:
            raise ValueError(
                f"identity {self.identity!r} is not one of the mapped fields: "
                f"{', '.join(sorted(self.fields)) or 'none'}"
            )
        return self


class PairSettings(_Frozen):
    """A configured pair: which connectors, which objects, and the safety limits."""

    crm: str = Field(description="Name of the CRM connector (a [connectors.NAME] table).")
    map: str = Field(description="Name of the marketing connector.")
    preset: str = Field(
        "none",
        description="Start from an installed preset's object and field map "
        "(the crm_bridge.presets entry-point group).",
    )
    objects: dict[str, ObjectMap] = Field(default_factory=dict)
    overlap_seconds: float = Field(
        120.0, ge=0, description="Re-read this far behind the cursor (late commits, clock skew)."
    )
    clock_skew_seconds: float = Field(
        5.0, ge=0, description="latest_wins treats closer timestamps as a tie (CRM wins ties)."
    )
    max_delete_ratio: float = Field(
        0.2, ge=0, le=1, description="Stop a cycle deleting more than this share of links."
    )
    delete_guard_floor: int = Field(
        10, ge=0, description="The ratio guard ignores cycles with at most this many deletes."
    )
    max_records_per_cycle: int = Field(
        10_000,
        ge=1,
        description="Per side and object; the rest waits for the next cycle, which goes on "
        "strictly after the last record read (a keyset cursor).",
    )
    dead_letter_max_attempts: int = Field(5, ge=1, description="Automatic replays per record.")
    default_crm_owner: str | None = Field(None, description="CRM owner id when none matches.")
    default_map_owner: str | None = Field(None, description="MAP owner id when none matches.")
    owner_map: dict[str, str] = Field(
        default_factory=dict,
        description="CRM user e-mail -> marketing owner e-mail, for people whose e-mail differs "
        "between the two systems (e.g. a sales alias); matched case-insensitively.",
    )

    @field_validator("owner_map")
    @classmethod
    def _owner_map_is_one_to_one(cls, value: dict[str, str]) -> dict[str, str]:
        lowered = {k.strip().lower(): v.strip().lower() for k, v in value.items()}
        targets = list(lowered.values())
        twice = sorted({t for t in targets if targets.count(t) > 1})
        if twice:
            raise ValueError(
                f"owner_map maps several CRM users to {', '.join(twice)}: each marketing owner "
                "is one person, so map at most one CRM e-mail to it"
            )
        return lowered

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        preset = data.get("preset", "none")
        if not isinstance(preset, str) or preset == "none":
            return data
        merged = dict(data)
        base = {name: dict(obj) for name, obj in load_preset(preset).items()}
        for name, override in dict(data.get("objects") or {}).items():
            if name in base and isinstance(override, Mapping):
                fields = {**base[name].get("fields", {}), **dict(override.get("fields", {}))}
                base[name] = {**base[name], **dict(override), "fields": fields}
            else:
                base[name] = override
        merged["objects"] = base
        return merged

    @model_validator(mode="after")
    def _references_resolve(self) -> PairSettings:
        for name in self.ordered_objects():
            for field_name, fm in self.objects[name].fields.items():
                if fm.refers_to is not None and fm.refers_to not in self.objects:
                    raise ValueError(
                        f"objects.{name}.fields.{field_name}.refers_to: {fm.refers_to!r} is not "
                        f"an object of this pair ({', '.join(sorted(self.objects))})"
                    )
        return self

    def ordered_objects(self) -> list[str]:
        """The pair's objects, each after the objects its reference fields point at.

        Why: a cycle syncs objects one after another, so an account created on the other side
        earlier in the cycle is already linked when the people that reference it are planned --
        their reference then resolves in the same cycle instead of waiting for a replay.
        Raises ValueError on a cycle of references (no order could resolve them all).
        """
        order: list[str] = []
        visiting: set[str] = set()

        def visit(name: str, path: tuple[str, ...]) -> None:
            if name in order or name not in self.objects:
                return
            if name in visiting:
                raise ValueError(f"objects refer to each other in a cycle: {' -> '.join(path)}")
            visiting.add(name)
            for fm in self.objects[name].fields.values():
                if fm.refers_to is not None and fm.refers_to != name:
                    visit(fm.refers_to, (*path, fm.refers_to))
            visiting.discard(name)
            order.append(name)

        for name in self.objects:
            visit(name, (name,))
        return order
