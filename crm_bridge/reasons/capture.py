"""Reason capture: read closed deals and rejected leads, validate, nag, push to marketing, expire.

One :meth:`ReasonCapture.run_cycle` does, for every source (CRM opportunities, CRM leads and --
when ``capture_deals`` is on -- marketing deals):

1. **Read incrementally** with the capture's own cursors (``cursors`` table, pair ``reasons``),
   so it never disturbs the sync's cursors and can run in the same daemon cycle.
2. **Validate** each closed / rejected record: a missing reason, an unknown code, a code of the
   wrong category, a reason that ``requires_note`` without a note, or a deprecated code (mapped to
   its replacement).  Every problem is **counted** and **flagged back to the rep** as a task in
   the system the record lives in -- once per problem, not once per cycle.
3. **Push** valid (and mapped deprecated) reasons to every person involved: the CRM contact roles,
   the marketing deal's associated contacts, or the lead itself.  They get the
   ``last_*_reason`` / ``last_*_date`` properties and membership in the reason's static list, in
   batches through the same rate-limited connectors; a rejected write becomes a dead letter.
   Invalid outcomes are not pushed: a wrong reason on a re-targeting list costs more than none.
4. **Expire** list memberships older than ``list_expiry_days``.

A first run on an existing org must not nag reps about years of history, nor push to people the
sync has not linked yet, hence:

* ``since`` -- outcomes closed before it are skipped (counted ``before_since``, not stored).  The
  CLI and the daemon default it to the time ``crm-bridge reasons install`` recorded (see
  :func:`~crm_bridge.reasons.repository.installed_at`); a close *date* (no time) counts as closed
  on that whole day, so a deal closed on the install day is kept.  A rejected lead has no close
  date: its close time is its last modification, so a historic rejection edited after the
  install is captured.
* ``plan`` -- a dry run: reads and evaluates like a cycle, reports what would be flagged and
  pushed, and writes nothing (no task, no property, no list, no outcome, no cursor).
* pushes go **only to people the sync has linked** (the pair :func:`person_links` finds), by
  marketing id.  An unlinked person is counted ``not_linked`` and left alone: an upsert by
  e-mail created marketing records holding only an e-mail, which the next sync dead-lettered
  (``REQUIRED_FIELD_MISSING``).  An outcome that reached nobody is not marked pushed, so it is
  pushed when the record next changes.

Why the outcome row stores ``version``, ``flagged_status`` and ``pushed_code``: the change stream
is at-least-once (cursors are inclusive, records change for unrelated reasons), so a re-read must
neither raise a second task for the same problem nor push the same reason twice.  Outcomes and the
cursor of a batch commit in one transaction, after the remote writes (docs/store.md).
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from crm_bridge.connector import Capability, Connector, Record, Upsert
from crm_bridge.reasons.repository import (
    CURSOR_PAIR,
    OutcomeRow,
    ReasonRepository,
    installed_at,
)
from crm_bridge.reasons.taxonomy import (
    CATEGORY_LABELS,
    DEAL_CATEGORIES,
    LEAD_CATEGORIES,
    ReasonsSettings,
    SegmentSpec,
)
from crm_bridge.store import Store

if TYPE_CHECKING:
    from crm_bridge.sync.mapping import PairSettings

__all__ = ["CaptureReport", "Evaluation", "ReasonCapture", "evaluate", "segment_value"]

log = logging.getLogger(__name__)

Status = Literal["valid", "deprecated", "missing", "unknown", "wrong_category", "note_missing"]
NONE = "(none)"
DEAD_LETTER_PAIR = "reasons"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class CaptureReport:
    """What one cycle did; ``counts`` keys are listed in docs/reasons.md."""

    counts: Counter[str] = field(default_factory=Counter)
    flagged: list[str] = field(default_factory=list)
    pushes: list[str] = field(default_factory=list)  # filled by a plan: what would be pushed

    def summary(self) -> str:
        """``seen=3 valid=2 missing=1 ...`` for the terminal."""
        return " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()) if v) or "no changes"


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The verdict on one closed record's reason."""

    status: Status
    raw_code: str | None
    code: str | None
    has_note: bool

    @property
    def pushable(self) -> bool:
        """Valid, or deprecated and mapped to its replacement."""
        return self.status in ("valid", "deprecated") and self.code is not None


