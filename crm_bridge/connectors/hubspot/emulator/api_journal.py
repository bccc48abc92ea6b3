"""Webhooks journal endpoints (2026-03): subscriptions, entries, and the pre-signed entry files.

* ``POST|GET /webhooks-journal/subscriptions/2026-03``, ``DELETE .../2026-03/{subscriptionId}``
  -- an app's OBJECT subscriptions (``developer.webhooks_journal.subscriptions.read|write`` plus
  the object's read scope).
* ``GET /webhooks-journal/journal[-local]/2026-03/earliest|latest|offset/{offset}/next`` --
  ``{currentOffset, url, expiresAt}``; 204 when there is no such entry (yet); 404 for an offset
  the journal no longer has (``developer.webhooks_journal.read``).
* ``GET /webhooks-journal/files/{offset}?expires=&signature=`` -- the entry's events as a JSON
  array, the stand-in for HubSpot's pre-signed storage URL: no ``Authorization`` (one is refused,
  as storage refuses a second auth mechanism), not rate limited, refused once expired.

Why the token must be an app's client-credentials token: the journal belongs to the app, not to
an install; a private-app or OAuth-install token lacks the ``developer.*`` scopes and gets the
403 HubSpot sends.  Every API call here passes :func:`~.web.endpoint`, so it authenticates and
counts against the rate limits like any other call.

Doc: https://developers.hubspot.com/docs/api-reference/latest/webhooks-journal/guide
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crm_bridge.connectors.hubspot.emulator.catalog import resolve_type
from crm_bridge.connectors.hubspot.emulator.errors import HubSpotError, bad_request, not_found
from crm_bridge.connectors.hubspot.emulator.journal import (
    ACTIONS,
    Entry,
    Journal,
    JournalExpired,
)
from crm_bridge.connectors.hubspot.emulator.timefmt import iso_ms
from crm_bridge.connectors.hubspot.emulator.web import Call, Ctx, Reply, endpoint, json_response

__all__ = ["FILES_PATH", "journal_routes"]

VERSION = "2026-03"
FILES_PATH = "/webhooks-journal/files"

_READ = "developer.webhooks_journal.read"
_SUBS_READ = "developer.webhooks_journal.subscriptions.read"
_SUBS_WRITE = "developer.webhooks_journal.subscriptions.write"
_MISSING_SCOPES = (
    "This app hasn't been granted all required scopes to make this call. Read more about "
    "required scopes here: https://developers.hubspot.com/scopes."
)


def require_scopes(call: Call, *scopes: str) -> None:
    """HubSpot's 403 ``MISSING_SCOPES`` naming the granular scopes the call needs."""
    if all(scope in call.principal.scopes for scope in scopes):
        return
    raise HubSpotError(
        403,
        _MISSING_SCOPES,
        "MISSING_SCOPES",
        errors=[
            {
                "message": "One or more of the following scopes are required.",
                "context": {"requiredGranularScopes": list(scopes)},
            }
        ],
    )


def _journal(ctx: Ctx) -> Journal:
    assert ctx.journal is not None
    return ctx.journal


def _app_id(ctx: Ctx, call: Call) -> int:
    return call.principal.app_id if call.principal.app_id is not None else ctx.settings.app_id


def create_subscription(ctx: Ctx, call: Call) -> Reply:
    """Create or update the app's OBJECT subscription to one object type.

    Doc: https://developers.hubspot.com/docs/api-reference/latest/webhooks/webhooks-journal/create-subscription
    """
    require_scopes(call, _SUBS_WRITE)
    body = call.body_dict()
    kind = body.get("subscriptionType", "OBJECT")
    if kind != "OBJECT":
        raise bad_request(f"subscriptionType {kind} is not supported here; use OBJECT.")
    portal_id = body.get("portalId")
    if not isinstance(portal_id, int) or portal_id != ctx.settings.portal_id:
        raise bad_request(
            f"portalId {portal_id!r} is not a portal where this app is installed.",
            context={"portalId": [str(portal_id)]},
        )
    raw_type = str(body.get("objectTypeId") or "")
    otype = resolve_type(raw_type)
    if otype is None or raw_type != otype.type_id:
        raise bad_request(f"Unknown objectTypeId {raw_type!r}; use an id such as 0-1.")
    require_scopes(call, _SUBS_WRITE, f"crm.objects.{otype.name}.read")
    actions = body.get("actions")
    if not isinstance(actions, list) or not actions or not all(a in ACTIONS for a in actions):
        raise bad_request(f"actions must be a non-empty list of {', '.join(ACTIONS)}.")
    properties = body.get("properties") or []
    object_ids = body.get("objectIds") or []
    if not all(isinstance(p, str) for p in properties) or not all(
        isinstance(i, int) for i in object_ids
    ):
        raise bad_request("properties must be strings and objectIds integers.")
    sub, _new = _journal(ctx).upsert_subscription(
        _app_id(ctx, call), portal_id, otype.type_id, actions, properties, object_ids
    )
    return 200, sub.wire()


