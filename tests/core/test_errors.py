from __future__ import annotations

import inspect

import crm_bridge
from crm_bridge import errors


def test_every_error_is_in_the_tree_and_drawn_in_the_docstring() -> None:
    classes = [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, Exception) and obj.__module__ == errors.__name__
    ]
    assert len(classes) >= 10
    doc = errors.__doc__ or ""
    for cls in classes:
        assert issubclass(cls, errors.CrmBridgeError), cls
        if cls.__name__ != "DroppedConnection":
            assert cls.__name__ in doc, f"{cls.__name__} missing from the drawn tree"
            assert f"[{cls.exit_code}]" in doc


def test_exit_codes_group_by_action() -> None:
    assert errors.ConfigError([]).exit_code == 2
    assert errors.RateLimitedError("x").exit_code == errors.TransientError("x").exit_code
    codes = {
        errors.ConfigError.exit_code,
        errors.AuthError.exit_code,
        errors.TransientError.exit_code,
        errors.RecordRejectedError.exit_code,
        errors.SyncAbortedError.exit_code,
    }
    assert len(codes) == 5


def test_structured_fields_render() -> None:
    exc = errors.RecordRejectedError(
        "bad picklist", code="INVALID_OPTION", connector="hs", object_name="contacts", record_id="7"
    )
    assert str(exc) == "bad picklist (connector=hs, object=contacts, record=7)"
    assert exc.code == "INVALID_OPTION"


def test_public_api_is_complete_and_sorted() -> None:
    exported = crm_bridge.__all__
    assert list(exported) == sorted(exported)
    for name in exported:
        assert hasattr(crm_bridge, name), name
    public_errors = {n for n in errors.__all__ if n.endswith("Error")}
    assert public_errors <= set(exported)
