"""The lead schema: standard fields, custom fields, their types, and value coercion.

Why typed fields: Marketo skips a record whose value does not fit the field (1003) or that names
a field the instance lacks (1006), and only string, email and integer fields can be used as a
``filterType`` or ``lookupField``.  ``describe.json`` and ``describe2.json`` are rendered from
this one catalog so a connector that discovers fields sees exactly what writes accept.

Doc: https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/lead-database/leads
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_FIELDS",
    "FieldDef",
    "FieldError",
    "LeadSchema",
]

DEFAULT_FIELDS = ("id", "email", "updatedAt", "createdAt", "firstName", "lastName")
"""What a lead read returns when ``fields`` is absent."""

_TYPES = {"string", "email", "integer", "boolean", "datetime", "date", "float", "text", "phone"}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SEARCHABLE_TYPES = {"string", "email", "integer"}
_KEY_STANDARD = frozenset(
    {
        "id",
        "email",
        "cookies",
        "facebookId",
        "leadPartitionId",
        "linkedInId",
        "sfdcAccountId",
        "sfdcContactId",
        "sfdcLeadId",
        "sfdcLeadOwnerId",
        "sfdcOpptyId",
        "twitterId",
    }
)
"""The standard fields a ``filterType``/``lookupField`` may name (the swagger's list); other
standard fields (``firstName``, ``company``...) answer 1011, custom string/email/integer fields
are allowed."""


@dataclass(frozen=True)
class FieldDef:
    """One lead field."""

    id: int
    name: str
    display_name: str
    data_type: str
    length: int | None = None
    read_only: bool = False
    custom: bool = False

    def describe(self) -> dict[str, Any]:
        """The ``describe.json`` item."""
        item: dict[str, Any] = {
            "id": self.id,
            "displayName": self.display_name,
            "dataType": self.data_type,
            "rest": {"name": self.name, "readOnly": self.read_only},
            "soap": {"name": self.name[:1].upper() + self.name[1:], "readOnly": self.read_only},
        }
        if self.length is not None:
            item["length"] = self.length
        return item

    def describe2(self) -> dict[str, Any]:
        """The ``describe2.json`` ``fields`` item."""
        item: dict[str, Any] = {
            "name": self.name,
            "displayName": self.display_name,
            "dataType": self.data_type,
            "updateable": not self.read_only,
            "crmManaged": False,
        }
        if self.length is not None:
            item["length"] = self.length
        return item


_STANDARD = (
    FieldDef(1, "id", "Id", "integer", read_only=True),
    FieldDef(2, "email", "Email Address", "email", 255),
    FieldDef(3, "firstName", "First Name", "string", 255),
    FieldDef(4, "lastName", "Last Name", "string", 255),
    FieldDef(5, "company", "Company Name", "string", 255),
    FieldDef(6, "title", "Job Title", "string", 255),
    FieldDef(7, "phone", "Phone Number", "phone", 255),
    FieldDef(8, "leadStatus", "Lead Status", "string", 255),
    FieldDef(9, "leadSource", "Lead Source", "string", 255),
    FieldDef(10, "leadScore", "Lead Score", "integer"),
    FieldDef(11, "unsubscribed", "Unsubscribed", "boolean"),
    FieldDef(12, "country", "Country", "string", 255),
    FieldDef(13, "externalCompanyId", "External Company Id", "string", 100),
    FieldDef(14, "createdAt", "Created At", "datetime", read_only=True),
    FieldDef(15, "updatedAt", "Updated At", "datetime", read_only=True),
    FieldDef(16, "sfdcLeadId", "SFDC Lead ID", "string", 18),
    FieldDef(17, "sfdcContactId", "SFDC Contact ID", "string", 18),
    FieldDef(18, "sfdcAccountId", "SFDC Account ID", "string", 18),
)
_FIRST_CUSTOM_ID = 1000


class FieldError(ValueError):
    """A value that does not fit its field: ``code`` is the vendor's reason code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _mismatch(value: Any, kind: str) -> FieldError:
    return FieldError(1001, f"Invalid value '{value}'. Required of type '{kind}'")


class LeadSchema:
    """The instance's lead fields, standard and custom."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Back to the standard fields only."""
        self._fields: dict[str, FieldDef] = {f.name: f for f in _STANDARD}
        self._next_id = _FIRST_CUSTOM_ID

    def add_custom(self, name: str, data_type: str, display_name: str | None = None) -> FieldDef:
        """Add a custom field (the Admin UI's job; here the control plane's)."""
        if data_type not in _TYPES:
            raise ValueError(f"unknown dataType {data_type!r}; known: {sorted(_TYPES)}")
        if name in self._fields:
            raise ValueError(f"field {name!r} exists")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            raise ValueError(f"field name {name!r} is not a REST API name")
        length = 255 if data_type in ("string", "email", "phone") else None
        field = FieldDef(self._next_id, name, display_name or name, data_type, length, custom=True)
        self._next_id += 1
        self._fields[name] = field
        return field

    def get(self, name: str) -> FieldDef | None:
        """A field by REST name."""
        return self._fields.get(name)

    def all(self) -> list[FieldDef]:
        """Every field, by id."""
        return sorted(self._fields.values(), key=lambda f: f.id)

    def searchable(self, name: str) -> bool:
        """Whether ``name`` may be a ``filterType`` / ``lookupField``."""
        field = self._fields.get(name)
        if field is None:
            return False
        return name in _KEY_STANDARD or (field.custom and field.data_type in _SEARCHABLE_TYPES)

    def check_key(self, name: str) -> None:
        """1006 for a field the instance lacks, 1011 for one that cannot be a key."""
        if name not in self._fields:
            raise FieldError(1006, f"Field '{name}' not found")
        if not self.searchable(name):
            raise FieldError(1011, f"Field '{name}' not supported")

    def searchable_fields(self) -> list[list[str]]:
        """``describe2``'s ``searchableFields`` (single-field keys)."""
        return [[f.name] for f in self.all() if self.searchable(f.name)]

    def coerce(self, name: str, value: Any) -> Any:
        """The stored form of ``value`` for field ``name``, or :class:`FieldError`."""
        field = self._fields.get(name)
        if field is None:
            raise FieldError(1006, f"Field '{name}' not found")
        if field.read_only:
            raise FieldError(1006, f"Field '{name}' is not updateable")
        if value is None or value == "":
            return None
        kind = field.data_type
        if kind == "integer":
            if isinstance(value, bool):
                raise _mismatch(value, kind)
            try:
                number = int(str(value))
            except ValueError:
                raise _mismatch(value, kind) from None
            return number
        if kind == "float":
            try:
                return float(value)
            except (TypeError, ValueError):
                raise _mismatch(value, kind) from None
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            lowered = str(value).lower()
            if lowered in ("true", "1", "yes"):
                return True
            if lowered in ("false", "0", "no"):
                return False
            raise _mismatch(value, kind)
        text = str(value)
        if kind == "email" and not _EMAIL.match(text):
            raise FieldError(1003, f"Invalid email address '{text}'")
        if field.length is not None and len(text) > field.length:
            raise FieldError(1003, f"Value for field '{name}' exceeds {field.length} characters")
        return text

    def filter_value(self, name: str, raw: str) -> Any:
        """A ``filterValues`` item in the stored form (1003 if it cannot be one)."""
        field = self._fields[name]
        if field.data_type == "integer":
            try:
                return int(raw)
            except ValueError:
                raise _mismatch(raw, "integer") from None
        return raw.lower() if field.data_type == "email" else raw

    def snapshot(self) -> list[dict[str, Any]]:
        """The custom fields, for a snapshot."""
        return [
            {"name": f.name, "dataType": f.data_type, "displayName": f.display_name}
            for f in self.all()
            if f.custom
        ]
