from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_bridge.connector import Delete, Upsert, WriteOp, WriteResult
from crm_bridge.connectors.hubspot import HubSpotConnector
from crm_bridge.connectors.hubspot.client import HubSpotClient, Response
from crm_bridge.connectors.hubspot.emulator.emulator import RunningHubSpot
from crm_bridge.connectors.hubspot.reading import Reader
from crm_bridge.connectors.hubspot.writing import (
    Kind,
    Writer,
    _assign,
    _error_code,
    _Item,
    _item_id,
    _version,
)
from tests.connectors.hubspot.conftest import add_contacts, assert_counts_match, server_calls

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _live_by_email(hubspot: RunningHubSpot) -> dict[str, dict[str, str]]:
    store = hubspot.emulator.portal.store("contacts")
    return {
        r.props["email"].lower(): dict(r.props) for r in store.live.values() if "email" in r.props
    }


def test_mixed_batch_results_in_input_order_and_good_records_land(
    hubspot: RunningHubSpot, connector: HubSpotConnector
) -> None:
    existing, doomed = add_contacts(hubspot.emulator, 2, start=T0, prefix="old")
    hubspot.emulator.calls.reset()
    ops: list[WriteOp] = [
        Upsert(key="u1", id=existing, fields={"firstname": "Renamed", "lastname": None}),
        Upsert(key="c1", fields={"email": "new1@example.com", "lifecyclestage": "lead"}),
        Upsert(
            key="bad-upsert",
            match_on="email",
            fields={"email": "bad@example.com", "lifecyclestage": "bogus"},
        ),
        Delete(key="d1", id=doomed),
        Upsert(key="m1", match_on="email", fields={"email": "m1@example.com", "firstname": "M"}),
        Upsert(key="bad-create", fields={"email": "new2@example.com", "lifecyclestage": "nope"}),
        Upsert(key="m2", match_on="email", fields={"email": "M2@example.com", "firstname": "N"}),
        Upsert(key="hard", id=existing, fields={}),
        Delete(key="hard-delete", id=existing, mode="hard"),
    ]

    results = connector.write("contacts", ops)

    assert [r.key for r in results] == [op.key for op in ops]
    by_key = {r.key: r for r in results}
    assert by_key["bad-upsert"].ok is False
    assert by_key["bad-upsert"].error_code == "INVALID_OPTION"
    assert "bogus" in (by_key["bad-upsert"].error or "")
    assert by_key["bad-create"].ok is False
    assert by_key["bad-create"].error_code == "INVALID_OPTION"
    assert by_key["hard-delete"].error_code == "UNSUPPORTED_DELETE_MODE"
    for key in ("u1", "c1", "d1", "m1", "m2", "hard"):
        assert by_key[key].ok, by_key[key]
    assert by_key["u1"].id == existing and by_key["u1"].created is False
    assert by_key["c1"].created is True and by_key["m1"].created is True
    live = _live_by_email(hubspot)
    assert live["old0@example.com"]["firstname"] == "Renamed"
    assert "lastname" not in live["old0@example.com"]  # None -> "" clears
    assert live["new1@example.com"]["lifecyclestage"] == "lead"
    assert live["m1@example.com"]["firstname"] == "M"
    assert live["m2@example.com"]["firstname"] == "N"
    assert "bad@example.com" not in live and "new2@example.com" not in live
    assert "old1@example.com" not in live
    assert by_key["c1"].id == str(
        hubspot.emulator.portal.store("contacts").by_email["new1@example.com"]
    )
    # update twice (the same id may not repeat in one batch), create (a 207 names the bad input),
    # upsert twice (a 400 names the bad value; the good two are resent), archive.
    assert server_calls(hubspot)["batch"] == 6
    assert_counts_match(connector, hubspot)


