"""Writing leads: ``POST leads.json`` in batches of 300, hard deletes via ``leads/delete.json``.

Why grouping by action: one Marketo call has one ``action`` and one ``lookupField``, and each
:class:`~crm_bridge.connector.Upsert` says which it needs -- an update by ``id`` is
``updateOnly`` with ``lookupField=id``, a ``match_on="email"`` upsert is ``createOrUpdate`` with
``lookupField=email`` (matched case-insensitively by Marketo), a plain create is ``createOnly``
(an existing email is refused with 1005 rather than duplicated).  Marketo answers one result
per input *in input order* with ``status`` created / updated / skipped; skipped carries
``reasons[{code, message}]`` with 1xxx codes, mapped to a failed
:class:`~crm_bridge.connector.WriteResult` with the vendor's code, so one refused lead never
hides the others.  The results are put back into the caller's order before returning.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crm_bridge.connector import Delete, Upsert, WriteOp, WriteResult
from crm_bridge.connectors.marketo.client import MarketoClient
from crm_bridge.errors import CrmBridgeError

__all__ = ["BATCH_MAX", "READ_ONLY_FIELDS", "UNSUPPORTED_DELETE_MODE", "Writer"]

BATCH_MAX = 300
READ_ONLY_FIELDS = frozenset({"id", "createdAt", "updatedAt"})
UNSUPPORTED_DELETE_MODE = "UNSUPPORTED_DELETE_MODE"
_RETRYABLE_REASONS = frozenset({"1014", "1016", "1019", "1022", "1029"})
"""Per-record reasons that mean "later", not "never" (locks, queues)."""

_Group = tuple[str, str | None]  # (action, lookupField)


class Writer:
    """Turns a batch of ops into as few Marketo calls as their kinds allow."""

    def __init__(self, client: MarketoClient) -> None:
        self.client = client

    def write(self, ops: Sequence[WriteOp], identity_fields: Sequence[str]) -> list[WriteResult]:
        """One result per op, in input order."""
        results: list[WriteResult | None] = [None] * len(ops)
        groups: dict[_Group, list[tuple[int, dict[str, Any]]]] = {}
        deletes: list[tuple[int, int]] = []
        for index, op in enumerate(ops):
            if isinstance(op, Delete):
                if op.mode != "hard":
                    results[index] = WriteResult.failure(
                        op.key,
                        f"Marketo has no {op.mode!r} delete; leads are deleted for good",
                        code=UNSUPPORTED_DELETE_MODE,
                    )
                elif not op.id.isdigit():
                    results[index] = WriteResult.failure(
                        op.key, f"{op.id!r} is not a Marketo lead id", code="NOT_FOUND"
                    )
                else:
                    deletes.append((index, int(op.id)))
                continue
            group, item, problem = _plan(op, identity_fields)
            if problem is not None:
                results[index] = problem
            else:
                assert group is not None and item is not None
                groups.setdefault(group, []).append((index, item))
        for (action, lookup), items in groups.items():
            for start in range(0, len(items), BATCH_MAX):
                chunk = items[start : start + BATCH_MAX]
                self._sync(ops, results, action, lookup, chunk)
        for start in range(0, len(deletes), BATCH_MAX):
            self._delete(ops, results, deletes[start : start + BATCH_MAX])
        missing = [ops[i].key for i, r in enumerate(results) if r is None]
        if missing:
            raise CrmBridgeError(f"Marketo answered no result for {missing[:5]}")
        return [r for r in results if r is not None]

    def _sync(
        self,
        ops: Sequence[WriteOp],
        results: list[WriteResult | None],
        action: str,
        lookup: str | None,
        chunk: list[tuple[int, dict[str, Any]]],
    ) -> None:
        body: dict[str, Any] = {"action": action, "input": [item for _, item in chunk]}
        if lookup is not None:
            body["lookupField"] = lookup
        answer = self.client.send(
            "POST",
            "/rest/v1/leads.json",
            json=body,
            # createOnly is not repeatable blindly (the second send answers 1005 "exists").
            idempotent=action != "createOnly",
        )
        rows = _rows(answer, len(chunk))
        for (index, _), row in zip(chunk, rows, strict=True):
            key = ops[index].key
            status = row.get("status")
            if status in ("created", "updated") and row.get("id") is not None:
                results[index] = WriteResult.success(
                    key, str(row["id"]), created=status == "created"
                )
            else:
                results[index] = _refused(key, row)

    def _delete(
        self,
        ops: Sequence[WriteOp],
        results: list[WriteResult | None],
        chunk: list[tuple[int, int]],
    ) -> None:
        answer = self.client.send(
            "POST",
            "/rest/v1/leads/delete.json",
            json={"input": [{"id": lead} for _, lead in chunk]},
            idempotent=True,
        )
        rows = _rows(answer, len(chunk))
        for (index, lead), row in zip(chunk, rows, strict=True):
            key = ops[index].key
            if row.get("status") == "deleted":
                results[index] = WriteResult.success(key, str(lead))
                continue
            refused = _refused(key, row)
            if refused.error_code == "1004":  # already gone: the contract's NOT_FOUND
                refused = WriteResult.failure(key, f"1004 {refused.error}", code="NOT_FOUND")
            results[index] = refused


def _plan(
    op: Upsert, identity_fields: Sequence[str]
) -> tuple[_Group | None, dict[str, Any] | None, WriteResult | None]:
    fields = {k: v for k, v in op.fields.items() if k not in READ_ONLY_FIELDS}
    if op.id is not None:
        if not op.id.isdigit():
            return (
                None,
                None,
                WriteResult.failure(op.key, f"{op.id!r} is not a Marketo lead id", code="1004"),
            )
        return ("updateOnly", "id"), {**fields, "id": int(op.id)}, None
    if op.match_on is not None:
        if op.match_on not in identity_fields:
            return (
                None,
                None,
                WriteResult.failure(
                    op.key,
                    f"cannot match leads on {op.match_on!r}; identity fields: {list(identity_fields)}",
                    code="INVALID_MATCH_FIELD",
                ),
            )
        if fields.get(op.match_on) in (None, ""):
            return (
                None,
                None,
                WriteResult.failure(
                    op.key, f"no value for the match field {op.match_on!r}", code="1003"
                ),
            )
        return ("createOrUpdate", op.match_on), fields, None
    return ("createOnly", None), fields, None


def _rows(answer: dict[str, Any], expected: int) -> list[dict[str, Any]]:
    rows = answer.get("result")
    if not isinstance(rows, list) or len(rows) != expected:
        got = len(rows) if isinstance(rows, list) else "no"
        raise CrmBridgeError(f"Marketo answered {got} results for {expected} inputs")
    return [r if isinstance(r, dict) else {} for r in rows]


def _refused(key: str, row: dict[str, Any]) -> WriteResult:
    reasons = [r for r in row.get("reasons") or [] if isinstance(r, dict)]
    first = reasons[0] if reasons else {}
    code = str(first.get("code") or "UNKNOWN")
    message = (
        "; ".join(f"{r.get('code')} {r.get('message') or ''}".strip() for r in reasons)
        or f"Marketo answered status {row.get('status')!r}"
    )
    return WriteResult.failure(key, message, code=code, retryable=code in _RETRYABLE_REASONS)
