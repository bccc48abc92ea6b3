"""Bulk API 2.0: CSV ingest jobs and query jobs.

Why jobs finish synchronously: simple-salesforce polls ``GET jobs/.../{id}`` after sleeping
``wait`` seconds; tests pass ``wait=0``.  Ingest jobs are processed when the client closes them
(the PATCH answer still says ``UploadComplete``, as a real org's does; the next poll says
``JobComplete``).  Query jobs run at creation and report ``JobComplete`` from the first poll on,
so a results request before any poll gets 412 like a real org's still-running job.
Docs: https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_bulk_v2/bulk_api_2_job_states.htm
https://developer.salesforce.com/docs/platform/api-asynch/guide/query-get-job-results.md
"""

from __future__ import annotations

import base64
import csv
import io
from dataclasses import dataclass, field
from typing import Any

from crm_bridge.connectors.salesforce.emulator.dml import Writer
from crm_bridge.connectors.salesforce.emulator.errors import ApiError, RecordError, not_found
from crm_bridge.connectors.salesforce.emulator.router import Ctx, Resp, Router
from crm_bridge.connectors.salesforce.emulator.soql import PathInfo, compile_query, run_query
from crm_bridge.connectors.salesforce.emulator.state import Record

__all__ = ["BulkJob", "register"]

DELIMITERS = {
    "COMMA": ",",
    "TAB": "\t",
    "PIPE": "|",
    "SEMICOLON": ";",
    "CARET": "^",
    "BACKQUOTE": "`",
}
INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
CSV_TYPE = "text/csv"


@dataclass
class BulkJob:
    """One Bulk 2.0 job and, once processed, its results."""

    id: str
    is_query: bool
    operation: str
    object: str
    created_by: str
    created: str
    state: str
    api_version: str
    column_delimiter: str = "COMMA"
    line_ending: str = "LF"
    external_id_field: str | None = None
    uploads: list[bytes] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    successful: list[list[str]] = field(default_factory=list)
    failed: list[list[str]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)
    error_message: str | None = None
    query: str | None = None
    rows: list[Record] = field(default_factory=list)
    paths: list[PathInfo] = field(default_factory=list)
    polled: bool = False

    def info(self, modified: str) -> dict[str, Any]:
        """The job-info body every job resource answers with."""
        out: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": self.created_by,
            "createdDate": self.created,
            "systemModstamp": modified,
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "jobType": "V2Query" if self.is_query else "V2Ingest",
            "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
            "retries": 0,
            "totalProcessingTime": 0,
        }
        if self.is_query:
            out["numberRecordsProcessed"] = len(self.rows) if self.state == "JobComplete" else 0
        else:
            out["contentUrl"] = f"services/data/v{self.api_version}/jobs/ingest/{self.id}/batches"
            out["numberRecordsProcessed"] = len(self.successful) + len(self.failed)
            out["numberRecordsFailed"] = len(self.failed)
            out["apiActiveProcessingTime"] = 0
            out["apexProcessingTime"] = 0
            if self.external_id_field:
                out["externalIdFieldName"] = self.external_id_field
        if self.error_message:
            out["errorMessage"] = self.error_message
        return out


def _job(ctx: Ctx, is_query: bool) -> BulkJob:
    job = ctx.org.bulk_jobs.get(ctx.path_args["job"])
    if job is None or job.is_query != is_query:
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
    return job


def _bad_state(message: str) -> ApiError:
    return ApiError(400, "INVALIDJOBSTATE", message)