def test_duplicate_keys_in_one_write_go_to_separate_batches_in_order(
    hubspot: RunningHubSpot, connector: HubSpotConnector
) -> None:
    (cid,) = add_contacts(hubspot.emulator, 1, start=T0)
    ops = [
        Upsert(key="1", id=cid, fields={"firstname": "First"}),
        Upsert(key="2", id=cid, fields={"firstname": "Second"}),
    ]

    results = connector.write("contacts", ops)

    assert all(r.ok for r in results)
    assert hubspot.emulator.portal.store("contacts").live[int(cid)].props["firstname"] == "Second"
    assert connector.calls["batch"] == 2


def test_150_writes_take_two_batch_calls(
    hubspot: RunningHubSpot, connector: HubSpotConnector
) -> None:
    ops = [
        Upsert(key=f"k{i}", match_on="email", fields={"email": f"w{i}@example.com"})
        for i in range(150)
    ]

    results = connector.write("contacts", ops)

    assert [r.key for r in results] == [op.key for op in ops]
    assert all(r.ok and r.created for r in results)
    ids = {r.id for r in results}
    assert len(ids) == 150
    store = hubspot.emulator.portal.store("contacts")
    assert all(
        store.live[int(r.id or 0)].props["email"] == f"w{i}@example.com"
        for i, r in enumerate(results)
    )
    assert server_calls(hubspot) == {"batch": 2, "total": 2}
    assert connector.calls["batch"] == 2


def test_creates_without_identity_map_back_by_content(
    hubspot: RunningHubSpot, connector: HubSpotConnector
) -> None:
    ops = [
        Upsert(key=f"d{i}", fields={"dealname": f"Deal {i}", "amount": i * 10}) for i in range(5)
    ]

    results = connector.write("deals", ops)

    store = hubspot.emulator.portal.store("deals")
    for i, result in enumerate(results):
        assert result.ok
        assert store.live[int(result.id or 0)].props["dealname"] == f"Deal {i}"


def test_unknown_update_ids_fail_alone_via_207(
    hubspot: RunningHubSpot, connector: HubSpotConnector
) -> None:
    (cid,) = add_contacts(hubspot.emulator, 1, start=T0)

    results = connector.write(
        "contacts",
        [
            Upsert(key="gone", id="424242", fields={"firstname": "X"}),
            Upsert(key="here", id=cid, fields={"firstname": "Y"}),
        ],
    )

    assert results[0] == WriteResult(
        key="gone",
        ok=False,
        error=results[0].error,
        error_code="OBJECT_NOT_FOUND",
    )
    assert results[1].ok and results[1].id == cid
    assert connector.calls["batch"] == 1


def test_a_property_that_does_not_exist_fails_its_records_without_halving(
    hubspot: RunningHubSpot, connector: HubSpotConnector
) -> None:
    ops = [
        Upsert(key=f"k{i}", match_on="email", fields={"email": f"x{i}@example.com", "nope": "1"})
        for i in range(8)
    ]
    ops.append(Upsert(key="fine", match_on="email", fields={"email": "fine@example.com"}))

    results = connector.write("contacts", ops)

    assert [r.error_code for r in results[:8]] == ["PROPERTY_DOESNT_EXIST"] * 8
    assert results[8].ok
    assert connector.calls["batch"] == 2


# -- mapping a shuffled batch answer back to its inputs (no emulator: HubSpot's order is free) ----


