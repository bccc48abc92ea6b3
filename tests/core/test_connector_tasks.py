"""create_tasks: the batched task API, its default over create_task, and the worked example."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from crm_bridge.connector import Capability, Connector, NewTask
from crm_bridge.connectors.example_memory import MemoryConnector, MemorySettings
from crm_bridge.errors import AuthError, RecordRejectedError

DUE = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class OneAtATime(MemoryConnector):
    """A connector with only ``create_task``: it gets the base class's ``create_tasks``."""

    create_tasks = Connector.create_tasks


def make(cls: type[MemoryConnector] = MemoryConnector, max_batch: int = 2) -> MemoryConnector:
    return cls(MemorySettings(objects=["contacts"], max_batch=max_batch), name="mem")


def batch(records: list[str]) -> list[NewTask]:
    return [
        {"record_id": rid, "owner_id": "u1", "subject": f"SLA {n}", "body": "b", "due": DUE}
        for n, rid in enumerate(records)
    ]


def test_example_batches_tasks_one_call_per_batch_with_refusals_in_place() -> None:
    conn = make(max_batch=2)
    assert Capability.TASKS in conn.capabilities
    a, b = (conn.backend.create("contacts", {"email": f"{n}@x.io"}) for n in "ab")
    ids = conn.create_tasks("contacts", batch([a, "missing", b]))
    assert ids[1] is None and ids[0] and ids[2]
    assert conn.calls["tasks"] == 2  # 3 tasks in batches of 2, not 3 calls
    created = conn.backend.tasks
    assert [created[i]["subject"] for i in (ids[0], ids[2]) if i] == ["SLA 0", "SLA 2"]
    assert created[ids[2] or ""]["record_id"] == b
    assert conn.create_tasks("contacts", []) == []


def test_example_create_task_refuses_a_missing_record() -> None:
    conn = make()
    rid = conn.backend.create("contacts", {"email": "a@x.io"})
    task_id = conn.create_task("contacts", rid, owner_id=None, subject="Call back")
    assert conn.backend.tasks[task_id]["subject"] == "Call back"
    with pytest.raises(RecordRejectedError):
        conn.create_task("contacts", "missing", owner_id=None, subject="x")


def test_default_create_tasks_calls_create_task_per_item() -> None:
    conn = make(OneAtATime)
    a, b = (conn.backend.create("contacts", {"email": f"{n}@x.io"}) for n in "ab")
    ids = conn.create_tasks("contacts", batch([a, "missing", b]))
    assert ids[1] is None and ids[0] and ids[2]
    assert conn.calls["tasks"] == 3  # no batch endpoint: one call per task
    task = conn.backend.tasks[ids[0] or ""]
    assert (task["owner_id"], task["body"], task["due"]) == ("u1", "b", DUE)


def test_default_create_tasks_keeps_created_ids_when_the_call_fails_midway(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conn = make(OneAtATime)
    a, b = (conn.backend.create("contacts", {"email": f"{n}@x.io"}) for n in "ab")
    real = conn.create_task
    calls: list[str] = []

    def flaky(obj: str, record_id: str, **kwargs: Any) -> str:
        calls.append(record_id)
        if len(calls) > 1:
            raise AuthError("token revoked", connector="mem")
        return real(obj, record_id, **kwargs)

    monkeypatch.setattr(conn, "create_task", flaky)
    ids = conn.create_tasks("contacts", batch([a, b, a]))
    # The first task exists, so its id is kept (a retry must not create it twice); the failure
    # affects every later task, so the loop stops instead of trying each one.
    assert ids[0] is not None and ids[1:] == [None, None]
    assert calls == [a, b]
    # Nothing created yet: the error is raised for the caller to report.
    calls.clear()
    calls.append("already failing")
    with pytest.raises(AuthError):
        conn.create_tasks("contacts", batch([a]))


def test_without_the_capability_create_tasks_names_it() -> None:
    class NoTasks(MemoryConnector):
        capabilities = MemoryConnector.capabilities - {Capability.TASKS}
        create_task = Connector.create_task
        create_tasks = Connector.create_tasks

    with pytest.raises(NotImplementedError, match=r"Capability\.TASKS"):
        make(NoTasks).create_tasks(
            "contacts", [{"record_id": "x", "owner_id": None, "subject": ""}]
        )
