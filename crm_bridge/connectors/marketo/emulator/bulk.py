"""Bulk lead extract and bulk lead import: jobs whose progress follows the emulator clock.

Why the clock and not real time: an extract goes Created -> Queued -> Processing -> Completed and
an import Queued -> Importing -> Complete over minutes at the vendor (the status refreshes at
most once a minute); tests and the demo move the emulator clock (or step a job through the
control plane) instead of waiting.  The extract's file is cut when processing starts, so writes
made later are not in it -- as at the vendor.

Docs: https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/bulk-extract/bulk-lead-extract,
.../bulk-import/bulk-lead-import
"""

from __future__ import annotations

import csv
import hashlib
import io
import threading
import uuid
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from crm_bridge.connectors.marketo.emulator.errors import MarketoError, blank
from crm_bridge.connectors.marketo.emulator.fields import FieldError
from crm_bridge.connectors.marketo.emulator.settings import MarketoEmulatorSettings
from crm_bridge.connectors.marketo.emulator.state import Instance, Lead
from crm_bridge.connectors.marketo.emulator.timefmt import iso, parse_iso

__all__ = ["BulkJobs", "ExportJob", "ImportJob", "parse_multipart_file"]

_DELIMITERS = {"CSV": ",", "TSV": "\t", "SSV": " "}
_MAX_RANGE_DAYS = 31
_LIST_IMPORT = "List import"


@dataclass
class ExportJob:
    """One lead extract."""

    id: str
    fields: list[str]
    headers: list[str]
    format: str
    filter: dict[str, Any]
    created: float
    status: str = "Created"
    queued: float | None = None
    started: float | None = None
    finished: float | None = None
    file: bytes | None = None
    records: int = 0

    def render(self) -> dict[str, Any]:
        """The ``ExportResponse`` item (unset members omitted, as the vendor does)."""
        item: dict[str, Any] = {
            "exportId": self.id,
            "format": self.format,
            "status": self.status,
            "createdAt": iso(self.created),
        }
        if self.queued is not None:
            item["queuedAt"] = iso(self.queued)
        if self.started is not None:
            item["startedAt"] = iso(self.started)
        if self.status == "Completed" and self.file is not None:
            item["finishedAt"] = iso(self.finished or self.started or self.created)
            item["numberOfRecords"] = self.records
            item["fileSize"] = len(self.file)
            item["fileChecksum"] = "sha256:" + hashlib.sha256(self.file).hexdigest()
        return item


@dataclass
class ImportJob:
    """One lead import."""

    id: int
    format: str
    lookup_field: str
    list_id: int | None
    header: list[str]
    rows: list[list[str]]
    created: float
    status: str = "Queued"
    started: float | None = None
    processed: int = 0
    failures: list[tuple[list[str], str]] = field(default_factory=list)
    warnings: list[tuple[list[str], str]] = field(default_factory=list)
    message: str | None = None

    def render(self) -> dict[str, Any]:
        """The ``ImportLeadResponse`` item."""
        item: dict[str, Any] = {
            "batchId": self.id,
            "importId": str(self.id),
            "status": self.status,
            "numOfLeadsProcessed": self.processed,
            "numOfRowsFailed": len(self.failures),
            "numOfRowsWithWarning": len(self.warnings),
        }
        if self.message:
            item["message"] = self.message
        return item


