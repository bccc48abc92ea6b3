"""Which endpoint family a Salesforce request belongs to.

Why one classifier for the connector and the emulator: the connector counts its calls per family
and the tests and benchmarks compare that count with what the emulator counted, call by call.
Two copies of the path rules drift (one learned ``changes`` and the other did not), and then the
counts disagree for a reason that has nothing to do with the calls.  The emulator imports this
module from its connector's folder; the connector never imports the emulator.
"""

from __future__ import annotations

import re

__all__ = ["endpoint_family"]

_DATA_PATH = re.compile(r"^/services/data/v[\d.]+/?(.*)$")


def endpoint_family(method: str, path: str) -> str | None:
    """The family a request to ``path`` counts under, or ``None`` if it is no counted API call.

    ``None`` covers paths outside ``/services/oauth2`` and ``/services/data/vXX.X/...`` and the
    bare version root; the emulator does not count them, and the connector books any it sends
    under ``"other"``.
    """
    if path.startswith("/services/oauth2"):
        return "auth"
    m = _DATA_PATH.match(path)
    if m is None:
        return None
    rest = m.group(1).strip("/")
    parts = rest.split("/")
    first = parts[0]
    if first in ("query", "queryAll"):
        return "query"
    if first == "composite":
        return "collections" if rest.startswith("composite/sobjects") else "composite"
    if first == "jobs":
        return "bulk2"
    if first in ("tooling", "limits"):
        return first
    if first == "sobjects":
        if len(parts) == 1 or (len(parts) == 2 and method == "GET") or parts[-1] == "describe":
            return "describe"
        if len(parts) == 3 and parts[2] in ("updated", "deleted"):
            return "changes"
        return "sobject"
    return "other" if rest else None