def list_subscriptions(ctx: Ctx, call: Call) -> Reply:
    """The app's subscriptions.

    Doc: https://developers.hubspot.com/docs/api-reference/latest/webhooks-journal/subscriptions/get-subscriptions
    """
    require_scopes(call, _SUBS_READ)
    return 200, {"results": [s.wire() for s in _journal(ctx).of_app(_app_id(ctx, call))]}


def delete_subscription(ctx: Ctx, call: Call) -> Reply:
    """Delete one of the app's subscriptions (204; 404 when it has none by that id)."""
    require_scopes(call, _SUBS_WRITE)
    raw = call.path("subscriptionId")
    if not raw.isdigit() or not _journal(ctx).delete_subscription(_app_id(ctx, call), int(raw)):
        raise not_found(f"No subscription {raw}.", context={"subscriptionId": [raw]})
    return 204, None


def _entry_reply(ctx: Ctx, call: Call, entry: Entry | None) -> Reply:
    if entry is None:
        return 204, None
    query, expires = _journal(ctx).sign(entry)
    base = str(call.request.base_url).rstrip("/")
    return 200, {
        "currentOffset": entry.offset,
        "url": f"{base}{FILES_PATH}/{entry.offset}?{query}",
        "expiresAt": iso_ms(int(expires * 1000)),
    }


def earliest(ctx: Ctx, call: Call) -> Reply:
    """The oldest entry kept (three days).

    Doc: https://developers.hubspot.com/docs/api-reference/latest/webhooks-journal/journal-entries/guide
    """
    require_scopes(call, _READ)
    return _entry_reply(ctx, call, _journal(ctx).earliest())


def latest(ctx: Ctx, call: Call) -> Reply:
    """The newest entry."""
    require_scopes(call, _READ)
    return _entry_reply(ctx, call, _journal(ctx).latest())


def next_entry(ctx: Ctx, call: Call) -> Reply:
    """The entry after ``offset``; 404 once the offset has expired or never existed.

    Doc: https://developers.hubspot.com/docs/api-reference/latest/webhooks-journal/journal-entries/local/get-journal-local-next
    """
    require_scopes(call, _READ)
    offset = call.path("offset")
    try:
        entry = _journal(ctx).after(offset)
    except JournalExpired:
        raise not_found(
            f"Offset {offset} has expired or doesn't exist.", context={"offset": [offset]}
        ) from None
    return _entry_reply(ctx, call, entry)


def _storage_error(status: int, code: str, message: str) -> Response:
    body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return Response(body, status_code=status, media_type="application/xml")


_STORAGE_ERRORS = {
    "SignatureDoesNotMatch": (
        403,
        "The request signature we calculated does not match the signature you provided.",
    ),
    "AccessDenied": (403, "Request has expired"),
    "NoSuchKey": (404, "The specified key does not exist."),
}


def journal_routes(ctx: Ctx) -> list[Route]:
    """The routes listed in the module docstring."""

    def r(path: str, handler: Any, method: str) -> Route:
        return Route(path, endpoint(ctx, handler), methods=[method])

    async def entry_file(request: Request) -> Response:
        """The pre-signed file: the entry's events; no auth, no rate limit, refused expired."""
        if "authorization" in request.headers:
            return _storage_error(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
                "Signature query string parameter or the Authorization header should be specified",
            )
        q = request.query_params
        found = _journal(ctx).file(
            request.path_params["offset"], q.get("expires", ""), q.get("signature", "")
        )
        if isinstance(found, str):
            status, message = _STORAGE_ERRORS[found]
            return _storage_error(status, found, message)
        return json_response(200, found)

    subs = f"/webhooks-journal/subscriptions/{VERSION}"
    routes = [
        r(subs, create_subscription, "POST"),
        r(subs, list_subscriptions, "GET"),
        r(f"{subs}/{{subscriptionId}}", delete_subscription, "DELETE"),
        Route(f"{FILES_PATH}/{{offset}}", entry_file, methods=["GET"]),
    ]
    for variant in ("journal", "journal-local"):
        base = f"/webhooks-journal/{variant}/{VERSION}"
        routes += [
            r(f"{base}/earliest", earliest, "GET"),
            r(f"{base}/latest", latest, "GET"),
            r(f"{base}/offset/{{offset}}/next", next_entry, "GET"),
        ]
    return routes