def _csv(job: BulkJob, header: list[str], rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(
        buf,
        delimiter=DELIMITERS[job.column_delimiter],
        lineterminator="\r\n" if job.line_ending == "CRLF" else "\n",
    )
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode()


def _csv_value(value: Any, stamp: bool = False) -> str:
    """One CSV cell: null is empty; a dateTime is ``...000Z`` in CSV, not REST's ``+0000``."""
    if value is None:
        return ""
    if stamp and isinstance(value, str) and value.endswith("+0000"):
        return value[: -len("+0000")] + "Z"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ------------------------------------------------------------------------------------ ingest
def create_ingest(ctx: Ctx) -> Resp:
    """``POST /jobs/ingest`` -- a job in state ``Open``.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/create_job.htm
    """
    body = ctx.json_object()
    operation = body.get("operation")
    if operation not in INGEST_OPERATIONS:
        raise ApiError(400, "INVALIDJOB", f"Invalid operation: {operation}")
    t = ctx.org.sobject(str(body.get("object") or ""))
    if t is None:
        raise ApiError(400, "INVALIDJOB", f"sObject type '{body.get('object')}' is not supported")
    delimiter = str(body.get("columnDelimiter") or "COMMA")
    line_ending = str(body.get("lineEnding") or "LF")
    if delimiter not in DELIMITERS or line_ending not in ("LF", "CRLF"):
        raise ApiError(400, "INVALIDJOB", "Invalid columnDelimiter or lineEnding")
    ext = body.get("externalIdFieldName")
    if operation == "upsert":
        f = t.field(str(ext or ""))
        if f is None or not (f.external_id or f.name == "Id"):
            raise ApiError(
                400, "INVALIDJOB", f"External ID field is required and must exist: {ext}"
            )
        ext = f.name
    now = ctx.org.now_stamp()
    job = BulkJob(
        ctx.org.new_id("BulkJob"),
        False,
        str(operation),
        t.name,
        ctx.user_id,
        now,
        "Open",
        ctx.version,
        delimiter,
        line_ending,
        ext if operation == "upsert" else None,
    )
    ctx.org.bulk_jobs[job.id] = job
    return Resp(200, job.info(now))


def upload(ctx: Ctx) -> Resp:
    """``PUT /jobs/ingest/{id}/batches`` -- CSV data; 201 (simple-salesforce requires it).

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/upload_job_data.htm
    """
    job = _job(ctx, False)
    if job.state != "Open":
        raise _bad_state(f"Job {job.id} is not Open (state {job.state})")
    if not ctx.body:
        raise ApiError(400, "INVALIDBATCH", "No data was uploaded")
    job.uploads.append(ctx.body)
    return Resp(201)


def _parse_upload(job: BulkJob) -> tuple[list[str], list[list[str]]]:
    text = b"".join(job.uploads).decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[job.column_delimiter])
    rows = [r for r in reader if r]
    if not rows:
        return [], []
    return rows[0], rows[1:]


def _process(ctx: Ctx, job: BulkJob) -> None:
    header, rows = _parse_upload(job)
    t = ctx.org.schema[job.object]
    unknown = [c for c in header if t.field(c) is None]
    if not header or unknown:
        job.state = "Failed"
        job.error_message = f"InvalidBatch : Field name not found : {(unknown or ['<none>'])[0]}"
        return
    if job.operation in ("delete", "hardDelete") and [c.lower() for c in header] != ["id"]:
        job.state = "Failed"
        job.error_message = "InvalidBatch : The 'delete' batch must contain only ids"
        return
    job.columns = header
    writer = Writer(ctx.org, ctx.user_id)
    for row in rows:
        values = dict(zip(header, row, strict=False))
        data = {k: v for k, v in values.items() if v != ""}
        try:
            with ctx.org.atomic():
                rid, created = _apply(writer, job, data)
        except RecordError as err:
            rid_text = data.get("Id", data.get("id", ""))
            job.failed.append(
                [rid_text, f"{err.status_code}:{err.message}:{','.join(err.fields)} --", *row]
            )
            continue
        job.successful.append([rid, "true" if created else "false", *row])
    job.state = "JobComplete"


def _apply(writer: Writer, job: BulkJob, data: dict[str, str]) -> tuple[str, bool]:
    rid = next((v for k, v in data.items() if k.lower() == "id"), None)
    body = {k: v for k, v in data.items() if k.lower() != "id"}
    if job.operation == "insert":
        return writer.create(job.object, body, from_text=True), True
    if job.operation == "update":
        if not rid:
            raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call", [])
        return writer.update(job.object, rid, body, from_text=True), False
    if job.operation == "upsert":
        assert job.external_id_field is not None
        value = next(
            (v for k, v in data.items() if k.lower() == job.external_id_field.lower()), None
        )
        if job.external_id_field == "Id":
            value, body = rid, body
        return writer.upsert(job.object, job.external_id_field, value, body, from_text=True)
    if not rid:
        raise RecordError("MISSING_ARGUMENT", "Id not specified in a delete call", [])
    return writer.delete(job.object, rid), False


