"""Checks recorded emulator answers against the vendor's Swagger 2.0 files.

Every answer a Marketo test provokes is recorded on the server side (see ``conftest.py``) and
validated here against the response schema of the matching swagger path and method, with the
swagger's ``definitions`` resolved by jsonschema (draft 4, the dialect Swagger 2.0 uses).

``ERRATA`` lists the few places where the vendor's schema contradicts the vendor's own documented
answers; each is patched narrowly, and ``test_each_erratum_is_needed`` proves that every patch is
still needed (an answer fails without it).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jsonschema

SPECS = Path(__file__).resolve().parent / "specs"
"""The vendor files, copied unchanged (MIT; see ``specs/README.md``)."""


def _any_value(defs: dict[str, Any]) -> None:
    defs["Attribute"]["properties"]["value"] = {"description": "Value (any JSON value)"}


def _nullable_change(defs: dict[str, Any]) -> None:
    for name in ("oldValue", "newValue"):
        defs["LeadChangeField"]["properties"][name] = {"type": ["string", "null"]}


def _skipped_without_key(defs: dict[str, Any]) -> None:
    skipped = {
        "type": "object",
        "required": ["seq", "status", "reasons"],
        "properties": {
            "seq": {"type": "integer"},
            "status": {"enum": ["skipped"]},
            "reasons": {"type": "array", "items": {"$ref": "#/definitions/Reason"}},
        },
    }
    for name in ("CustomObject", "CompanyResponse"):
        defs[name] = {"anyOf": [defs[name], skipped]}


ERRATA: dict[str, Callable[[dict[str, Any]], None]] = {
    # The docs' activity examples carry strings, numbers and booleans as attribute values
    # ("value": "Web service API"); the swagger types the value as an object.
    "attribute value is any JSON value": _any_value,
    # A field that was empty before (or is emptied) has a null old (new) value in the docs'
    # lead-change examples; the swagger allows only strings.
    "lead-change values may be null": _nullable_change,
    # A skipped company/opportunity/role record has no key yet (the docs' examples show
    # {seq, status: skipped, reasons}); the swagger requires the key on every record.
    "skipped object records carry no key": _skipped_without_key,
}


@dataclass
class Answer:
    """One recorded exchange."""

    method: str
    path: str
    query: str
    request_body: bytes
    request_type: str
    status: int
    content_type: str
    body: bytes

    @property
    def effective_method(self) -> str:
        """POST with ``_method=GET`` (query or form body) is the GET operation."""
        if self.method != "POST":
            return self.method
        params = parse_qs(self.query)
        if "form-urlencoded" in self.request_type:
            params.update(parse_qs(self.request_body.decode(errors="replace")))
        return "GET" if params.get("_method", [""])[0].upper() == "GET" else "POST"


@cache
def _spec(name: str) -> dict[str, Any]:
    return json.loads((SPECS / name).read_text())  # type: ignore[no-any-return]


def definitions(*, without: str | None = None) -> dict[str, Any]:
    """All definitions of both files with every :data:`ERRATA` patch but ``without``."""
    defs = copy.deepcopy(_spec("swagger-mapi.json")["definitions"])
    defs.update(copy.deepcopy(_spec("swagger-identity.json")["definitions"]))
    for name, patch in ERRATA.items():
        if name != without:
            patch(defs)
    return defs


@cache
def _operations() -> list[tuple[re.Pattern[str], str, str, str]]:
    """(path regex, METHOD, swagger path, response $ref) for every operation with a schema."""
    ops = []
    for spec in ("swagger-mapi.json", "swagger-identity.json"):
        for path, methods in _spec(spec)["paths"].items():
            regex = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")
            for method, op in methods.items():
                schema = op.get("responses", {}).get("200", {}).get("schema", {})
                if "$ref" in schema:
                    ops.append((regex, method.upper(), path, schema["$ref"].split("/")[-1]))
    # Literal paths before templated ones (/leads/describe.json before /leads/{id}...).
    ops.sort(key=lambda o: o[2].count("{"))
    return ops


def operation(answer: Answer) -> tuple[str, str, str] | None:
    """(METHOD, swagger path, definition name) of an answer, or None if the swagger lacks it."""
    for regex, method, path, ref in _operations():
        if method == answer.effective_method and regex.match(answer.path):
            return method, path, ref
    return None


def all_operations() -> set[tuple[str, str]]:
    """Every (METHOD, swagger path) the two files define."""
    return {(m, p) for _, m, p, _ in _operations()}


@cache
def _validator(ref: str, without: str | None) -> jsonschema.Draft4Validator:
    schema = {"$ref": f"#/definitions/{ref}", "definitions": definitions(without=without)}
    return jsonschema.Draft4Validator(schema)


def problems(answer: Answer, *, without: str | None = None) -> list[str]:
    """Why an answer does not conform (empty: it does, or it is not a JSON 200 answer)."""
    op = operation(answer)
    if op is None or answer.status != 200 or "json" not in answer.content_type:
        return []
    validator = _validator(op[2], without)
    body = json.loads(answer.body)
    return [
        f"{op[0]} {op[1]} ({op[2]}): {'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(body)
    ]
