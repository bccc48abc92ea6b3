"""``crm-bridge demo``'s SLA act: one MQL is accepted, never touched, and the chain plays out.

:func:`run_sla_demo` drives the real engine against running emulators through the caller's
connectors and store.  Time is moved, never waited for: both emulator clocks are frozen and
advanced together (plus the connectors' fake clock, if given), so the whole story -- reminder,
escalation, reassignment past a rep on time off, recycle to nurture -- takes about a second.

Webhooks go to an in-process transport (nothing leaves the machine); their payloads are shown.
Emulators are imported only for type checking: this module is for the demo, never the engine.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from crm_bridge.connector import Connector, Upsert
from crm_bridge.sla.engine import SlaEngine, SlaReport
from crm_bridge.sla.policy import SlaSettings
from crm_bridge.sla.report import explain_lines
from crm_bridge.store import Store

if TYPE_CHECKING:
    from crm_bridge.connectors.hubspot.emulator.emulator import RunningHubSpot
    from crm_bridge.connectors.salesforce.emulator import RunningSalesforce
    from crm_bridge.http import FakeClock

__all__ = ["demo_settings", "run_sla_demo"]

DEMO_REPS = {
    "ann": "ann.sla@demo.example",
    "bob": "bob.sla@demo.example",
    "cat": "cat.sla@demo.example",
}
NURTURE = "nurture.sla@demo.example"
HOOK = "https://hooks.demo.invalid/sla"


def demo_settings(crm: str, marketing: str, *, bob_off: str, pair: str = "demo") -> SlaSettings:
    """The demo policy: accept 4 h / first touch 8 h, remind at 75%, escalate, reassign, recycle."""
    return SlaSettings.model_validate(
        {
            "crm": {
                "connector": crm,
                "object": "Lead",
                "owner_field": "OwnerId",
                "status_field": "Status",
                "accepted_statuses": ["Accepted"],
                "rejected_statuses": ["Rejected"],
                "created_field": "CreatedDate",
                "source_field": "LeadSource",
                "reassign_status": "Open - Not Contacted",
            },
            "marketing": {
                "connector": marketing,
                "object": "contacts",
                "link_pair": pair,
                "link_object": "sla_demo_lead",
                "lifecycle_field": "lifecyclestage",
                "score_field": "hubspotscore",
                "source_field": "hs_analytics_source",
                "mql_date_field": "hs_lifecyclestage_marketingqualifiedlead_date",
            },
            "calendars": {"inside": {"timezone": "UTC", "holiday_country": None}},
            "reps": {
                "ann": {"email": DEMO_REPS["ann"], "slack": "UANN"},
                "bob": {
                    "email": DEMO_REPS["bob"],
                    "time_off": [{"start": bob_off, "end": bob_off}],
                },
                "cat": {"email": DEMO_REPS["cat"], "cap": 10},
            },
            "teams": {
                "inside": {
                    "calendar": "inside",
                    "members": ["ann", "bob", "cat"],
                    "manager_email": "maria.sla@demo.example",
                    "manager_slack": "UMARIA",
                }
            },
            "policies": {
                "inbound": {
                    "teams": ["inside"],
                    "mql": {"lifecycle_stages": ["marketingqualifiedlead"], "min_score": 50},
                    "accept": {"target_hours": 4},
                    "first_touch": {"target_hours": 8},
                    "remind": {"task": True, "webhook": "reps"},
                    "escalate_webhooks": ["managers"],
                    "breach": [
                        {"action": "escalate", "after_hours": 0},
                        {"action": "reassign", "after_hours": 1},
                        {"action": "recycle", "after_hours": 2},
                    ],
                }
            },
            "webhooks": {
                "managers": {"url": f"{HOOK}/slack", "format": "slack"},
                "reps": {"url": f"{HOOK}/json", "format": "json"},
            },
            "recycle": {
                "crm_status": "Recycled",
                "owner_email": NURTURE,
                "marketing_lifecycle": "lead",
                "nurture_list": "SLA nurture (demo)",
            },
        }
    )


def _next_monday_9(after: datetime) -> datetime:
    day = after.astimezone(UTC).date() + timedelta(days=1)
    while day.weekday() != 0:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 9, 0, tzinfo=UTC)


def run_sla_demo(
    salesforce: RunningSalesforce,
    hubspot: RunningHubSpot,
    *,
    crm: Connector[Any],
    marketing: Connector[Any],
    store: Store,
    clock: FakeClock | None = None,
) -> list[str]:
    """Play one SLA breach end to end and return printable lines.

    ``crm`` / ``marketing`` are connectors to the two emulators (their ``name`` is used in the
    demo config); ``clock`` is the connectors' FakeClock if they have one (moved in step).
    Emulator clocks are frozen and only moved forward (to the next Monday 09:00 UTC first).
    """
    lines: list[str] = []
    emulators = (salesforce.emulator.clock, hubspot.emulator.clock)
    start = _next_monday_9(max(c.now() for c in emulators))
    for c in emulators:
        c.freeze(c.now())

    def now() -> datetime:
        return salesforce.emulator.clock.now()

    def advance_to(when: datetime) -> None:
        delta = (when - now()).total_seconds()
        if delta <= 0:
            return
        for c in emulators:
            c.advance(delta)
        if clock is not None:
            clock.advance(delta)

    advance_to(start)
    posts: list[tuple[str, Any]] = []

    def hook(request: httpx.Request) -> httpx.Response:
        posts.append((request.url.path, json.loads(request.content)))
        return httpx.Response(200)

    http = httpx.Client(transport=httpx.MockTransport(hook))
    admin = salesforce.simple_salesforce()
    try:
        users = _ensure_users(admin)
        settings = demo_settings(
            crm.name, marketing.name, bob_off=(start + timedelta(days=1)).date().isoformat()
        )
        engine = SlaEngine(settings, crm=crm, marketing=marketing, store=store, now=now, http=http)
        lead_id, contact_id = _new_mql(admin, marketing, store, users["ann"], now(), settings)
        admin.session.close()  # its token would expire during the time jumps below
        lines.append(
            f"[sla] {start:%a %H:%M} MQL contact {contact_id} -> Salesforce lead {lead_id}, "
            "assigned to ann (accept 4 h, first touch 8 h, business hours 09-17 UTC)"
        )

        def step(label: str, when: datetime, act: Callable[[], None] | None = None) -> SlaReport:
            advance_to(when)
            if act is not None:
                act()
            before = len(posts)
            report = engine.run_cycle()
            calls = " ".join(f"{n}:{sum(c.values())}" for n, c in report.calls.items())
            done = ", ".join(f"{k}={v}" for k, v in sorted(report.counts.items())) or "nothing due"
            lines.append(f"[sla] {when:%a %H:%M} {label}: {done} (calls {calls or 'none'})")
            for path, body in posts[before:]:
                lines.append(f"        webhook {path}: {_hook_text(body)}")
            return report

        rep_sf = salesforce.simple_salesforce(username=DEMO_REPS["ann"])
        try:
            step("cycle", start)
            step(
                "ann accepts",
                start + timedelta(minutes=20),
                lambda: rep_sf.Lead.update(lead_id, {"Status": "Accepted"}),
            )
        finally:
            rep_sf.session.close()
        step("no call logged yet, 75% of first touch", start + timedelta(hours=6))
        step("first-touch deadline", start + timedelta(hours=8))
        step("next morning (bob is on time off)", start + timedelta(days=1, hours=1))
        owner = _lead(crm, lead_id)["OwnerId"]
        lines.append(f"        lead owner is now {_who(users, owner)}")
        step("cat lets it slide too", start + timedelta(days=2, hours=3))
        lead = _lead(crm, lead_id)
        lines.append(
            f"        lead status {lead['Status']!r}, owner {_who(users, lead['OwnerId'])}; "
            f"marketing lifecycle {_lifecycle(marketing, contact_id)!r}"
        )
        lines.append(f"[sla] crm-bridge sla explain {lead_id}:")
        lines.extend(f"        {line}" for line in explain_lines(settings, store, lead_id, now()))
        engine.close()
    finally:
        admin.session.close()
        http.close()
    return lines


def _ensure_users(admin: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    wanted = {**DEMO_REPS, "nurture": NURTURE}
    emails = ", ".join(f"'{e}'" for e in wanted.values())
    for row in admin.query(f"SELECT Id, Email FROM User WHERE Email IN ({emails})")["records"]:
        for key, email in wanted.items():
            if str(row["Email"]).lower() == email:
                found[key] = row["Id"]
    for key, email in wanted.items():
        if key not in found:
            created = admin.User.create(
                {"Username": email, "Email": email, "LastName": key.capitalize()}
            )
            found[key] = created["id"]
    return found


def _new_mql(
    admin: Any,
    marketing: Connector[Any],
    store: Store,
    owner: str,
    now: datetime,
    settings: SlaSettings,
) -> tuple[str, str]:
    stamp = int(now.timestamp())
    email = f"dana.{stamp}@prospect.example"
    [created] = marketing.write(
        "contacts",
        [
            Upsert(
                key="demo",
                fields={
                    "email": email,
                    "firstname": "Dana",
                    "lastname": "Demo",
                    "lifecyclestage": "marketingqualifiedlead",
                    "hubspotscore": "72",
                    "hs_analytics_source": "ORGANIC_SEARCH",
                    "hs_lifecyclestage_marketingqualifiedlead_date": (
                        now - timedelta(minutes=6)
                    ).isoformat(),
                },
            )
        ],
    )
    if not created.ok or not created.id:
        raise RuntimeError(f"demo contact not created: {created.error}")
    lead = admin.Lead.create(
        {
            "FirstName": "Dana",
            "LastName": "Demo",
            "Company": "Demo GmbH",
            "Email": email,
            "OwnerId": owner,
            "LeadSource": "Web",
        }
    )
    assert settings.marketing is not None
    with store.transaction() as tx:
        tx.insert_link(
            settings.marketing.link_pair,
            settings.marketing.link_object,
            crm_id=lead["id"],
            map_id=created.id,
            crm_version=None,
            map_version=None,
            now=now,
        )
    return str(lead["id"]), created.id


def _lead(crm: Connector[Any], lead_id: str) -> dict[str, Any]:
    """Read through the connector: it renews its own token, unlike a one-off client."""
    for record in crm.fetch("Lead", [lead_id]):
        return dict(record.fields)
    raise RuntimeError(f"demo lead {lead_id} vanished")


def _who(users: dict[str, str], owner_id: str) -> str:
    for key, uid in users.items():
        if uid == owner_id:
            return key
    return owner_id


def _lifecycle(marketing: Connector[Any], contact_id: str) -> str:
    for record in marketing.fetch("contacts", [contact_id]):
        return str(record.fields.get("lifecyclestage"))
    return "?"


def _hook_text(body: Any) -> str:
    if isinstance(body, dict) and "blocks" in body:
        return str(body["blocks"][0]["text"]["text"])
    if isinstance(body, dict) and body.get("events"):
        first = body["events"][0]
        return f"{first.get('type')} {first.get('text')}"
    return json.dumps(body)[:120]