def parse_multipart_file(content_type: str, raw: bytes, name: str = "file") -> bytes | None:
    """The content of the form part ``name`` of a ``multipart/form-data`` body."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    if not message.is_multipart():
        return None
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == name:
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else None
    return None


class BulkJobs:
    """All extract and import jobs of the instance."""

    def __init__(self, settings: MarketoEmulatorSettings, instance: Instance) -> None:
        self.settings = settings
        self.instance = instance
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        """Forget every job."""
        with self._lock:
            self.exports: dict[str, ExportJob] = {}
            self.imports: dict[int, ImportJob] = {}
            self._next_import = 1

    # -- extract ------------------------------------------------------------------------

    def create_export(self, body: dict[str, Any], now: float) -> ExportJob:
        """Validate and store a new extract (``Created``)."""
        fields = body.get("fields")
        if not isinstance(fields, list) or not fields:
            raise blank("fields")
        schema = self.instance.schema
        bad = [f for f in fields if schema.get(str(f)) is None]
        if bad:
            raise MarketoError(1006, f"Field '{bad[0]}' not found")
        fmt = str(body.get("format") or "CSV").upper()
        if fmt not in _DELIMITERS:
            raise MarketoError(1003, f"Invalid format '{fmt}'")
        flt = body.get("filter")
        if not isinstance(flt, dict) or not flt:
            raise blank("filter")
        for key, value in flt.items():
            if key in ("createdAt", "updatedAt"):
                self._range(key, value)
            elif key in ("staticListId", "staticListName"):
                continue
            else:
                raise MarketoError(1003, f"Invalid filter type '{key}'")
        names = body.get("columnHeaderNames") or {}
        headers = [str(names.get(f, f)) for f in fields]
        with self._lock:
            job = ExportJob(str(uuid.uuid4()), [str(f) for f in fields], headers, fmt, flt, now)
            self.exports[job.id] = job
        return job

    def _range(self, key: str, value: Any) -> tuple[float, float]:
        if not isinstance(value, dict):
            raise MarketoError(1003, f"Invalid date range for '{key}'")
        try:
            start = parse_iso(str(value["startAt"]))
            end = parse_iso(str(value["endAt"]))
        except KeyError:
            raise MarketoError(1003, f"Invalid date range for '{key}'") from None
        except ValueError:
            raise MarketoError(704, f"Invalid date format for '{key}'") from None
        if end < start or end - start > _MAX_RANGE_DAYS * 86400:
            raise MarketoError(1003, f"Date range for '{key}' exceeds {_MAX_RANGE_DAYS} days")
        return start, end

    def export(self, export_id: str, now: float) -> ExportJob:
        """A job brought up to date with the clock (1003 if unknown)."""
        with self._lock:
            job = self.exports.get(export_id)
            if job is None:
                raise MarketoError(1003, f"Export id '{export_id}' not found")
            self._progress(job, now)
            return job

    def enqueue(self, export_id: str, now: float) -> ExportJob:
        """``Created`` -> ``Queued`` (1029 when the queue is full)."""
        with self._lock:
            job = self.export(export_id, now)
            if job.status != "Created":
                raise MarketoError(1029, f"Export job '{export_id}' is already {job.status}")
            queued = sum(1 for j in self.exports.values() if j.status == "Queued")
            if queued >= self.settings.bulk_max_queued:
                raise MarketoError(
                    1029, f"Too many jobs ({self.settings.bulk_max_queued}) in queue"
                )
            job.status, job.queued = "Queued", now
            return job

    def cancel(self, export_id: str, now: float) -> ExportJob:
        """Any unfinished job -> ``Canceled``."""
        with self._lock:
            job = self.export(export_id, now)
            if job.status in ("Created", "Queued", "Processing"):
                job.status = "Canceled"
            return job

    def step(self, job_id: str, now: float) -> dict[str, Any]:
        """Move one job (extract id or import batch id) one state on, at once."""
        with self._lock:
            if job_id in self.exports:
                job = self.exports[job_id]
                if job.status == "Queued":
                    self._start(job, now)
                elif job.status == "Processing":
                    job.status, job.finished = "Completed", now
                return job.render()
            batch = self.imports.get(int(job_id)) if job_id.isdigit() else None
            if batch is None:
                raise KeyError(job_id)
            if batch.status == "Queued":
                batch.status, batch.started = "Importing", now
            elif batch.status == "Importing":
                self._apply(batch)
            return batch.render()

    def _progress(self, job: ExportJob, now: float) -> None:
        s = self.settings
        queued, started = job.queued, job.started
        if job.status == "Queued" and queued is not None and now >= queued + s.bulk_queue_seconds:
            self._start(job, queued + s.bulk_queue_seconds)
            started = job.started
        done_at = (started or 0.0) + s.bulk_processing_seconds
        if job.status == "Processing" and started is not None and now >= done_at:
            job.status, job.finished = "Completed", done_at

    def _start(self, job: ExportJob, at: float) -> None:
        job.status, job.started = "Processing", at
        leads = [lead for lead in self.instance.leads.values() if self._selected(job, lead)]
        out = io.StringIO()
        writer = csv.writer(out, delimiter=_DELIMITERS[job.format], lineterminator="\n")
        writer.writerow(job.headers)
        for lead in leads:
            writer.writerow(["" if (v := lead.get(f)) is None else _cell(v) for f in job.fields])
        job.file = out.getvalue().encode()
        job.records = len(leads)

    def _selected(self, job: ExportJob, lead: Lead) -> bool:
        for key, value in job.filter.items():
            if key in ("createdAt", "updatedAt"):
                start, end = self._range(key, value)
                stamp = lead.created if key == "createdAt" else lead.updated
                if not start <= stamp <= end:
                    return False
            elif key == "staticListId":
                sl = self.instance.lists.get(int(value))
                if sl is None or lead.id not in sl.members:
                    return False
            elif key == "staticListName":
                matches = [sl for sl in self.instance.lists.values() if sl.name == value]
                if not matches or lead.id not in matches[0].members:
                    return False
        return True

    # -- import -------------------------------------------------------------------------

    def create_import(
        self, data: bytes, fmt: str, lookup_field: str, list_id: int | None, now: float
    ) -> ImportJob:
        """Parse the uploaded file and queue it (1016 when ten are already queued)."""
        fmt = fmt.upper()
        if fmt not in _DELIMITERS:
            raise MarketoError(1003, f"Invalid format '{fmt}'")
        try:
            self.instance.schema.check_key(lookup_field)
        except FieldError as exc:
            raise MarketoError(exc.code, exc.message) from None
        if list_id is not None and list_id not in self.instance.lists:
            raise MarketoError(1013, f"Static list '{list_id}' not found")
        text = data.decode("utf-8-sig", errors="replace")
        rows = list(csv.reader(io.StringIO(text), delimiter=_DELIMITERS[fmt]))
        if not rows or not any(rows[0]):
            raise MarketoError(1003, "Empty file")
        header, body = [h.strip() for h in rows[0]], [r for r in rows[1:] if any(r)]
        unknown = [h for h in header if h != "id" and self.instance.schema.get(h) is None]
        if unknown:
            raise MarketoError(1006, f"Field '{unknown[0]}' not found")
        with self._lock:
            waiting = sum(1 for j in self.imports.values() if j.status == "Queued")
            if waiting >= self.settings.bulk_max_queued:
                raise MarketoError(1016, "Too many imports")
            job = ImportJob(self._next_import, fmt, lookup_field, list_id, header, body, now)
            self._next_import += 1
            self.imports[job.id] = job
        return job

    def import_job(self, batch_id: int, now: float) -> ImportJob:
        """A batch brought up to date with the clock (1003 if unknown)."""
        with self._lock:
            job = self.imports.get(batch_id)
            if job is None:
                raise MarketoError(1003, f"Batch id '{batch_id}' not found")
            s = self.settings
            if job.status == "Queued" and now >= job.created + s.bulk_queue_seconds:
                job.status, job.started = "Importing", job.created + s.bulk_queue_seconds
            if (
                job.status == "Importing"
                and job.started is not None
                and now >= job.started + s.bulk_processing_seconds
            ):
                self._apply(job)
            return job

    def _apply(self, job: ImportJob) -> None:
        """Insert-or-update every row; collect failures and warnings; ``Complete``."""
        inst = self.instance
        with inst.lock:
            for row in job.rows:
                values: dict[str, Any] = {}
                problem: str | None = None
                warning: str | None = None
                for name, cell in zip(job.header, row, strict=False):
                    if name == "id":
                        continue
                    definition = inst.schema.get(name)
                    if (
                        definition is not None
                        and definition.length is not None
                        and len(cell) > definition.length
                    ):
                        warning = f"Value for field '{name}' truncated to {definition.length}"
                        cell = cell[: definition.length]
                    try:
                        values[name] = inst.schema.coerce(name, cell)
                    except FieldError as exc:
                        problem = exc.message
                        break
                lookup = (
                    dict(zip(job.header, row, strict=False)).get("id")
                    if job.lookup_field == "id"
                    else values.get(job.lookup_field)
                )
                if problem is None and lookup in (None, ""):
                    problem = f"Value for lookup field '{job.lookup_field}' not specified"
                if problem is not None:
                    job.failures.append((row, problem))
                    continue
                matches = inst.find(job.lookup_field, lookup)
                if job.lookup_field == "id" and not matches:
                    job.failures.append((row, "Lead not found"))
                    continue
                if matches:
                    lead = matches[0]
                    inst.update_lead(lead, values, reason=_LIST_IMPORT)
                else:
                    lead = inst.create_lead(values, source=_LIST_IMPORT)
                if job.list_id is not None and job.list_id in inst.lists:
                    inst.lists[job.list_id].members.setdefault(lead.id, inst.now())
                if warning is not None:
                    job.warnings.append((row, warning))
                job.processed += 1
        job.status = "Complete"
        job.message = (
            f"Import completed with {'errors' if job.failures else 'no errors'}, "
            f"{job.processed} records imported ({job.processed} members), "
            f"{len(job.failures)} failed records ({len(job.failures)} failed members)"
        )

    def report(self, job: ImportJob, kind: str) -> bytes:
        """The failures or warnings file: the upload's header plus a reason column."""
        rows = job.failures if kind == "failures" else job.warnings
        column = "Import Failure Reason" if kind == "failures" else "Import Warning Reason"
        out = io.StringIO()
        writer = csv.writer(out, delimiter=_DELIMITERS[job.format], lineterminator="\n")
        writer.writerow([*job.header, column])
        for row, why in rows:
            writer.writerow([*row, why])
        return out.getvalue().encode()


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