class _ShufflingHubSpot:
    """A stand-in HubSpotClient answering batch create / upsert in a shuffled order.

    Like HubSpot it promises no order, and it echoes no ``objectWriteTraceId``, so the writer has
    to map every result back by id, identity value or written properties.
    """

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.records: dict[str, dict[str, str]] = {}
        self.by_email: dict[str, str] = {}

    def add(self, props: dict[str, str]) -> str:
        rid = str(1000 + len(self.records))
        self.records[rid] = dict(props)
        if "email" in props:
            self.by_email[props["email"].strip().lower()] = rid
        return rid

    def send(
        self, family: str, api: str, method: str, obj: str, body: Any, *, idempotent: bool
    ) -> Response:
        assert (family, api) == ("batch", "crm.objects.batch_api")
        results: list[dict[str, Any]] = []
        for given_input in body["inputs"]:
            props = {
                k: v.strip().lower() if k == "email" else v
                for k, v in given_input["properties"].items()
            }
            new = True
            if method == "upsert":
                rid = self.by_email.get(given_input["id"].lower())
                new = rid is None
                if rid is None:
                    rid = self.add(props)
                else:
                    self.records[rid].update(props)
            else:
                assert method == "create"
                rid = self.add(props)
            echo = {**self.records[rid], "hs_object_id": rid, "createdate": "2026-03-01T12:00:00Z"}
            result: dict[str, Any] = {"id": rid, "properties": echo, "updatedAt": f"v{rid}"}
            if method == "upsert":
                result["new"] = new
            results.append(result)
        self.rng.shuffle(results)
        return Response(
            201 if method == "create" else 200, {"status": "COMPLETE", "results": results}
        )


def _shuffling_writer(hubspot: _ShufflingHubSpot) -> Writer:
    return Writer(cast(HubSpotClient, hubspot), cast(Reader, None))


def test_shuffled_create_answer_without_identity_maps_each_result_to_its_exact_input() -> None:
    stages = ["appointmentscheduled", "qualifiedtobuy", "closedwon"]
    # Deal-like: no identity property, and every single value is shared with other inputs (7, 13
    # and 3 distinct values); only the combination is unique, so only all properties identify.
    ops: list[WriteOp] = [
        Upsert(
            key=f"d{i}",
            fields={
                "amount": (i % 7) * 100,
                "dealname": f"Deal {i % 13}",
                "dealstage": stages[i % 3],
            },
        )
        for i in range(100)
    ]
    hubspot = _ShufflingHubSpot(seed=20260301)

    results = _shuffling_writer(hubspot).write("deals", ops, ())

    assert [r.key for r in results] == [op.key for op in ops]
    assert len({r.id for r in results}) == 100
    for op, result in zip(ops, results, strict=True):
        assert isinstance(op, Upsert)
        assert result.ok and result.created and result.id is not None
        written = {k: str(v) for k, v in op.fields.items()}
        assert hubspot.records[result.id] == written, op.key
        assert result.version == f"v{result.id}"


def test_shuffled_upsert_answer_maps_by_email_whatever_its_case() -> None:
    hubspot = _ShufflingHubSpot(seed=7)
    existing = {hubspot.add({"email": f"user{i}@example.com"}): i for i in range(0, 100, 3)}
    # Same other properties everywhere: nothing but the email tells the results apart.
    ops: list[WriteOp] = [
        Upsert(
            key=f"c{i}",
            match_on="email",
            fields={"email": f" User{i}@Example.COM", "firstname": "Ann", "lifecyclestage": "lead"},
        )
        for i in range(100)
    ]

    results = _shuffling_writer(hubspot).write("contacts", ops, ("email",))

    assert [r.key for r in results] == [op.key for op in ops]
    for i, result in enumerate(results):
        assert result.ok and result.id is not None
        assert result.id == hubspot.by_email[f"user{i}@example.com"]
        assert hubspot.records[result.id]["email"] == f"user{i}@example.com"
        assert result.created is (i % 3 != 0)
    assert sorted(existing.values()) == [i for i, r in enumerate(results) if not r.created]


# -- the indexed _assign against the straightforward scans it replaced -------------------------


