"""HubSpot's webhooks journal as a push channel: subscriptions, entries after an offset, hints.

Why the journal and not webhooks: webhooks need a public HTTPS endpoint, and a self-hosted daemon
behind a firewall has none.  The journal is pulled: ``GET .../offset/{offset}/next`` names the
entry after the one we handled, with a pre-signed URL of its file of events; we keep the offset
as the feed's position (stored by the engine after the cycle that handled its hints).

What a poll costs (counted in ``calls``): an idle check is one ``journal`` call, made at most every
``journal_poll_seconds``; each entry costs one more ``journal`` call plus one ``journal_files``
download (not an API call: storage, outside the rate limits).  One entry holds every event of
one write call, so a batch of 100 records is one entry.  The app token (client credentials)
costs one ``auth`` call per 30 minutes, the subscriptions two calls or more once per open.

Events become :class:`~crm_bridge.connector.ChangeHint` s: create / update / restore an
``upsert``, delete a ``delete``, merge a ``merge`` for the survivor and for every merged id.  An
event whose ``sourceId`` is the app crm-bridge writes as (``own_source_ids``) is ``ours``.
Entries repeat (a delivery retried) and events come in any order, so event ids already seen are
dropped and each batch is sorted by time.  An offset the journal no longer has (404: older than
three days) is never raised: the batch says ``lost`` and resumes from the newest entry.  So does
a backlog of more than ``journal_max_entries`` entries (a bulk edit in the UI, a daemon back
after a pause): the engine's full cycle reads those changes by the page, cheaper than two calls
an entry.

Doc: https://developers.hubspot.com/docs/api-reference/latest/webhooks-journal/guide
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr

from crm_bridge.connector import ChangeFeed, ChangeHint, FeedBatch, HintKind
from crm_bridge.connectors.hubspot.client import HubSpotClient, Response
from crm_bridge.connectors.hubspot.errors import describe_hubspot_httpx
from crm_bridge.connectors.hubspot.settings import HubSpotSettings
from crm_bridge.errors import ConfigError, ConfigProblem
from crm_bridge.http.clock import Clock
from crm_bridge.http.oauth import OAuthTokenProvider
from crm_bridge.http.ratelimit import RollingWindowLimiter

__all__ = [
    "ACTIONS",
    "OBJECT_TYPE_IDS",
    "START",
    "HubSpotAppTokenProvider",
    "HubSpotJournalFeed",
]

VERSION = "2026-03"
OBJECT_TYPE_IDS = {"contacts": "0-1", "companies": "0-2", "deals": "0-3"}
ACTIONS = ("CREATE", "UPDATE", "DELETE", "MERGE", "RESTORE")
START = "start"
"""The position of an empty journal: read from its earliest entry once there is one."""

_KINDS: dict[str, HintKind] = {
    "CREATE": "upsert",
    "UPDATE": "upsert",
    "RESTORE": "upsert",
    "DELETE": "delete",
    "MERGE": "merge",
}
_SCOPES = (
    "developer.webhooks_journal.read",
    "developer.webhooks_journal.subscriptions.read",
    "developer.webhooks_journal.subscriptions.write",
)
_SEEN_MAX = 50_000


class HubSpotAppTokenProvider(OAuthTokenProvider):
    """An app's own token (the ``client_credentials`` grant) with the journal's scopes.

    Why not the install's token: the journal belongs to the app, and HubSpot authorises it with
    a client-credentials token only.  It has no refresh token; a new one is asked for at 90 % of
    ``expires_in``.
    """

    vendor = "HubSpot"

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: SecretStr,
        scopes: Sequence[str],
        token_url: str,
        http: httpx.Client,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(
            token_url=token_url,
            client_id=client_id,
            client_secret=client_secret,
            refresh_token=None,
            http=http,
            clock=clock,
            refresh_at=0.9,
            on_rotate=None,
            describe=describe_hubspot_httpx,
        )
        self.scopes = tuple(scopes)

    def _form(self) -> dict[str, str]:
        assert self._client_secret is not None
        return {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret.get_secret_value(),
            "scope": " ".join(self.scopes),
        }

    def _lifetime(self, payload: dict[str, Any]) -> float:
        expires_in = payload.get("expires_in")
        if isinstance(expires_in, int | float) and expires_in > 0:
            return float(expires_in)
        return 1800.0

    def __repr__(self) -> str:
        return f"HubSpotAppTokenProvider(client_id={self.client_id!r}, scopes={self.scopes!r})"


class HubSpotJournalFeed(ChangeFeed):
    """The journal of one portal for some objects, read as batches of hints."""

    def __init__(
        self, client: HubSpotClient, settings: HubSpotSettings, objects: Sequence[str]
    ) -> None:
        problems = [
            ConfigProblem(
                key=name,
                problem="the HubSpot webhooks journal needs it",
                fix="see docs/connectors/hubspot.md, 'Push: the webhooks journal'",
            )
            for name in settings.journal_missing()
        ] + [
            ConfigProblem(key="objects", problem=f"the HubSpot journal serves no object {o!r}")
            for o in objects
            if o not in OBJECT_TYPE_IDS
        ]
        if problems:
            raise ConfigError(problems, heading="the HubSpot webhooks journal is not set up")
        self.client = client
        self.settings = settings
        self.objects = tuple(objects)
        self._by_type = {OBJECT_TYPE_IDS[o]: o for o in self.objects}
        client_id = settings.journal_client_id or settings.client_id
        secret = settings.journal_client_secret or settings.client_secret
        assert client_id is not None and secret is not None
        self.tokens = HubSpotAppTokenProvider(
            client_id=client_id,
            client_secret=secret,
            scopes=(*_SCOPES, *(f"crm.objects.{o}.read" for o in self.objects)),
            token_url=settings.resolved_token_url,
            http=client.http,
            clock=client.clock,
        )
        # The journal app's own budget: HubSpot's burst limit is per app, and this is another app.
        self.limiter = RollingWindowLimiter(
            settings.burst_limit,
            settings.burst_window_seconds,
            client.clock,
            name="hubspot journal burst",
        )
        self._base = f"{settings.host.rstrip('/')}/webhooks-journal"
        self._subscribed = False
        self._last_idle: float | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()

    # -- the contract ----------------------------------------------------------------------------

    def poll(self, position: str | None, *, timeout: float) -> FeedBatch:
        """Hints after ``position`` (``None``: from now on); see the module docstring.

        While the journal has had nothing new for less than ``journal_poll_seconds``, a poll
        waits (up to ``timeout``) instead of asking again, so an idle channel costs one call per
        interval however often the daemon polls it.
        """
        self._ensure_subscriptions()
        if position is None:
            return FeedBatch(position=self._newest())
        if self._last_idle is not None:
            due = self._last_idle + self.settings.journal_poll_seconds
            wait = due - self.client.clock.monotonic()
            if wait > 0:
                self.client.clock.sleep(min(wait, timeout))
                if self.client.clock.monotonic() < due:
                    return FeedBatch(position=position)
        return self._read_after(position)

    # -- reading ---------------------------------------------------------------------------------

    def _read_after(self, position: str) -> FeedBatch:
        hints: list[ChangeHint] = []
        current = position
        for _ in range(self.settings.journal_max_entries):
            answer = self._entry_after(current)
            if answer.status == 404:
                return FeedBatch(tuple(self._ordered(hints)), position=self._newest(), lost=True)
            if answer.status == 204 or not isinstance(answer.body, dict):
                self._last_idle = self.client.clock.monotonic()
                break
            events = self._events(current, answer.body)
            if events is None:  # the entry vanished between its metadata and its file
                return FeedBatch(tuple(self._ordered(hints)), position=self._newest(), lost=True)
            hints.extend(self._hints(events))
            current = str(answer.body["currentOffset"])
        else:
            # A backlog: reading on costs two calls an entry, while the full cycle a lost feed
            # asks for reads the same changes 200 to a search page.  Skip to the newest entry.
            newest = self._newest()
            if newest != current:
                return FeedBatch(tuple(self._ordered(hints)), position=newest, lost=True)
        return FeedBatch(tuple(self._ordered(hints)), position=current)

    def _entry_after(self, position: str) -> Response:
        path = "earliest" if position == START else f"offset/{position}/next"
        return self._api("GET", f"journal/{VERSION}/{path}", accept=(404,))

    def _events(self, position: str, meta: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The entry's events from its pre-signed file (asked for again once if it expired)."""
        for attempt in range(2):
            got = self.client.send_http(
                "journal_files",
                "GET",
                str(meta["url"]),
                tokens=None,
                idempotent=True,
                accept=(403, 404),
                paced=False,
            )
            if got.status == 200:
                return _event_list(got.body)
            if got.status == 404 or attempt == 1:
                return None
            again = self._entry_after(position)  # a fresh URL for the same entry
            if again.status != 200 or not isinstance(again.body, dict):
                return None
            meta = again.body
        return None

    def _newest(self) -> str:
        """The newest entry's offset, or :data:`START` while the journal is empty."""
        answer = self._api("GET", f"journal/{VERSION}/latest")
        self._last_idle = self.client.clock.monotonic()
        if answer.status == 200 and isinstance(answer.body, dict):
            return str(answer.body["currentOffset"])
        return START

    def _hints(self, events: Iterable[dict[str, Any]]) -> list[ChangeHint]:
        own = self.settings.own_source_ids
        out: list[ChangeHint] = []
        for event in events:
            obj = self._by_type.get(str(event.get("objectTypeId", "")))
            kind = _KINDS.get(str(event.get("action") or event.get("changeType") or ""))
            if obj is None or kind is None or "objectId" not in event:
                continue
            event_id = str(event.get("eventId", ""))
            if event_id:
                if event_id in self._seen:
                    continue
                self._seen[event_id] = None
                while len(self._seen) > _SEEN_MAX:
                    self._seen.popitem(last=False)
            at = datetime.fromtimestamp(int(event.get("occurredAt") or 0) / 1000, tz=UTC)
            ours = (
                str(event.get("changeSource", "")) != "CRM_UI"
                and str(event.get("sourceId", "")) in own
            )
            ids = [str(event.get("primaryObjectId") or event["objectId"])]
            if kind == "merge":
                ids += [str(i) for i in event.get("mergedObjectIds") or []]
            for n, record_id in enumerate(ids):
                out.append(
                    ChangeHint(
                        obj,
                        record_id,
                        at,
                        kind=kind,
                        ours=ours,
                        event_id=event_id if n == 0 or not event_id else f"{event_id}:{record_id}",
                    )
                )
        return out

    @staticmethod
    def _ordered(hints: list[ChangeHint]) -> list[ChangeHint]:
        """Oldest first: entries may hold their events in any order."""

        def key(hint: ChangeHint) -> tuple[datetime, int, str]:
            head = hint.event_id.split(":", 1)[0]
            return (hint.occurred_at, int(head) if head.isdigit() else 0, hint.event_id)

        return sorted(hints, key=key)

    # -- subscriptions ---------------------------------------------------------------------------

    def _ensure_subscriptions(self) -> None:
        """One OBJECT subscription per object with every action we hint on; made once per open.

        Only missing or narrower ones are written: a restarted daemon reads the list (one
        call) and writes nothing.
        """
        if self._subscribed:
            return
        listed = self._api("GET", f"subscriptions/{VERSION}")
        have = {
            str(s.get("objectTypeId")): s
            for s in (listed.body or {}).get("results", [])
            if isinstance(s, dict) and s.get("subscriptionType", "OBJECT") == "OBJECT"
        }
        for type_id in self._by_type:
            current = have.get(type_id)
            if (
                current is not None
                and set(ACTIONS) <= set(current.get("actions") or [])
                and not current.get("properties")
                and not current.get("objectIds")
            ):
                continue
            self._api(
                "POST",
                f"subscriptions/{VERSION}",
                body={
                    "subscriptionType": "OBJECT",
                    "portalId": self.settings.portal_id,
                    "objectTypeId": type_id,
                    "actions": list(ACTIONS),
                    "properties": [],
                    "objectIds": [],
                },
                idempotent=True,  # create-or-update: sending it twice changes nothing
            )
        self._subscribed = True

    def _api(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        accept: Sequence[int] = (),
        idempotent: bool = True,
    ) -> Response:
        return self.client.send_http(
            "journal",
            method,
            f"{self._base}/{path}",
            tokens=self.tokens,
            idempotent=idempotent,
            json_body=body,
            accept=accept,
            limiter=self.limiter,
        )

    def close(self) -> None:
        """Nothing to release: the journal is plain requests over the connector's client."""
        return None


def _event_list(body: Any) -> list[dict[str, Any]]:
    """The events of an entry file: a JSON array, or an object holding one."""
    if isinstance(body, dict):
        body = body.get("events") or body.get("results") or []
    return [e for e in body if isinstance(e, dict)] if isinstance(body, list) else []
