"""Lead writes and reads with the vendor's lookup semantics and per-record reasons.

Why it is subtle: ``createOrUpdate`` looks the lead up by ``lookupField`` (default ``email``),
``createOnly`` skips an existing one (1005), ``updateOnly`` a missing one (1004), several matches
skip with 1007, ``createDuplicate`` never looks; ``id`` may only be used with ``updateOnly``
(1003 otherwise).  A bad field skips the record (1006), a bad value too (1003) -- the others in
the batch still go through, and the answers come back in input order.

Doc: https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/lead-database/leads
"""

from __future__ import annotations

from typing import Any

from crm_bridge.connectors.marketo.emulator.errors import MarketoError, reason
from crm_bridge.connectors.marketo.emulator.fields import DEFAULT_FIELDS, FieldError
from crm_bridge.connectors.marketo.emulator.state import Instance, Lead

__all__ = ["ACTIONS", "MAX_FILTER_MATCHES", "check_fields", "render_lead", "sync_leads"]

ACTIONS = ("createOrUpdate", "createOnly", "updateOnly", "createDuplicate")
MAX_FILTER_MATCHES = 1000
"""More matches than this for one filter answers 1003 (use a bulk extract instead)."""


def check_fields(inst: Instance, fields: list[str] | None) -> list[str]:
    """The fields to render (defaults when absent); 1006 for a field the instance lacks."""
    wanted = list(fields) if fields else list(DEFAULT_FIELDS)
    for name in wanted:
        if inst.schema.get(name) is None:
            raise MarketoError(1006, f"Field '{name}' not found")
    if "id" not in wanted:
        wanted.insert(0, "id")
    return wanted


def render_lead(lead: Lead, fields: list[str]) -> dict[str, Any]:
    """A lead as reads answer it: the requested fields, ``null`` where empty."""
    return {name: lead.get(name) for name in fields}


def _skip(code: int, message: str | None = None) -> dict[str, Any]:
    return {"status": "skipped", "reasons": [reason(code, message)]}


def sync_leads(
    inst: Instance,
    action: str,
    lookup_field: str,
    inputs: list[Any],
    *,
    visible_below: int | None = None,
) -> list[dict[str, Any]]:
    """Apply a ``POST /rest/v1/leads.json``; one answer per input record.

    ``visible_below`` (the upsert race, off by default): ``createOrUpdate`` lookups ignore leads
    with this id or above -- those a concurrent call created after this one arrived.
    """
    if action not in ACTIONS:
        raise MarketoError(1003, f"Invalid action '{action}'")
    try:
        inst.schema.check_key(lookup_field)
    except FieldError as exc:
        raise MarketoError(exc.code, exc.message) from None
    if lookup_field == "id" and action != "updateOnly":
        raise MarketoError(1003, "lookupField 'id' is only allowed with action updateOnly")
    hide = visible_below if action == "createOrUpdate" else None
    return [_sync_one(inst, action, lookup_field, item, hide) for item in inputs]


def _sync_one(
    inst: Instance, action: str, lookup_field: str, item: Any, hide: int | None
) -> dict[str, Any]:
    if not isinstance(item, dict):
        return _skip(1003, "Invalid input record")
    if "id" in item and action != "updateOnly":
        return _skip(1003, f"Field 'id' is not allowed with action {action}")
    changes: dict[str, Any] = {}
    for name, value in item.items():
        if name == "id":
            continue
        try:
            changes[name] = inst.schema.coerce(name, value)
        except FieldError as exc:
            return _skip(exc.code, exc.message)
    if action == "createDuplicate":
        return {"id": inst.create_lead(changes).id, "status": "created"}
    key_field = "id" if "id" in item else lookup_field
    key = item.get(key_field)
    if key in (None, ""):
        if action == "createOnly":
            return {"id": inst.create_lead(changes).id, "status": "created"}
        return _skip(1003, f"Value for lookup field '{key_field}' not specified")
    try:
        matches = inst.find(key_field, int(key) if key_field == "id" else changes[key_field])
    except (TypeError, ValueError, KeyError):
        return _skip(1003, f"Invalid value '{key}' for lookup field '{key_field}'")
    if hide is not None:
        matches = [lead for lead in matches if lead.id < hide]
    if len(matches) > 1:
        return _skip(1007, "Multiple lead match lookup criteria")
    if matches:
        if action == "createOnly":
            return _skip(1005, "Lead already exists")
        lead = matches[0]
        inst.update_lead(lead, changes)
        return {"id": lead.id, "status": "updated"}
    if action == "updateOnly":
        return _skip(1004, "Lead not found")
    return {"id": inst.create_lead(changes).id, "status": "created"}
