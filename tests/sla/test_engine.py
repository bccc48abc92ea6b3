"""The SLA engine on both emulators, through the real clients, with time moved by hand."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from crm_bridge.connector import NewTask

from .conftest import JSON_URL, SLACK_URL, T0, SlaWorld


def kinds(world: SlaWorld, lead_id: str) -> list[str]:
    return [kind for kind, _ in world.audit(lead_id)]


def test_accept_and_touch_in_time_take_no_action(world: SlaWorld) -> None:
    lead, _ = world.new_lead("Early")
    report = world.cycle()
    assert report.counts["opened"] == 1

    world.advance_to(T0 + timedelta(hours=2))
    world.as_rep("ann").Lead.update(lead, {"Status": "Accepted"})
    world.advance_to(T0 + timedelta(hours=3))
    world.as_rep("ann").Task.create({"WhoId": lead, "Subject": "Intro call", "TaskSubtype": "Call"})
    report = world.cycle()
    assert report.counts["accepted"] == 1
    assert report.counts["first_touch"] == 1

    # Days later nothing is due: both clocks stopped in time.
    world.advance_to(T0 + timedelta(days=3))
    report = world.cycle()
    assert report.open_clocks == 0
    assert world.posts == []
    assert kinds(world, lead) == ["sla.assigned", "sla.accepted", "sla.first_touch"]
    _, accepted = world.audit(lead)[1]
    assert accepted["elapsed_business_minutes"] == 120
    assert accepted["target_business_minutes"] == 240
    _, touched = world.audit(lead)[2]
    assert touched["elapsed_business_minutes"] == 180
    assert touched["kind"] == "call"


def test_late_first_touch_reminds_escalates_reassigns_then_recycles(world: SlaWorld) -> None:
    lead, contact = world.new_lead("Slow")
    world.cycle()
    world.advance_to(T0 + timedelta(minutes=30))
    world.as_rep("ann").Lead.update(lead, {"Status": "Accepted"})
    assert world.cycle().counts["accepted"] == 1

    # 6 business hours = 75% of the 8 h first-touch target: a reminder (CRM task + webhook).
    world.advance_to(T0 + timedelta(hours=6))
    report = world.cycle()
    assert report.counts["remind"] == 1
    [task] = world.tasks(lead)
    assert task["OwnerId"] == world.users["ann"]
    assert "first touch" in task["Subject"]
    [(url, body)] = world.posts
    assert url == JSON_URL
    assert body["events"][0]["type"] == "sla.reminder"
    assert body["events"][0]["elapsed_business_minutes"] == 360

    # 17:00 = 8 business hours: breached, escalated to the manager (Slack + generic JSON).
    world.advance_to(T0 + timedelta(hours=8))
    report = world.cycle()
    assert report.counts["escalate"] == 1
    assert report.breached == 1
    slack = [b for u, b in world.posts if u == SLACK_URL]
    assert len(slack) == 1 and "<@UMARIA>" in slack[0]["blocks"][0]["text"]["text"]
    assert len([u for u, _ in world.posts if u == JSON_URL]) == 2

    # Overnight is not business time: Tuesday 09:59 is still 8 h 59 min, nothing new.
    world.advance_to(T0 + timedelta(days=1, minutes=59))
    assert world.cycle().counts == {}

    # Tuesday 10:00 = target + 1 h: reassigned.  Ann owned it, Bob is on time off -> Cat.
    world.advance_to(T0 + timedelta(days=1, hours=1))
    report = world.cycle()
    assert report.counts["reassign"] == 1
    sf_lead = world.lead(lead)
    assert sf_lead["OwnerId"] == world.users["cat"]
    assert sf_lead["Status"] == "Open - Not Contacted"  # the new owner must accept again
    [(_, reassigned)] = [(k, d) for k, d in world.audit(lead) if k == "sla.reassign"]
    assert reassigned["new_rep"] == "cat"
    assert reassigned["candidates_skipped"]["bob"].startswith("off")
    assert reassigned["candidates_skipped"]["ann"] == "previous owner of this lead"
    assert reassigned["elapsed_business_minutes"] == 540

    # Cat lets it slide too.  Wednesday 12:00 = 10 business hours on Cat's clock: the second
    # reassignment is over max_reassignments (skipped), and the chain recycles the lead.
    world.advance_to(T0 + timedelta(days=2, hours=3))
    report = world.cycle()
    assert report.counts["reassign_skipped"] == 2  # one per breached clock (accept, first touch)
    assert report.counts["recycle"] == 1  # but one recycle for the assignment
    sf_lead = world.lead(lead)
    assert sf_lead["Status"] == "Recycled"
    assert sf_lead["OwnerId"] == world.users["nurture"]
    marketing = world.contact(contact)
    assert marketing["lifecyclestage"] == "lead"
    assert marketing["hs_lead_status"] == "OPEN"
    [(_, recycled)] = [(k, d) for k, d in world.audit(lead) if k == "sla.recycle"]
    assert recycled["reason"] == "SLA breach"
    assert recycled["policy"] == "inbound"
    assert recycled["calendar"] == "inside"

    # Nothing is open any more; later cycles do nothing.
    world.advance_to(T0 + timedelta(days=5))
    posts = len(world.posts)
    report = world.cycle()
    assert report.open_clocks == 0
    assert len(world.posts) == posts


def test_reject_with_reason_recycles(world: SlaWorld) -> None:
    lead, contact = world.new_lead("Nobudget")
    world.cycle()
    world.advance_to(T0 + timedelta(hours=1))
    world.as_rep("ann").Lead.update(
        lead, {"Status": "Rejected", "Rejection_Reason__c": "no_budget"}
    )
    report = world.cycle()
    assert report.counts["rejected"] == 1
    assert report.counts["recycle"] == 1
    assert world.lead(lead)["Status"] == "Recycled"
    assert world.contact(contact)["lifecyclestage"] == "lead"
    assert kinds(world, lead) == ["sla.assigned", "sla.rejected", "sla.recycle"]
    _, recycled = world.audit(lead)[2]
    assert recycled["reason"] == "rejected: no_budget"
    nurture = world.marketing.ensure_list("SLA nurture", "contacts")
    assert contact in set(world.marketing.list_members(nurture))
    _, rejected = world.audit(lead)[1]
    assert rejected["reason"] == "no_budget"
    assert rejected["elapsed_business_minutes"] == 60


def test_reject_as_spam_disqualifies(world: SlaWorld) -> None:
    lead, contact = world.new_lead("Spammy")
    world.cycle()
    world.as_rep("ann").Lead.update(lead, {"Status": "Rejected", "Rejection_Reason__c": "spam"})
    report = world.cycle()
    assert report.counts["disqualify"] == 1
    assert world.lead(lead)["Status"] == "Closed - Not Converted"
    assert world.contact(contact)["lifecyclestage"] == "other"


def test_leads_that_are_not_mql_never_get_a_clock(world: SlaWorld) -> None:
    world.new_lead("Lowscore", score=10)
    world.new_lead("Subscriber", lifecycle="subscriber")
    world.new_lead("Offline", source="OFFLINE")
    report = world.cycle()
    assert report.counts["opened"] == 0
    assert report.counts["not_mql"] == 3


def test_rerunning_a_cycle_repeats_no_action(world: SlaWorld) -> None:
    lead, _ = world.new_lead("Twice")
    world.cycle()
    world.advance_to(T0 + timedelta(days=1, hours=1))  # escalations and reassignment due
    first = world.cycle()
    assert first.counts["escalate"] == 2  # accept and first touch both breached
    assert "remind" not in first.counts  # past the deadline a reminder is noise
    assert first.counts["reassign"] == 1
    audit = world.audit(lead)
    posts = len(world.posts)
    tasks = len(world.tasks(lead))
    stamp = world.lead(lead)["SystemModstamp"]

    again = world.cycle()
    assert again.counts.get("remind", 0) == 0
    assert again.counts.get("escalate", 0) == 0
    assert again.counts.get("reassign", 0) == 0
    assert len(world.posts) == posts
    assert len(world.tasks(lead)) == tasks
    # Only reads: the change poll (query) and the touch lookup (Task + Event in Composite calls).
    assert again.calls.get("salesforce", {}).get("composite", 0) <= 2
    assert again.calls.get("hubspot", {}) == {}
    assert world.lead(lead)["SystemModstamp"] == stamp
    assert world.audit(lead) == audit

    # A fresh engine (e.g. after a restart) on the same store agrees.
    world.engine = world.new_engine()
    assert world.cycle().counts.get("reassign", 0) == 0
    assert len(world.posts) == posts


def test_failed_webhook_keeps_the_step_due(world: SlaWorld) -> None:
    world.new_lead("Retry")
    world.cycle()
    world.advance_to(T0 + timedelta(hours=3))  # accept reminder (75% of 4 h)
    world.hook_status = 500
    report = world.cycle()
    assert report.counts["remind_failed"] == 1
    assert any("answered HTTP 500" in e for e in report.errors)
    assert all("secret" not in e for e in report.errors)
    world.hook_status = 200
    report = world.cycle()
    assert report.counts["remind"] == 1


def test_reminders_go_out_as_one_task_batch_and_a_refused_task_stays_due(
    world: SlaWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    leads = [world.new_lead(name)[0] for name in ("Una", "Dos", "Tres")]
    world.cycle()
    world.advance_to(T0 + timedelta(hours=3))  # accept reminders (75% of 4 h) for all three
    real = world.crm.create_tasks
    batches: list[list[str]] = []

    def refuse_dos(obj: str, tasks: Sequence[NewTask]) -> list[str | None]:
        batches.append([t["record_id"] for t in tasks])
        created = iter(real(obj, [t for t in tasks if t["record_id"] != leads[1]]))
        return [None if t["record_id"] == leads[1] else next(created) for t in tasks]

    def one_by_one(*args: object, **kwargs: object) -> str:
        raise AssertionError("reminders must not cost one call per task")

    with monkeypatch.context() as patch:
        patch.setattr(world.crm, "create_tasks", refuse_dos)
        patch.setattr(world.crm, "create_task", one_by_one)
        report = world.cycle()
    assert len(batches) == 1 and sorted(batches[0]) == sorted(leads)
    assert report.counts["remind"] == 2
    assert report.counts["remind_failed"] == 1
    assert [len(world.tasks(lead)) for lead in leads] == [1, 0, 1]
    # The refused reminder stayed due: the next cycle creates it, and only it.
    report = world.cycle()
    assert report.counts["remind"] == 1
    assert [len(world.tasks(lead)) for lead in leads] == [1, 1, 1]