def _reference_assign(
    kind: Kind, items: list[_Item], body: Mapping[str, Any], identity: tuple[str, ...]
) -> dict[int, WriteResult]:
    """The quadratic _assign as it was before the indexes: the oracle for the property test."""
    out: dict[int, WriteResult] = {}
    left = {i.index: i for i in items}
    by_trace = {i.trace: i for i in items}

    def fail(item: _Item, error: Mapping[str, Any]) -> None:
        code, message = _error_code(error), str(error.get("message") or "rejected by HubSpot")
        out[item.index] = WriteResult.failure(item.op.key, message, code=code)
        left.pop(item.index, None)

    for error in body.get("errors") or []:
        if not isinstance(error, Mapping):
            continue
        context = error.get("context") or {}
        for trace in context.get("objectWriteTraceId") or []:
            if str(trace) in by_trace and by_trace[str(trace)].index in left:
                fail(by_trace[str(trace)], error)
        wanted = {str(x).lower() for x in context.get("ids") or []}
        for item in list(left.values()):
            if _item_id(item).lower() in wanted:
                fail(item, error)

    def success(item: _Item, raw: Mapping[str, Any]) -> None:
        created = kind == "create" or bool(raw.get("new"))
        out[item.index] = WriteResult.success(
            item.op.key, str(raw["id"]), version=_version(raw), created=created
        )
        left.pop(item.index, None)

    unmatched: list[Mapping[str, Any]] = []
    for raw in body.get("results") or []:
        if not isinstance(raw, Mapping) or "id" not in raw:
            continue
        found = _reference_match(kind, raw, left, by_trace, identity)
        if found is None:
            unmatched.append(raw)
        else:
            success(found, raw)
    for raw, item in _reference_by_resemblance(unmatched, list(left.values())):
        success(item, raw)
    for item in list(left.values()):
        out[item.index] = WriteResult.failure(
            item.op.key,
            "HubSpot's batch answer named no result and no error for this input",
            code="UNKNOWN_OUTCOME",
        )
    return out


def _reference_match(
    kind: Kind,
    raw: Mapping[str, Any],
    left: Mapping[int, _Item],
    by_trace: Mapping[str, _Item],
    identity: tuple[str, ...],
) -> _Item | None:
    trace = raw.get("objectWriteTraceId")
    if trace is not None and str(trace) in by_trace and by_trace[str(trace)].index in left:
        return by_trace[str(trace)]
    rid = str(raw["id"])
    props = raw.get("properties") or {}
    for item in left.values():
        if kind == "update" and isinstance(item.op, Upsert) and item.op.id == rid:
            return item
    for item in left.values():
        names = (item.match_on,) if item.match_on else identity
        for name in names:
            mine, theirs = item.props.get(name), props.get(name)
            if mine and theirs and mine.strip().lower() == str(theirs).strip().lower():
                return item
    return None


def _reference_by_resemblance(
    results: list[Mapping[str, Any]], items: list[_Item]
) -> Iterable[tuple[Mapping[str, Any], _Item]]:
    free = list(items)
    for raw in results:
        if not free:
            return
        props = raw.get("properties") or {}

        def score(item: _Item, props: Mapping[str, Any] = props) -> int:
            return sum(
                1
                for k, v in item.props.items()
                if str(props.get(k) or "").strip().lower() == v.strip().lower()
            )

        best = max(free, key=score)
        free.remove(best)
        yield raw, best


# Few names and values, so inputs collide on identity values and on written properties.
_NAMES = ["amount", "dealname", "dealstage", "email", "firstname"]
_VALUES = ["", " ", "a", "A ", "b", "x@example.com", " X@Example.COM", "1", 1, 0, None, True]
_IDS = ["101", "102", "103", "abc", "ABC"]
_PLANNER = Writer(cast(HubSpotClient, None), cast(Reader, None))


