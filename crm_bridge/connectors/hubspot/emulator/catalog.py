"""Static facts about a HubSpot portal: object types, association type ids, owners, pipelines.

Why a catalogue: paths name object types in several spellings (``contacts``, ``contact``, ``0-1``)
and association type ids come in inverse pairs; keeping the tables here lets every handler
resolve them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ASSOCIATION_TYPES",
    "DEFAULT_PIPELINE",
    "OBJECT_TYPES",
    "OWNERS",
    "AssociationKind",
    "ObjectType",
    "OwnerSeed",
    "PipelineStage",
    "association_kind",
    "inverse_type_id",
    "resolve_type",
]


@dataclass(frozen=True)
class ObjectType:
    """One CRM object type and the names of its system properties."""

    name: str  # plural path name, e.g. "contacts"
    singular: str
    type_id: str  # e.g. "0-1"
    created_prop: str
    modified_prop: str
    default_props: tuple[str, ...]
    searchable: tuple[str, ...]  # properties the free-text ``query`` looks at


_ENGAGEMENT_DEFAULTS = ("hs_createdate", "hs_lastmodifieddate", "hs_object_id")

OBJECT_TYPES: dict[str, ObjectType] = {
    t.name: t
    for t in (
        ObjectType(
            "contacts",
            "contact",
            "0-1",
            "createdate",
            "lastmodifieddate",
            ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
            ("email", "firstname", "lastname", "phone", "company"),
        ),
        ObjectType(
            "companies",
            "company",
            "0-2",
            "createdate",
            "hs_lastmodifieddate",
            ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
            ("name", "domain", "phone", "website"),
        ),
        ObjectType(
            "deals",
            "deal",
            "0-3",
            "createdate",
            "hs_lastmodifieddate",
            (
                "amount",
                "closedate",
                "createdate",
                "dealname",
                "dealstage",
                "hs_lastmodifieddate",
                "hs_object_id",
                "pipeline",
            ),
            ("dealname",),
        ),
        ObjectType(
            "calls",
            "call",
            "0-48",
            "hs_createdate",
            "hs_lastmodifieddate",
            _ENGAGEMENT_DEFAULTS,
            ("hs_call_title", "hs_call_body"),
        ),
        ObjectType(
            "emails",
            "email",
            "0-49",
            "hs_createdate",
            "hs_lastmodifieddate",
            _ENGAGEMENT_DEFAULTS,
            ("hs_email_subject", "hs_email_text"),
        ),
        ObjectType(
            "meetings",
            "meeting",
            "0-47",
            "hs_createdate",
            "hs_lastmodifieddate",
            _ENGAGEMENT_DEFAULTS,
            ("hs_meeting_title", "hs_meeting_body"),
        ),
        ObjectType(
            "notes",
            "note",
            "0-46",
            "hs_createdate",
            "hs_lastmodifieddate",
            _ENGAGEMENT_DEFAULTS,
            ("hs_note_body",),
        ),
        ObjectType(
            "tasks",
            "task",
            "0-27",
            "hs_createdate",
            "hs_lastmodifieddate",
            _ENGAGEMENT_DEFAULTS,
            ("hs_task_subject", "hs_task_body"),
        ),
    )
}

ENGAGEMENT_TYPES = ("calls", "emails", "meetings", "notes", "tasks")

_ALIASES: dict[str, str] = {}
for _t in OBJECT_TYPES.values():
    for _alias in (_t.name, _t.singular, _t.type_id):
        _ALIASES[_alias] = _t.name


def resolve_type(name: str) -> ObjectType | None:
    """The object type a path segment names (plural, singular or ``0-N``; any case)."""
    key = _ALIASES.get(name) or _ALIASES.get(name.lower())
    return OBJECT_TYPES[key] if key else None


@dataclass(frozen=True)
class AssociationKind:
    """The HUBSPOT_DEFINED type ids between two object types (one direction)."""

    default_id: int  # the unlabeled association
    primary_id: int | None  # "primary company" etc., when the pair has one
    name: str  # v3 style name, e.g. "contact_to_company"


# (from, to) -> (unlabeled id, primary id).  Source: the associations v4 guide,
# https://developers.hubspot.com/docs/api-reference/crm-associations-v4/guide
_PAIRS: dict[tuple[str, str], tuple[int, int | None]] = {
    ("contacts", "companies"): (279, 1),
    ("companies", "contacts"): (280, 2),
    ("deals", "contacts"): (3, None),
    ("contacts", "deals"): (4, None),
    ("deals", "companies"): (341, 5),
    ("companies", "deals"): (342, 6),
    ("calls", "contacts"): (194, None),
    ("contacts", "calls"): (193, None),
    ("calls", "companies"): (182, None),
    ("companies", "calls"): (181, None),
    ("calls", "deals"): (206, None),
    ("deals", "calls"): (205, None),
    ("emails", "contacts"): (198, None),
    ("contacts", "emails"): (197, None),
    ("emails", "companies"): (186, None),
    ("companies", "emails"): (185, None),
    ("emails", "deals"): (210, None),
    ("deals", "emails"): (209, None),
    ("meetings", "contacts"): (200, None),
    ("contacts", "meetings"): (199, None),
    ("meetings", "companies"): (188, None),
    ("companies", "meetings"): (187, None),
    ("meetings", "deals"): (212, None),
    ("deals", "meetings"): (211, None),
    ("notes", "contacts"): (202, None),
    ("contacts", "notes"): (201, None),
    ("notes", "companies"): (190, None),
    ("companies", "notes"): (189, None),
    ("notes", "deals"): (214, None),
    ("deals", "notes"): (213, None),
    ("tasks", "contacts"): (204, None),
    ("contacts", "tasks"): (203, None),
    ("tasks", "companies"): (192, None),
    ("companies", "tasks"): (191, None),
    ("tasks", "deals"): (216, None),
    ("deals", "tasks"): (215, None),
}

ASSOCIATION_TYPES: dict[tuple[str, str], AssociationKind] = {
    pair: AssociationKind(
        ids[0], ids[1], f"{OBJECT_TYPES[pair[0]].singular}_to_{OBJECT_TYPES[pair[1]].singular}"
    )
    for pair, ids in _PAIRS.items()
}

_INVERSE: dict[int, int] = {}
for (_a, _b), (_d, _p) in _PAIRS.items():
    _back_d, _back_p = _PAIRS[(_b, _a)]
    _INVERSE[_d] = _back_d
    if _p is not None and _back_p is not None:
        _INVERSE[_p] = _back_p


def association_kind(from_type: str, to_type: str) -> AssociationKind | None:
    """The HUBSPOT_DEFINED kinds between two types, or None when they cannot be associated."""
    return ASSOCIATION_TYPES.get((from_type, to_type))


def inverse_type_id(type_id: int) -> int:
    """The id of the same association seen from the other side (USER_DEFINED ids map to self)."""
    return _INVERSE.get(type_id, type_id)


@dataclass(frozen=True)
class OwnerSeed:
    """A user of the portal who can own records."""

    owner_id: int
    user_id: int
    email: str
    first_name: str
    last_name: str
    team: str


OWNERS: tuple[OwnerSeed, ...] = (
    OwnerSeed(71000001, 9100001, "maria.manager@example.com", "Maria", "Okafor", "Sales"),
    OwnerSeed(71000002, 9100002, "rick.rep@example.com", "Rick", "Alvarez", "Sales"),
    OwnerSeed(71000003, 9100003, "sana.rep@example.com", "Sana", "Iqbal", "Sales"),
    OwnerSeed(71000004, 9100004, "tom.rep@example.com", "Tom", "Nguyen", "Sales"),
    OwnerSeed(71000005, 9100005, "uma.rep@example.com", "Uma", "Schmidt", "Sales"),
    OwnerSeed(71000006, 9100006, "mark.marketer@example.com", "Mark", "Dubois", "Marketing"),
)
"""The default users: one sales manager, four reps and a marketer (the "human" editor)."""

SALES_REPS = tuple(o for o in OWNERS if ".rep@" in o.email)


@dataclass(frozen=True)
class PipelineStage:
    """A deal stage of the default pipeline."""

    stage_id: str
    label: str
    probability: str
    is_closed: bool


DEFAULT_PIPELINE: tuple[PipelineStage, ...] = (
    # https://developers.hubspot.com/docs/api-reference/crm-pipelines-v3/guide
    PipelineStage("appointmentscheduled", "Appointment Scheduled", "0.2", False),
    PipelineStage("qualifiedtobuy", "Qualified To Buy", "0.4", False),
    PipelineStage("presentationscheduled", "Presentation Scheduled", "0.6", False),
    PipelineStage("decisionmakerboughtin", "Decision Maker Bought-In", "0.8", False),
    PipelineStage("contractsent", "Contract Sent", "0.9", False),
    PipelineStage("closedwon", "Closed Won", "1.0", True),
    PipelineStage("closedlost", "Closed Lost", "0.0", True),
)
