"""A tiny TOML writer for test configs (the project has no TOML writer dependency)."""

from __future__ import annotations

import json
from typing import Any


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        inner = ", ".join(f"{json.dumps(k)} = {_value(x)}" for k, x in v.items() if x is not None)
        return "{" + inner + "}"
    raise TypeError(type(v))


def dumps(data: dict[str, Any], prefix: str = "") -> str:
    """Tables as [a.b] sections, scalars and lists inline; None values are left out."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, value in data.items():
        name = f"{prefix}.{json.dumps(key)}" if prefix else json.dumps(key)
        if isinstance(value, dict):
            tables.append((name, value))
        elif value is not None:
            lines.append(f"{json.dumps(key)} = {_value(value)}")
    out = "\n".join(lines) + "\n"
    for name, table in tables:
        out += f"\n[{name}]\n" + dumps(table, name)
    return out