def patch_ingest(ctx: Ctx) -> Resp:
    """``PATCH /jobs/ingest/{id}`` -- ``UploadComplete`` (close: process) or ``Aborted``.

    Doc: https://developer.salesforce.com/docs/platform/api-asynch/guide/close-job.html
    """
    job = _job(ctx, False)
    state = ctx.json_object().get("state")
    if state == "UploadComplete":
        if job.state != "Open":
            raise _bad_state(f"Job {job.id} is not Open (state {job.state})")
        job.state = "UploadComplete"
        answer = job.info(ctx.org.now_stamp())
        _process(ctx, job)
        return Resp(200, answer)
    if state == "Aborted":
        if job.state not in ("Open", "UploadComplete", "InProgress"):
            raise _bad_state(f"Aborting a job in state {job.state} is not allowed")
        job.state = "Aborted"
        return Resp(200, job.info(ctx.org.now_stamp()))
    raise ApiError(400, "INVALIDJOBSTATE", f"Invalid state: {state}")


def get_ingest(ctx: Ctx) -> Resp:
    """``GET /jobs/ingest/{id}`` -- job info with record counts.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/get_job_info.htm
    """
    return Resp(200, _job(ctx, False).info(ctx.org.now_stamp()))


def delete_job(ctx: Ctx) -> Resp:
    """``DELETE /jobs/ingest|query/{id}`` -- 204 once the job is closed or aborted.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/delete_job.htm
    """
    job = ctx.org.bulk_jobs.get(ctx.path_args["job"])
    if job is None:
        raise not_found()
    if job.state in ("Open", "InProgress") or (job.state == "UploadComplete" and not job.is_query):
        raise _bad_state(f"Job {job.id} must be closed or aborted before it is deleted")
    del ctx.org.bulk_jobs[job.id]
    return Resp(204)


# Salesforce documents ``unprocessedrecords``; simple-salesforce (``ResultsType.unprocessed``)
# sends ``unprocessedRecords``.  Both are answered alike so the client's helpers work here.
_UNPROCESSED_SPELLINGS = frozenset({"unprocessedrecords", "unprocessedRecords"})


def ingest_results(ctx: Ctx) -> Resp:
    """``GET /jobs/ingest/{id}/successfulResults|failedResults|unprocessedrecords`` (CSV).

    ``unprocessedRecords`` is accepted too (see ``_UNPROCESSED_SPELLINGS``), so that the client's
    ``get_unprocessed_records`` and ``get_all_ingest_records`` work against the emulator.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/get_job_successful_results.htm
    """
    job = _job(ctx, False)
    kind = ctx.path_args["kind"]
    columns = job.columns or _parse_upload(job)[0]
    if kind == "successfulResults":
        data = _csv(job, ["sf__Id", "sf__Created", *columns], job.successful)
    elif kind == "failedResults":
        data = _csv(job, ["sf__Id", "sf__Error", *columns], job.failed)
    elif kind in _UNPROCESSED_SPELLINGS:
        pending = [] if job.state == "JobComplete" else _parse_upload(job)[1]
        data = _csv(job, columns, pending) if columns else b""
    else:
        raise not_found()
    return Resp(200, raw=data, content_type=CSV_TYPE)


# ------------------------------------------------------------------------------------ query
def create_query(ctx: Ctx) -> Resp:
    """``POST /jobs/query`` -- runs the SOQL at once (errors are 400 here, as in a real org).

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_create_job.htm
    """
    body = ctx.json_object()
    operation = body.get("operation")
    if operation not in ("query", "queryAll"):
        raise ApiError(400, "INVALIDJOB", f"Invalid operation: {operation}")
    text = str(body.get("query") or "")
    q = compile_query(ctx.org, text, version=ctx.version, now=ctx.org.clock.now())
    if q.count:
        raise ApiError(400, "INVALIDJOB", "Aggregate queries are not supported by Bulk API 2.0")
    delimiter = str(body.get("columnDelimiter") or "COMMA")
    line_ending = str(body.get("lineEnding") or "LF")
    if delimiter not in DELIMITERS or line_ending not in ("LF", "CRLF"):
        raise ApiError(400, "INVALIDJOB", "Invalid columnDelimiter or lineEnding")
    now = ctx.org.now_stamp()
    job = BulkJob(
        ctx.org.new_id("BulkJob"),
        True,
        str(operation),
        q.obj.name,
        ctx.user_id,
        now,
        "UploadComplete",
        ctx.version,
        delimiter,
        line_ending,
        query=text,
    )
    job.rows = run_query(ctx.org, q, include_deleted=operation == "queryAll")
    job.paths = q.paths
    ctx.org.bulk_jobs[job.id] = job
    return Resp(200, job.info(now))


