"""``query``, ``queryAll`` and query-locator paging.

Why cache the matched rows per locator: a sync job pages through tens of thousands of rows; a
real org computes the result set once and hands out ``nextRecordsUrl`` locators into it.  Doing
the same keeps each page O(page size) instead of re-filtering and re-sorting the org each time.
"""

from __future__ import annotations

import re
from typing import Any

from crm_bridge.connectors.salesforce.emulator.errors import ApiError
from crm_bridge.connectors.salesforce.emulator.router import Ctx, Resp, Router
from crm_bridge.connectors.salesforce.emulator.soql import (
    Cursor,
    RecordSource,
    Renderer,
    compile_query,
    run_query,
)
from crm_bridge.connectors.salesforce.emulator.state import Org, Record

__all__ = ["batch_size", "first_page", "register"]

_BATCH_RE = re.compile(r"batchSize\s*=\s*(\d+)", re.IGNORECASE)


def batch_size(ctx: Ctx) -> int:
    """The page size: ``Sforce-Query-Options: batchSize=N`` clamped to 200..2000.

    Doc: https://developer.salesforce.com/docs/platform/api-rest/guide/headers-queryoptions.html
    """
    default = ctx.org.settings.default_query_batch_size
    header = ctx.header("sforce-query-options")
    if not header:
        return default
    m = _BATCH_RE.search(header)
    if m is None:
        return default
    return max(200, min(2000, int(m.group(1))))


def _new_cursor(
    org: Org, rows: list[Record], renderer: Renderer, batch: int, include_deleted: bool
) -> Cursor:
    cursor = Cursor(
        org.new_id("QueryLocator")[:15], rows, renderer, batch, org.clock.time(), include_deleted
    )
    org.cursors[cursor.id] = cursor
    while len(org.cursors) > org.settings.max_open_cursors:
        org.cursors.popitem(last=False)
    return cursor


def _page(
    ctx: Ctx,
    cursor: Cursor | None,
    rows: list[Record],
    renderer: Renderer,
    start: int,
    batch: int,
    include_deleted: bool,
) -> dict[str, Any]:
    end = min(start + batch, len(rows))
    body: dict[str, Any] = {"totalSize": len(rows), "done": end >= len(rows)}
    if end < len(rows):
        if cursor is None:
            cursor = _new_cursor(ctx.org, rows, renderer, batch, include_deleted)
        cursor.touched = ctx.org.clock.time()
        resource = "queryAll" if include_deleted else "query"
        body["nextRecordsUrl"] = f"{ctx.version_path()}/{resource}/{cursor.id}-{end}"
    elif cursor is not None:
        ctx.org.cursors.pop(cursor.id, None)
    render = renderer.render
    body["records"] = [render(r) for r in rows[start:end]]
    return body


def first_page(ctx: Ctx, source: RecordSource, include_deleted: bool) -> Resp:
    """Run ``?q=`` and answer its first page (also used by the Tooling query resource)."""
    text = ctx.param("q")
    if text is None:
        raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
    query = compile_query(source, text, version=ctx.version, now=ctx.org.clock.now())
    rows = run_query(source, query, include_deleted=include_deleted)
    if query.count:
        return Resp(200, {"totalSize": len(rows), "done": True, "records": []})
    return Resp(200, _page(ctx, None, rows, query.renderer, 0, batch_size(ctx), include_deleted))


def query(ctx: Ctx) -> Resp:
    """``GET /query?q=`` -- SOQL over live records.

    Doc: https://developer.salesforce.com/docs/platform/api-rest/guide/resources-query.md
    """
    return first_page(ctx, ctx.org, include_deleted=False)


def query_all(ctx: Ctx) -> Resp:
    """``GET /queryAll?q=`` -- like query, plus deleted and merged records (``IsDeleted``).

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_queryall.htm
    """
    return first_page(ctx, ctx.org, include_deleted=True)


def query_more(ctx: Ctx) -> Resp:
    """``GET /query/<locator>-<offset>`` -- the next page of an earlier query.

    Doc: https://developer.salesforce.com/docs/platform/api-rest/guide/resources-query-more-results.md
    """
    locator = ctx.path_args["locator"]
    cursor_id, _, offset_text = locator.rpartition("-")
    cursor = ctx.org.cursors.get(cursor_id)
    now = ctx.org.clock.time()
    if cursor is not None and now - cursor.touched > ctx.org.settings.query_cursor_ttl_seconds:
        ctx.org.cursors.pop(cursor.id, None)
        cursor = None
    if cursor is None or not offset_text.isdigit() or int(offset_text) > len(cursor.rows):
        raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    ctx.org.cursors.move_to_end(cursor.id)
    batch = batch_size(ctx) if ctx.header("sforce-query-options") else cursor.batch
    return Resp(
        200,
        _page(
            ctx,
            cursor,
            cursor.rows,
            cursor.renderer,
            int(offset_text),
            batch,
            cursor.include_deleted,
        ),
    )


def register(router: Router) -> None:
    """Add the query resources."""
    router.add("GET", "query")(query)
    router.add("GET", "queryAll")(query_all)
    router.add("GET", "query/{locator}")(query_more)
    router.add("GET", "queryAll/{locator}")(query_more)
