"""Composite: up to 25 subrequests in one call, with ``@{ref.field}`` references and allOrNone.

Why it matters to crm-bridge: "create an Account, then a Contact on it, then an Opportunity and
its contact role" is one API call and one transaction this way.  The emulator runs each
subrequest through the same router as a top-level call, so a subrequest fails exactly as the
standalone call would, and the whole request counts once against the daily allocation.
Docs: https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-composite-post.html
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/responses_composite.htm
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from crm_bridge.connectors.salesforce.emulator.errors import ApiError
from crm_bridge.connectors.salesforce.emulator.router import Ctx, Resp, Router

__all__ = ["MAX_SUBREQUESTS", "register"]

MAX_SUBREQUESTS = 25
_REF = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")
_STEP = re.compile(r"\.([A-Za-z0-9_]+)|\[(\d+)\]")
_PATH = re.compile(r"^/services/data/v(\d+\.\d+)(/.*)?$")
ROLLED_BACK = (
    "The transaction was rolled back since another operation in the same transaction failed."
)


class _Unresolved(Exception):
    def __init__(self, expr: str, ref: str) -> None:
        super().__init__(expr)
        self.expr = expr
        self.ref = ref


def _lookup(results: dict[str, Any], ref: str, steps: str, expr: str) -> Any:
    if ref not in results:
        raise _Unresolved(expr, ref)
    value = results[ref]
    for m in _STEP.finditer(steps):
        key, index = m.group(1), m.group(2)
        try:
            value = value[int(index)] if index is not None else value[key]
        except (KeyError, IndexError, TypeError):
            raise _Unresolved(expr, ref) from None
    return value


def _substitute(value: Any, results: dict[str, Any]) -> Any:
    """Replace ``@{ref.path}`` in strings (recursively through lists and dicts)."""
    if isinstance(value, str):
        whole = _REF.fullmatch(value)
        if whole:
            return _lookup(results, whole.group(1), whole.group(2), value[2:-1])
        return _REF.sub(
            lambda m: str(_lookup(results, m.group(1), m.group(2), m.group(0)[2:-1])), value
        )
    if isinstance(value, list):
        return [_substitute(v, results) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, results) for k, v in value.items()}
    return value


def _halted(ref_id: Any, message: str) -> dict[str, Any]:
    return {
        "body": [{"errorCode": "PROCESSING_HALTED", "message": message}],
        "httpHeaders": {},
        "httpStatusCode": 400,
        "referenceId": ref_id,
    }


def make_handler(router: Router) -> Any:
    """The ``POST /composite`` handler, dispatching subrequests through ``router``."""

    def composite(ctx: Ctx) -> Resp:
        """``POST /composite`` -- always 200 with ``compositeResponse`` in request order.

        Doc: https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-composite-post.html
        """
        body = ctx.json_object()
        subs = body.get("compositeRequest")
        if not isinstance(subs, list) or not subs:
            raise ApiError(400, "INVALID_API_INPUT", "compositeRequest is required")
        if len(subs) > MAX_SUBREQUESTS:
            raise ApiError(
                400,
                "INVALID_API_INPUT",
                f"Composite API request exceeds the limit of {MAX_SUBREQUESTS} "
                f"subrequests: {len(subs)}",
            )
        all_or_none = body.get("allOrNone") is True
        results: dict[str, Any] = {}
        out: list[dict[str, Any]] = []
        failed = False
        with ctx.org.atomic() as sp:
            for sub in subs:
                ref_id = sub.get("referenceId") if isinstance(sub, dict) else None
                if failed and all_or_none:
                    out.append(_halted(ref_id, ROLLED_BACK))
                    continue
                try:
                    entry = _run_one(ctx, router, sub, results)
                except _Unresolved as exc:
                    entry = _halted(
                        ref_id,
                        f"Invalid reference specified. No value for "
                        f"{exc.expr} found in {exc.ref}. Provided "
                        f"referenceId ('{exc.ref}') is either invalid or "
                        f"the referenced subrequest did not succeed.",
                    )
                except ApiError as err:
                    entry = {
                        "body": err.body(),
                        "httpHeaders": {},
                        "httpStatusCode": err.status,
                        "referenceId": ref_id,
                    }
                out.append(entry)
                if entry["httpStatusCode"] < 400 and ref_id:
                    results[str(ref_id)] = entry["body"]
                elif entry["httpStatusCode"] >= 400:
                    failed = True
            if failed and all_or_none:
                ctx.org.rollback(sp)
                out = [
                    e if e["httpStatusCode"] >= 400 else _halted(e["referenceId"], ROLLED_BACK)
                    for e in out
                ]
        return Resp(200, {"compositeResponse": out})

    return composite


def _run_one(ctx: Ctx, router: Router, sub: Any, results: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(sub, dict) or not sub.get("url") or not sub.get("method"):
        raise ApiError(
            400, "INVALID_API_INPUT", "Each subrequest needs method, url and referenceId"
        )
    ref_id = sub.get("referenceId")
    url = _substitute(str(sub["url"]), results)
    parts = urlsplit(url)
    m = _PATH.match(parts.path)
    if m is None:
        raise ApiError(400, "INVALID_API_INPUT", f"Invalid subrequest url: {url}")
    sub_path = m.group(2) or "/"
    if sub_path.strip("/") == "composite":
        raise ApiError(400, "INVALID_API_INPUT", "Composite requests cannot be nested")
    headers = dict(ctx.headers)
    for key, value in (sub.get("httpHeaders") or {}).items():
        if key.lower() in ("authorization", "content-type", "accept"):
            raise ApiError(
                400, "INVALID_API_INPUT", f"The {key} header is not allowed in a subrequest"
            )
        headers[key.lower()] = str(value)
    payload = sub.get("body")
    raw = b"" if payload is None else json.dumps(_substitute(payload, results)).encode()
    sub_ctx = type(ctx)(
        org=ctx.org,
        user_id=ctx.user_id,
        method=str(sub["method"]).upper(),
        version=m.group(1),
        params=parse_qs(parts.query, keep_blank_values=True),
        headers=headers,
        body=raw,
        base_url=ctx.base_url,
    )
    resp = router.dispatch(sub_ctx, sub_path)
    http_headers: dict[str, str] = {}
    if resp.status == 201 and isinstance(resp.body, dict) and "id" in resp.body:
        http_headers["Location"] = f"{parts.path.rstrip('/')}/{resp.body['id']}"
    return {
        "body": resp.body,
        "httpHeaders": http_headers,
        "httpStatusCode": resp.status,
        "referenceId": ref_id,
    }


def register(router: Router) -> None:
    """Add ``/composite``."""
    router.add("POST", "composite")(make_handler(router))
