"""Bulk lead extract (``/bulk/v1/leads/export/...``) and bulk lead import (``/bulk/v1/leads.json``).

Why the file answers are not JSON: a finished extract is served as the CSV itself (``Range``
supported, ``206`` with ``Content-Range``); before it is ready the vendor answers 404 with plain
text.  Failure and warning reports of an import are CSV too.

Docs: https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/bulk-extract/bulk-lead-extract,
.../bulk-import/bulk-lead-import
"""

from __future__ import annotations

import re

from starlette.responses import Response
from starlette.routing import Route

from crm_bridge.connectors.marketo.emulator.bulk import parse_multipart_file
from crm_bridge.connectors.marketo.emulator.errors import MarketoError, blank
from crm_bridge.connectors.marketo.emulator.paging import page
from crm_bridge.connectors.marketo.emulator.web import Call, Ctx, Handler, Ok, route

__all__ = ["bulk_routes"]

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def create_export(ctx: Ctx, call: Call) -> Ok:
    """``POST /bulk/v1/leads/export/create.json {fields, format, filter, columnHeaderNames}``."""
    job = ctx.bulk.create_export(call.body_dict(), ctx.instance.now())
    return Ok([job.render()])


def list_exports(ctx: Ctx, call: Call) -> Ok:
    """``GET /bulk/v1/leads/export.json?status=``: the instance's extract jobs, oldest first."""
    wanted = set(call.multi("status") or [])
    now = ctx.instance.now()
    jobs = [ctx.bulk.export(job_id, now) for job_id in list(ctx.bulk.exports)]
    chosen = [job.render() for job in jobs if not wanted or job.status in wanted]
    chunk, token = page("exports", chosen, call.param("nextPageToken"), call.batch())
    return Ok(chunk, next_page_token=token)


def enqueue(ctx: Ctx, call: Call) -> Ok:
    """``POST /bulk/v1/leads/export/{exportId}/enqueue.json``."""
    return Ok([ctx.bulk.enqueue(call.path("exportId"), ctx.instance.now()).render()])


def status(ctx: Ctx, call: Call) -> Ok:
    """``GET /bulk/v1/leads/export/{exportId}/status.json``."""
    return Ok([ctx.bulk.export(call.path("exportId"), ctx.instance.now()).render()])


def cancel(ctx: Ctx, call: Call) -> Ok:
    """``POST /bulk/v1/leads/export/{exportId}/cancel.json``."""
    return Ok([ctx.bulk.cancel(call.path("exportId"), ctx.instance.now()).render()])


def export_file(ctx: Ctx, call: Call) -> Response:
    """``GET /bulk/v1/leads/export/{exportId}/file.json``: the file, whole or a ``Range``."""
    try:
        job = ctx.bulk.export(call.path("exportId"), ctx.instance.now())
    except MarketoError:
        return Response("Export not found", status_code=404, media_type="text/plain")
    if job.status != "Completed" or job.file is None:
        return Response(
            f"Export job is {job.status}, file not ready", status_code=404, media_type="text/plain"
        )
    data = job.file
    wanted = call.request.headers.get("range")
    match = _RANGE.match(wanted.strip()) if wanted else None
    if match is None or not any(match.groups()):
        return Response(data, media_type="text/csv")
    first, last = match.groups()
    if first == "":
        start, end = max(0, len(data) - int(last)), len(data) - 1
    else:
        start, end = int(first), (int(last) if last else len(data) - 1)
    end = min(end, len(data) - 1)
    if start > end:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{len(data)}"})
    return Response(
        data[start : end + 1],
        status_code=206,
        media_type="text/csv",
        headers={"Content-Range": f"bytes {start}-{end}/{len(data)}"},
    )


def create_import(ctx: Ctx, call: Call) -> Ok:
    """``POST /bulk/v1/leads.json?format=csv`` with a multipart ``file``."""
    ctype = call.request.headers.get("content-type", "")
    if "multipart/form-data" not in ctype:
        raise MarketoError(613)
    data = parse_multipart_file(ctype, call.raw)
    if data is None:
        raise blank("file")
    fmt = call.require("format")
    list_raw = call.param("listId")
    list_id = int(list_raw) if list_raw and list_raw.isdigit() else None
    lookup = call.param("lookupField") or "email"
    job = ctx.bulk.create_import(data, fmt, lookup, list_id, ctx.instance.now())
    return Ok([job.render()])


def import_status(ctx: Ctx, call: Call) -> Ok:
    """``GET /bulk/v1/leads/batch/{batchId}.json``."""
    return Ok([ctx.bulk.import_job(call.path_int("batchId"), ctx.instance.now()).render()])


def _report(kind: str) -> Handler:
    def handler(ctx: Ctx, call: Call) -> Response:
        job = ctx.bulk.import_job(call.path_int("batchId"), ctx.instance.now())
        return Response(ctx.bulk.report(job, kind), media_type="text/csv")

    return handler


def bulk_routes(ctx: Ctx) -> list[Route]:
    """The bulk routes."""
    base = "/bulk/v1/leads/export"
    failures = _report("failures")
    warnings = _report("warnings")
    return [
        route(ctx, f"{base}.json", {"GET": list_exports}),
        route(ctx, f"{base}/create.json", {"POST": create_export}),
        route(ctx, f"{base}/{{exportId}}/enqueue.json", {"POST": enqueue}),
        route(ctx, f"{base}/{{exportId}}/status.json", {"GET": status}),
        route(ctx, f"{base}/{{exportId}}/cancel.json", {"POST": cancel}),
        route(ctx, f"{base}/{{exportId}}/file.json", {"GET": export_file}),
        route(ctx, "/bulk/v1/leads.json", {"POST": create_import}),
        route(ctx, "/bulk/v1/leads/batch/{batchId}.json", {"GET": import_status}),
        route(ctx, "/bulk/v1/leads/batch/{batchId}/failures.json", {"GET": failures}),
        route(ctx, "/bulk/v1/leads/batch/{batchId}/warnings.json", {"GET": warnings}),
    ]