@st.composite
def _answered_batches(
    draw: st.DrawFn,
) -> tuple[Kind, list[_Item], dict[str, Any], tuple[str, ...]]:
    """A planned batch of one kind and a HubSpot-like answer: shuffled, partial, noisy."""
    kind: Kind = draw(st.sampled_from(["create", "update", "upsert"]))
    identity = draw(st.sampled_from([(), ("email",), ("email", "firstname"), ("dealname",)]))
    n = draw(st.integers(0, 30))
    fields = st.dictionaries(st.sampled_from(_NAMES), st.sampled_from(_VALUES), max_size=4)
    items: list[_Item] = []
    for index in range(n):
        written = draw(fields)
        if kind == "update":
            op = Upsert(key=f"k{index}", id=draw(st.sampled_from(_IDS)), fields=written)
        elif kind == "upsert":
            match_on = draw(st.sampled_from(["email", "firstname"]))
            written[match_on] = draw(
                st.sampled_from(["a", "A ", " ", "x@example.com", "X@EXAMPLE.com"])
            )
            op = Upsert(key=f"k{index}", match_on=match_on, fields=written)
        else:
            op = Upsert(key=f"k{index}", fields=written)
        item = _PLANNER._plan(index, op)
        assert isinstance(item, _Item) and item.kind == kind
        items.append(item)
    traces = [i.trace for i in items] + ["crm-bridge-999"]

    alterations: list[Any] = ["same", "same", "upper", "drop", *_VALUES]

    def echo(props: Mapping[str, str]) -> dict[str, Any]:
        """What a result echoes: mostly every written value as is, else some altered; maybe more."""
        out: dict[str, Any] = dict(props)
        if draw(st.integers(0, 3)) == 0:
            for k, v in props.items():
                how = draw(st.sampled_from(alterations))
                if how == "upper":
                    out[k] = f" {v.upper()}"
                elif how == "drop":
                    del out[k]
                elif how != "same":
                    out[k] = how
        if draw(st.booleans()):
            extra = st.dictionaries(st.sampled_from(_NAMES), st.sampled_from(_VALUES), max_size=2)
            out.update(draw(extra))
        return out

    results: list[Any] = []
    errors: list[Any] = []
    for item in items:
        fate = draw(st.sampled_from(["result", "result", "result", "error", "none", "both"]))
        if fate in ("result", "both"):
            raw: dict[str, Any] = {
                "id": draw(st.sampled_from([*_IDS, "9001", "9002"])),
                "properties": echo(item.props),
            }
            if draw(st.booleans()):
                raw["objectWriteTraceId"] = draw(st.sampled_from([item.trace, *traces]))
            if draw(st.booleans()):
                raw["new"] = draw(st.booleans())
            if draw(st.booleans()):
                raw["updatedAt"] = f"2026-03-01T12:00:{item.index:02d}Z"
            results.append(raw)
        if fate in ("error", "both"):
            context: dict[str, Any] = {}
            if draw(st.booleans()):
                context["objectWriteTraceId"] = [draw(st.sampled_from([item.trace, *traces]))]
            if draw(st.booleans()):
                named = _item_id(item)
                context["ids"] = [draw(st.sampled_from([named, named.upper(), "nope", *_IDS]))]
            errors.append(
                {
                    "status": "error",
                    "category": draw(st.sampled_from(["OBJECT_NOT_FOUND", "VALIDATION_ERROR"])),
                    "message": draw(st.sampled_from(["bad", ""])),
                    "context": context,
                    "errors": draw(st.sampled_from([[], [{"code": "INVALID_OPTION"}]])),
                }
            )
    for _ in range(draw(st.integers(0, 3))):  # results for nothing sent, and junk
        results.append(
            draw(
                st.sampled_from(
                    [
                        {"id": "9999", "properties": echo({})},
                        {"properties": {"email": "x@example.com"}},
                        "junk",
                    ]
                )
            )
        )
    if draw(st.booleans()):
        errors.append("junk")
    body = {
        "status": "COMPLETE",
        "results": draw(st.permutations(results)),
        "errors": draw(st.permutations(errors)),
    }
    return kind, items, body, identity


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_answered_batches())
def test_indexed_assign_maps_exactly_like_the_quadratic_scans(
    batch: tuple[Kind, list[_Item], dict[str, Any], tuple[str, ...]],
) -> None:
    kind, items, body, identity = batch

    assert _assign(kind, items, body, identity) == _reference_assign(kind, items, body, identity)