def get_query(ctx: Ctx) -> Resp:
    """``GET /jobs/query/{id}`` -- the first poll finds the job ``JobComplete``.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_one_job.htm
    """
    job = _job(ctx, True)
    if job.state == "UploadComplete":
        job.state = "JobComplete"
    return Resp(200, job.info(ctx.org.now_stamp()))


def patch_query(ctx: Ctx) -> Resp:
    """``PATCH /jobs/query/{id}`` ``{"state":"Aborted"}``.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_abort_job.htm
    """
    job = _job(ctx, True)
    if ctx.json_object().get("state") != "Aborted":
        raise ApiError(400, "INVALIDJOBSTATE", "Only Aborted can be set on a query job")
    if job.state != "UploadComplete":
        raise _bad_state(f"Aborting a job in state {job.state} is not allowed")
    job.state = "Aborted"
    return Resp(200, job.info(ctx.org.now_stamp()))


def query_results(ctx: Ctx) -> Resp:
    """``GET /jobs/query/{id}/results?maxRecords=&locator=`` -- CSV plus paging headers.

    ``Sforce-Locator`` is an opaque string, ``null`` on the last page;
    ``Sforce-NumberOfRecords`` counts the rows in this page.
    Doc: https://developer.salesforce.com/docs/platform/api-asynch/guide/query-get-job-results.md
    """
    job = _job(ctx, True)
    if job.state != "JobComplete":
        raise ApiError(412, "JOB_NOT_COMPLETE", f"Job {job.id} is not complete (state {job.state})")
    try:
        limit = int(ctx.param("maxRecords") or 50000)
        locator = ctx.param("locator") or ""
        start = (
            int(base64.b64decode(locator + "=" * (-len(locator) % 4)).decode()) if (locator) else 0
        )
    except ValueError:
        raise ApiError(400, "INVALIDLOCATOR", "Invalid locator or maxRecords") from None
    if limit <= 0 or start < 0 or start > len(job.rows):
        raise ApiError(400, "INVALIDLOCATOR", "Invalid locator or maxRecords")
    page = job.rows[start : start + limit]
    cells = [(p.getter, p.leaf.type == "datetime") for p in job.paths]
    data = _csv(
        job,
        [".".join(p.names) for p in job.paths],
        [[_csv_value(g(r), stamp) for g, stamp in cells] for r in page],
    )
    end = start + len(page)
    next_locator = (
        base64.b64encode(str(end).encode()).decode().rstrip("=") if end < len(job.rows) else "null"
    )
    return Resp(
        200,
        raw=data,
        content_type=CSV_TYPE,
        headers={"Sforce-Locator": next_locator, "Sforce-NumberOfRecords": str(len(page))},
    )


def list_jobs(is_query: bool) -> Any:
    """``GET /jobs/ingest`` or ``/jobs/query`` -- every job of that kind.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/get_all_jobs.htm
    """

    def handler(ctx: Ctx) -> Resp:
        now = ctx.org.now_stamp()
        jobs = [j.info(now) for j in ctx.org.bulk_jobs.values() if j.is_query == is_query]
        return Resp(200, {"done": True, "records": jobs, "nextRecordsUrl": None})

    return handler


def register(router: Router) -> None:
    """Add the Bulk 2.0 resources."""
    router.add("POST", "jobs/ingest")(create_ingest)
    router.add("GET", "jobs/ingest")(list_jobs(False))
    router.add("GET", "jobs/ingest/{job}")(get_ingest)
    router.add("PATCH", "jobs/ingest/{job}")(patch_ingest)
    router.add("DELETE", "jobs/ingest/{job}")(delete_job)
    router.add("PUT", "jobs/ingest/{job}/batches")(upload)
    router.add("GET", "jobs/ingest/{job}/{kind}")(ingest_results)
    router.add("POST", "jobs/query")(create_query)
    router.add("GET", "jobs/query")(list_jobs(True))
    router.add("GET", "jobs/query/{job}")(get_query)
    router.add("PATCH", "jobs/query/{job}")(patch_query)
    router.add("DELETE", "jobs/query/{job}")(delete_job)
    router.add("GET", "jobs/query/{job}/results")(query_results)