def evaluate(
    settings: ReasonsSettings, outcome: str, raw: Any, note: Any, allowed: frozenset[str]
) -> Evaluation:
    """Judge ``raw`` (the stored code) for a record whose outcome is ``outcome``.

    ``allowed`` are the categories the record's kind accepts (won/lost for deals, the two lead
    categories for leads); a won deal additionally needs a ``won`` code and a lost one a ``lost``
    code.
    """
    text = str(raw).strip() if raw is not None else ""
    has_note = bool(str(note).strip()) if note is not None else False
    if not text:
        return Evaluation("missing", None, None, has_note)
    resolved = settings.resolve(text)
    if resolved is None:
        return Evaluation("unknown", text, None, has_note)
    code, deprecated = resolved
    category = settings.codes[code].category
    if category not in allowed or (outcome in DEAL_CATEGORIES and category != outcome):
        return Evaluation("wrong_category", text, None, has_note)
    if settings.codes[code].requires_note and not has_note:
        return Evaluation("note_missing", text, None, has_note)
    return Evaluation("deprecated" if deprecated else "valid", text, code, has_note)


def _number(value: Any) -> float | None:
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _bucket(value: Any, edges: Sequence[float]) -> str:
    number = _number(value)
    if number is None:
        return str(value)

    def fmt(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else str(x)

    if number < edges[0]:
        return f"<{fmt(edges[0])}"
    for low, high in itertools.pairwise(edges):
        if low <= number < high:
            return f"{fmt(low)}-{fmt(high - 1) if float(high).is_integer() else fmt(high)}"
    return f"{fmt(edges[-1])}+"


def segment_value(
    spec: SegmentSpec,
    record: Mapping[str, Any],
    account: Mapping[str, Any],
    marketing: Mapping[str, Any],
) -> str:
    """The segment's value for one outcome (see :class:`SegmentSpec`); ``(none)`` when empty."""

    def read(source: str) -> Any:
        if source.startswith("account."):
            return account.get(source.removeprefix("account."))
        if source.startswith("marketing."):
            return marketing.get(source.removeprefix("marketing."))
        return record.get(source)

    def present(value: Any) -> bool:
        return value is not None and str(value).strip() != ""

    if spec.combine == "path":
        labels = spec.labels or spec.sources
        steps = [
            label
            for source, label in zip(spec.sources, labels, strict=True)
            if present(read(source))
        ]
        return ">".join(steps) or NONE
    for source in spec.sources:
        value = read(source)
        if present(value):
            return _bucket(value, spec.buckets) if spec.buckets else str(value).strip()
    return NONE


def _closed_at(value: Any, fallback: datetime) -> datetime:
    """A close date (``2026-03-01``, ISO datetime or epoch ms) as an aware datetime."""
    if value is None or str(value).strip() == "":
        return fallback
    text = str(value).strip()
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return fallback
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _closed_before(raw: Any, closed: datetime, since: datetime | None) -> bool:
    """Whether an outcome closed before ``since``; a date-only close counts its whole day."""
    if since is None:
        return False
    text = str(raw).strip() if raw is not None else ""
    if len(text) == 10 and not text.isdigit():
        return closed.date() < since.astimezone(UTC).date()
    return closed < since


@dataclass(frozen=True)
class PersonLinks:
    """Where a sync pair keeps its people's links (pair name, object name).

    Why: a deal's people reach marketing through the link the sync keeps -- the HubSpot contact
    the lead or contact is linked to, by id -- rather than an e-mail guess that misses a person
    whose address differs on the two sides, or lands on a duplicate.
    """

    pair: str
    obj: str


def person_links(
    pairs: Mapping[str, PairSettings], settings: ReasonsSettings
) -> PersonLinks | None:
    """The pair object syncing these connectors' people (CRM leads/contacts <-> contacts)."""
    crm_objects = {"Person", settings.crm_fields.lead_object, settings.crm_fields.contact_object}
    for name, pair in pairs.items():
        if pair.crm != settings.crm or pair.map != settings.marketing:
            continue
        for obj_name, objmap in pair.objects.items():
            if (
                objmap.map_object == settings.marketing_fields.contact_object
                and objmap.crm_object in crm_objects
            ):
                return PersonLinks(name, obj_name)
    return None


@dataclass(frozen=True)
class _Source:
    """One stream of closed outcomes: where it is read and how its fields are named."""

    side: Literal["crm", "map"]
    connector: Connector[Any]
    obj: str
    kind: Literal["deal", "lead"]
    reason_field: str
    note_field: str
    owner_field: str
    date_field: str | None
    outcome_of: Callable[[Record], str | None]

    @property
    def allowed(self) -> frozenset[str]:
        return DEAL_CATEGORIES if self.kind == "deal" else LEAD_CATEGORIES


@dataclass
class _Item:
    """One closed record on its way through a batch."""

    record: Record
    outcome: str
    verdict: Evaluation
    closed_at: datetime
    previous: OutcomeRow | None
    people: list[tuple[str, str]] = field(default_factory=list)  # (person key, marketing id/email)
    linked: dict[str, str] = field(default_factory=dict)  # person key -> linked marketing id
    marketing_ids: list[str] = field(default_factory=list)
    account: Mapping[str, Any] = field(default_factory=dict)
    marketing: Mapping[str, Any] = field(default_factory=dict)


class ReasonCapture:
    """Capture, validation, push and list expiry for one reasons configuration."""

    def __init__(
        self,
        settings: ReasonsSettings,
        *,
        crm: Connector[Any],
        marketing: Connector[Any],
        store: Store,
        now: Callable[[], datetime] = _utcnow,
        links: PersonLinks | None = None,
        since: datetime | Literal["installed"] | None = "installed",
        plan: bool = False,
    ) -> None:
        self.settings = settings
        self.links = links
        self._since = since
        self.plan = plan
        self.crm = crm
        self.marketing = marketing
        self.store = store
        self.now = now
        self._owners: dict[str, str] | None = None
        self._lists: dict[str, str] = {}

    @property
    def since(self) -> datetime | None:
        """The cutoff: explicit, else the recorded install time (``None``: capture everything)."""
        if self._since == "installed":
            with self.store.transaction(readonly=True) as tx:
                self._since = installed_at(tx)
        return self._since

    # -- sources ---------------------------------------------------------------------------------

    def sources(self) -> list[_Source]:
        """The configured outcome streams."""
        crm, mk = self.settings.crm_fields, self.settings.marketing_fields
        won, lost = set(crm.won_stages), set(crm.lost_stages)

        def deal_outcome(r: Record) -> str | None:
            stage = r.fields.get(crm.stage_field)
            return "won" if stage in won else "lost" if stage in lost else None

        def lead_outcome(r: Record) -> str | None:
            status = r.fields.get(crm.lead_status_field)
            return crm.rejected_statuses.get(str(status)) if status is not None else None

        out = [
            _Source(
                "crm",
                self.crm,
                crm.opportunity_object,
                "deal",
                crm.opportunity_reason_field,
                crm.opportunity_note_field,
                crm.owner_field,
                crm.close_date_field,
                deal_outcome,
            ),
            _Source(
                "crm",
                self.crm,
                crm.lead_object,
                "lead",
                crm.lead_reason_field,
                crm.lead_note_field,
                crm.owner_field,
                None,
                lead_outcome,
            ),
        ]
        if mk.capture_deals:
            mwon, mlost = set(mk.won_stages), set(mk.lost_stages)

            def map_deal_outcome(r: Record) -> str | None:
                stage = r.fields.get(mk.deal_stage_field)
                return "won" if stage in mwon else "lost" if stage in mlost else None

            out.append(
                _Source(
                    "map",
                    self.marketing,
                    mk.deal_object,
                    "deal",
                    mk.deal_reason_field,
                    mk.deal_note_field,
                    mk.owner_field,
                    mk.close_date_field,
                    map_deal_outcome,
                )
            )
        return out

    # -- the cycle -------------------------------------------------------------------------------

    def run_cycle(self) -> CaptureReport:
        """Capture every source from its cursor, then expire list memberships; see module doc."""
        report = CaptureReport()
        for source in self.sources():
            self._capture(source, report)
        if not self.plan:
            self._expire(report)
        return report

    def _capture(self, source: _Source, report: CaptureReport) -> None:
        with self.store.transaction(readonly=True) as tx:
            cursor = tx.get_cursor(CURSOR_PAIR, source.side, source.obj)
        since = datetime.fromisoformat(cursor) if cursor else None
        batch: list[Record] = []
        last: datetime | None = None
        for record in source.connector.changes(source.obj, since):
            last = record.modified_at if last is None else max(last, record.modified_at)
            report.counts["read"] += 1
            if record.deleted or record.merged_into or source.outcome_of(record) is None:
                continue
            batch.append(record)
            if len(batch) >= self.settings.batch_size:
                self._batch(source, batch, last, report)
                batch = []
        if batch or last is not None:
            self._batch(source, batch, last, report)

    def _batch(
        self, source: _Source, records: list[Record], cursor: datetime | None, report: CaptureReport
    ) -> None:
        now = self.now()
        with self.store.transaction(readonly=True) as tx:
            known = ReasonRepository(tx).outcomes_for(
                source.connector.name, source.obj, [r.id for r in records]
            )
        items: list[_Item] = []
        for record in records:
            previous = known.get(record.id)
            if previous is not None and previous.version == record.version:
                report.counts["unchanged"] += 1
                continue
            outcome = source.outcome_of(record)
            assert outcome is not None
            verdict = evaluate(
                self.settings,
                outcome,
                record.fields.get(source.reason_field),
                record.fields.get(source.note_field),
                source.allowed,
            )
            fallback = previous.closed_at if previous is not None else record.modified_at
            raw_date = record.fields.get(source.date_field) if source.date_field else None
            closed = _closed_at(raw_date, fallback) if source.date_field else fallback
            if previous is None and _closed_before(raw_date, closed, self.since):
                report.counts["before_since"] += 1
                continue
            items.append(_Item(record, outcome, verdict, closed, previous))
            report.counts["captured"] += 1
            report.counts[verdict.status] += 1
        if items:
            self._people(source, items)
            self._context(source, items)
        if self.plan:
            self._preview(source, items, report)
            return
        tasks = self._flag(source, items, report)
        pushed, dead = self._push(source, items, now, report)
        with self.store.transaction() as tx:
            repo = ReasonRepository(tx)
            for item in items:
                outcome_id = self._save(repo, source, item, now)
                if item.record.id in tasks:
                    repo.mark_flagged(outcome_id, item.verdict.status, tasks[item.record.id], now)
                if item.record.id in pushed:
                    assert item.verdict.code is not None
                    repo.mark_pushed(outcome_id, item.verdict.code, now)
                    self._memberships(repo, item, outcome_id, now)
            for key, payload, reason, code in dead:
                tx.add_dead_letter(
                    pair=DEAD_LETTER_PAIR,
                    side="map",
                    obj=self.settings.marketing_fields.contact_object,
                    record_key=key,
                    operation="upsert",
                    payload=payload,
                    reason=reason,
                    error_code=code,
                    now=now,
                )
                tx.audit(
                    "reasons.dead_letter",
                    key,
                    {"reason": reason, "code": code},
                    now=now,
                    pair=DEAD_LETTER_PAIR,
                )
            if cursor is not None:
                tx.set_cursor(CURSOR_PAIR, source.side, source.obj, cursor.isoformat(), now=now)

    # -- people and context ----------------------------------------------------------------------

    def _people(self, source: _Source, items: list[_Item]) -> None:
        """Who was involved: contact roles, deal associations, or the lead itself."""
        crm, mk = self.settings.crm_fields, self.settings.marketing_fields
        if source.side == "map":
            related = self.marketing.related(
                source.obj, [i.record.id for i in items], mk.contact_object
            )
            for item in items:
                item.people = [(f"id:{m}", m) for m in related.get(item.record.id, [])]
                item.marketing_ids = list(related.get(item.record.id, []))
            return
        if source.kind == "lead":
            for item in items:
                email = str(item.record.fields.get(crm.email_field) or "").strip()
                item.people = [(f"{source.obj}:{item.record.id}", email)]
            self._linked(items, [i.record.id for i in items])
            return
        roles = self.crm.related(source.obj, [i.record.id for i in items], crm.contact_object)
        contact_ids = sorted({c for ids in roles.values() for c in ids})
        emails = {
            r.id: str(r.fields.get(crm.email_field) or "").strip()
            for r in self.crm.fetch(crm.contact_object, contact_ids)
        }
        for item in items:
            item.people = [
                (f"{crm.contact_object}:{c}", emails.get(c, ""))
                for c in roles.get(item.record.id, [])
            ]
        self._linked(items, contact_ids)

    def _linked(self, items: list[_Item], crm_ids: Iterable[str]) -> None:
        """Each person's marketing record through the sync's link, where there is one."""
        if self.links is None:
            return
        with self.store.transaction(readonly=True) as tx:
            found = tx.links_by_ids(self.links.pair, self.links.obj, "crm", set(crm_ids))
        for item in items:
            for person, _ in item.people:
                crm_id = person.split(":", 1)[1]
                link = found.get(crm_id)
                if link is not None and link.active and link.map_id is not None:
                    item.linked[person] = link.map_id

    def _context(self, source: _Source, items: list[_Item]) -> None:
        """Accounts of CRM deals (for segments such as industry and size)."""
        if source.side != "crm" or source.kind != "deal" or not items:
            return
        wants_account = any(
            s.startswith("account.")
            for spec in self.settings.segments.values()
            for s in spec.sources
        )
        if not wants_account:
            return
        crm = self.settings.crm_fields
        ids = {str(i.record.fields.get(crm.account_field) or "") for i in items} - {""}
        accounts = {r.id: r.fields for r in self.crm.fetch(crm.account_object, sorted(ids))}
        for item in items:
            item.account = accounts.get(str(item.record.fields.get(crm.account_field) or ""), {})

    def _owner_name(self, owner_id: str | None, connector: Connector[Any]) -> str | None:
        if owner_id is None:
            return None
        if self._owners is None:
            self._owners = {}
            for c in {self.crm.name: self.crm, self.marketing.name: self.marketing}.values():
                if Capability.OWNERS in c.capabilities:
                    for owner in c.owners():
                        self._owners[f"{c.name}:{owner.id}"] = owner.name or owner.email
        return self._owners.get(f"{connector.name}:{owner_id}")

    # -- flags -----------------------------------------------------------------------------------

    def _problem(self, item: _Item) -> str:
        v = item.verdict
        if v.status == "missing":
            return "no reason was chosen"
        if v.status == "unknown":
            return f"reason {v.raw_code!r} is not in the reason taxonomy"
        if v.status == "wrong_category":
            resolved = self.settings.resolve(v.raw_code or "")
            category = self.settings.codes[resolved[0]].category if resolved else "?"
            return (
                f"reason {v.raw_code!r} explains a {CATEGORY_LABELS[category].lower()} outcome, "
                f"but this record is {CATEGORY_LABELS[item.outcome].lower()}"
            )
        if v.status == "note_missing":
            return f"reason {self.settings.label(v.code or v.raw_code or '')!r} needs a note"
        assert v.code is not None
        return (
            f"reason {v.raw_code!r} is retired; it now counts as {self.settings.label(v.code)!r} "
            "-- please pick a current reason"
        )

    def _flag(
        self, source: _Source, items: list[_Item], report: CaptureReport
    ) -> dict[str, str | None]:
        """A task per new problem, on the record, for its owner; returns record id -> task id."""
        out: dict[str, str | None] = {}
        can_task = Capability.TASKS in source.connector.capabilities
        for item in items:
            status = item.verdict.status
            if status == "valid":
                continue
            if item.previous is not None and item.previous.flagged_status == status:
                report.counts["already_flagged"] += 1
                continue
            problem = self._problem(item)
            report.flagged.append(f"{source.obj} {item.record.id}: {problem}")
            if not can_task:
                report.counts["flag_unsent"] += 1  # retried next time the record changes
                continue
            owner = item.record.fields.get(source.owner_field)
            choices = ", ".join(spec.label for _, spec in self.settings.codes_for(source.allowed))
            task_id = source.connector.create_task(
                source.obj,
                item.record.id,
                owner_id=str(owner) if owner else None,
                subject=f"Reason code needed: {problem}"[:255],
                body=(
                    f"crm-bridge checked this {CATEGORY_LABELS[item.outcome].lower()} record: "
                    f"{problem}. Choose one of: {choices}."
                ),
                due=self.now() + timedelta(days=2),
            )
            out[item.record.id] = task_id
            report.counts["flagged"] += 1
        return out

    # -- push ------------------------------------------------------------------------------------

    def _properties(self, item: _Item) -> dict[str, Any]:
        mk = self.settings.marketing_fields
        assert item.verdict.code is not None
        reason, stamp = {
            "won": (mk.last_win_reason, mk.last_win_date),
            "lost": (mk.last_loss_reason, mk.last_loss_date),
        }.get(item.outcome, (mk.last_rejection_reason, mk.last_rejection_date))
        return {reason: item.verdict.code, stamp: item.closed_at.date().isoformat()}

    def _push(
        self, source: _Source, items: list[_Item], now: datetime, report: CaptureReport
    ) -> tuple[set[str], list[tuple[str, dict[str, Any], str, str | None]]]:
        """Properties on every linked person (batched), then list memberships per reason."""
        mk = self.settings.marketing_fields
        pushed: set[str] = set()
        dead: list[tuple[str, dict[str, Any], str, str | None]] = []
        ops: list[tuple[_Item, Upsert]] = []
        ordered = sorted(items, key=lambda i: i.closed_at)  # the latest outcome is written last
        for item in ordered:
            if not item.verdict.pushable:
                if item.verdict.status != "valid":
                    report.counts["not_pushed"] += 1
                continue
            if item.previous is not None and item.previous.pushed_code == item.verdict.code:
                report.counts["already_pushed"] += 1
                continue
            props = self._properties(item)
            targets = self._targets(item)
            report.counts["not_linked"] += len(item.people) - len(targets)
            for person, marketing_id in targets:
                key = f"{source.obj}:{item.record.id}:{person}"
                ops.append((item, Upsert(key=key, fields=props, id=marketing_id)))
            if targets:
                pushed.add(item.record.id)
            elif item.people:
                report.counts["reached_nobody"] += 1
            else:
                report.counts["no_people"] += 1
        size = max(1, self.marketing.object_spec(mk.contact_object).max_batch)
        for start in range(0, len(ops), size):
            chunk = ops[start : start + size]
            results = self.marketing.write(mk.contact_object, [op for _, op in chunk])
            for (item, op), result in zip(chunk, results, strict=True):
                if result.ok and result.id is not None:
                    item.marketing_ids.append(result.id)
                    report.counts["people_updated"] += 1
                else:
                    dead.append(
                        (op.key, dict(op.fields), result.error or "rejected", result.error_code)
                    )
                    report.counts["dead_lettered"] += 1
        self._marketing_context(items)
        if mk.lists and Capability.LISTS in self.marketing.capabilities:
            by_list: dict[str, list[str]] = {}
            for item in items:
                if item.record.id in pushed and item.marketing_ids:
                    assert item.verdict.code is not None
                    list_id = self._list_id(item.verdict.code)
                    by_list.setdefault(list_id, []).extend(item.marketing_ids)
            for list_id, members in by_list.items():
                unique = list(dict.fromkeys(members))
                self.marketing.add_to_list(list_id, unique)
                report.counts["list_adds"] += len(unique)
        report.counts["pushed"] += len(pushed)
        return pushed, dead

    def _targets(self, item: _Item) -> list[tuple[str, str]]:
        """``(person key, marketing id)`` of the people a push may write: linked ones only.

        A marketing deal's people are marketing records already (``id:``); a CRM person counts
        only through the sync's link (:meth:`_linked`).  Never an upsert by e-mail: that creates
        a marketing record holding nothing but the address when the person is not there yet.
        """
        out: list[tuple[str, str]] = []
        for person, target in item.people:
            if person.startswith("id:"):
                out.append((person, target))
            elif person in item.linked:
                out.append((person, item.linked[person]))
        return out

    def _preview(self, source: _Source, items: list[_Item], report: CaptureReport) -> None:
        """``plan``: what :meth:`_flag` and :meth:`_push` would do, without a single write."""
        for item in items:
            status = item.verdict.status
            if status != "valid":
                if item.previous is not None and item.previous.flagged_status == status:
                    report.counts["already_flagged"] += 1
                else:
                    report.flagged.append(f"{source.obj} {item.record.id}: {self._problem(item)}")
                    report.counts["would_flag"] += 1
            if not item.verdict.pushable:
                continue
            if item.previous is not None and item.previous.pushed_code == item.verdict.code:
                report.counts["already_pushed"] += 1
                continue
            targets = self._targets(item)
            report.counts["not_linked"] += len(item.people) - len(targets)
            if not targets:
                report.counts["reached_nobody" if item.people else "no_people"] += 1
                continue
            report.counts["would_push"] += 1
            report.counts["people_would_update"] += len(targets)
            report.pushes.append(
                f"{source.obj} {item.record.id}: {item.verdict.code} -> "
                f"{', '.join(m for _, m in targets)}"
            )

    def _marketing_context(self, items: list[_Item]) -> None:
        """Marketing properties of the first person of each outcome (segments such as engagement)."""
        if not any(
            s.startswith("marketing.")
            for spec in self.settings.segments.values()
            for s in spec.sources
        ):
            return
        first = {i.record.id: i.marketing_ids[0] for i in items if i.marketing_ids}
        first.update(self._linked_people(i for i in items if not i.marketing_ids))
        if not first:
            return
        mk = self.settings.marketing_fields
        found = {
            r.id: r.fields
            for r in self.marketing.fetch(mk.contact_object, sorted(set(first.values())))
        }
        for item in items:
            if item.record.id in first:
                item.marketing = found.get(first[item.record.id], {})

    def _linked_people(self, items: Iterable[_Item]) -> dict[str, str]:
        """Record id -> marketing id of its first linked person, for outcomes not pushed.

        An invalid or already-pushed outcome writes nothing to marketing, so no write returns
        the person's marketing id; the sync's links give it, so segments read from marketing
        (engagement, source) are filled for every outcome and "(no valid reason)" by segment
        is not skewed towards "(none)".  One lookup serves pushes and segments: the pair's
        links read in :meth:`_linked` (an any-pair fallback could hand over the id of another
        marketing connector's record).
        """
        return {i.record.id: next(iter(i.linked.values())) for i in items if i.linked}

    def _list_id(self, code: str) -> str:
        if code not in self._lists:
            name = self.settings.list_name(code)
            self._lists[code] = self.marketing.ensure_list(
                name, self.settings.marketing_fields.contact_object
            )
        return self._lists[code]

    def _memberships(
        self, repo: ReasonRepository, item: _Item, outcome_id: int, now: datetime
    ) -> None:
        mk = self.settings.marketing_fields
        if not (mk.lists and item.marketing_ids and item.verdict.code):
            return
        days = self.settings.list_expiry_days
        expires = now + timedelta(days=days) if days else None
        for member in dict.fromkeys(item.marketing_ids):
            repo.add_membership(
                connector=self.marketing.name,
                list_id=self._list_id(item.verdict.code),
                list_name=self.settings.list_name(item.verdict.code),
                member_id=member,
                outcome_id=outcome_id,
                now=now,
                expires_at=expires,
            )

    # -- storage ---------------------------------------------------------------------------------

    def _save(self, repo: ReasonRepository, source: _Source, item: _Item, now: datetime) -> int:
        owner = item.record.fields.get(source.owner_field)
        owner_id = str(owner) if owner else None
        segments = {
            name: segment_value(spec, item.record.fields, item.account, item.marketing)
            for name, spec in self.settings.segments.items()
        }
        if item.previous is not None and not item.marketing:
            # Keep marketing-derived segments learnt when the outcome was first pushed.
            for name, spec in self.settings.segments.items():
                if segments[name] == NONE and any(s.startswith("marketing.") for s in spec.sources):
                    segments[name] = item.previous.segments.get(name, NONE)
        v = item.verdict
        return repo.save_outcome(
            {
                "source": source.connector.name,
                "object": source.obj,
                "record_id": item.record.id,
                "outcome": item.outcome,
                "raw_code": v.raw_code,
                "code": v.code,
                "has_note": v.has_note,
                "status": v.status,
                "owner_id": owner_id,
                "owner_name": self._owner_name(owner_id, source.connector),
                "closed_at": item.closed_at,
                "segments": segments,
                "version": item.record.version,
            },
            now=now,
        )

    # -- expiry ----------------------------------------------------------------------------------

    def _expire(self, report: CaptureReport) -> None:
        """Take members whose re-targeting window closed back out of their lists."""
        if Capability.LISTS not in self.marketing.capabilities:
            return
        now = self.now()
        with self.store.transaction(readonly=True) as tx:
            due = ReasonRepository(tx).expired_memberships(self.marketing.name, now)
        if not due:
            return
        by_list: dict[str, list[int]] = {}
        members: dict[str, list[str]] = {}
        for m in due:
            by_list.setdefault(m.list_id, []).append(m.id)
            members.setdefault(m.list_id, []).append(m.member_id)
        for list_id, ids in members.items():
            self.marketing.remove_from_list(list_id, ids)
            with self.store.transaction() as tx:
                ReasonRepository(tx).mark_removed(by_list[list_id], now)
                tx.audit(
                    "reasons.list_expired",
                    list_id,
                    {"members": ids},
                    now=now,
                    pair=DEAD_LETTER_PAIR,
                )
            report.counts["list_expired"] += len(ids)
