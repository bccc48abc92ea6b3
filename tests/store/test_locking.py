"""The single-writer lock excludes a second holder: another Store, connection or process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest

from crm_bridge import errors
from crm_bridge.store import Store, StoreLockedError


def test_lock_error_is_the_package_error(store: Store) -> None:
    """The CLI maps crm_bridge.errors.StoreLockedError to exit code 9; the store raises exactly it."""
    assert StoreLockedError is errors.StoreLockedError
    assert StoreLockedError.exit_code == 9


def test_second_store_is_locked_out(open_store: Callable[..., Store]) -> None:
    first, second = open_store(), open_store()
    with first.writer_lock("sync"):
        with pytest.raises(StoreLockedError, match="sync"), second.writer_lock("sync"):
            pytest.fail("second holder got the lock")
        with second.writer_lock("other-name"):  # locks are per name
            pass
    with second.writer_lock("sync"):  # released on exit
        pass


def test_lock_is_released_on_exception(store: Store) -> None:
    with pytest.raises(RuntimeError), store.writer_lock("sync"):
        raise RuntimeError("sync crashed")
    with store.writer_lock("sync"):
        pass


def test_lock_is_not_reentrant(store: Store) -> None:
    with store.writer_lock("sync"), pytest.raises(StoreLockedError), store.writer_lock("sync"):
        pass


def test_lock_excludes_another_process(store: Store, store_url: str) -> None:
    script = textwrap.dedent(
        """
        import sys
        from crm_bridge.store import Store, StoreLockedError
        s = Store.open(sys.argv[1])
        try:
            with s.writer_lock("sync"):
                print("ACQUIRED")
        except StoreLockedError as exc:
            print("LOCKED", exc)
        finally:
            s.close()
        """
    )

    def other_process() -> str:
        done = subprocess.run(
            [sys.executable, "-c", script, store_url],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    with store.writer_lock("sync"):
        out = other_process()
        assert out.startswith("LOCKED"), out
        assert "pid" in out  # says who holds it
    assert other_process().startswith("ACQUIRED")


@pytest.mark.postgres
def test_pg_lock_is_scoped_to_schema(pg_schema: Callable[[], str]) -> None:
    """Advisory locks are database-wide; the key includes the schema so stores don't collide."""
    a, b = Store.open(pg_schema()), Store.open(pg_schema())
    try:
        with a.writer_lock("sync"), b.writer_lock("sync"):
            pass
    finally:
        a.close()
        b.close()


def test_memory_store_lock(tmp_path: object) -> None:
    s = Store.open("sqlite://")
    try:
        with s.writer_lock("sync"), pytest.raises(StoreLockedError), s.writer_lock("sync"):
            pass
        with s.writer_lock("sync"), s.transaction() as tx:
            tx.set_cursor("p", "crm", "contact", "x")
            assert tx.get_cursor("p", "crm", "contact") == "x"
    finally:
        s.close()


def test_pair_locks_serialise_one_pair_not_two(open_store: Callable[..., Store]) -> None:
    """Two writers of one pair exclude each other; writers of different pairs do not."""
    from crm_bridge.store.locking import pair_lock_name

    first, second = open_store(), open_store()
    assert pair_lock_name("main") == "writer:main"
    with first.pair_locks(["main", "eu"]):
        with pytest.raises(StoreLockedError, match="writer:main"), second.pair_locks(["main"]):
            pytest.fail("a second writer of pair main got its lock")
        with second.pair_locks(["us"]):  # another pair writes side by side
            pass
    with second.pair_locks(["main", "eu"]):  # all released on exit
        pass


def test_lock_wait_gets_the_lock_once_it_is_released(open_store: Callable[..., Store]) -> None:
    """``wait=`` polls until the holder lets go (a manual sync while a worker runs the pair)."""
    import threading
    import time

    first, second = open_store(), open_store()
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with first.writer_lock("writer:main"):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(10)
        # the deadline passes while it is held
        with (
            pytest.raises(StoreLockedError),
            second.writer_lock("writer:main", wait=0.3, poll=0.05),
        ):
            pytest.fail("got a held lock")
        threading.Timer(0.3, release.set).start()
        started = time.monotonic()
        with second.writer_lock("writer:main", wait=10, poll=0.05):
            waited = time.monotonic() - started
        assert 0.2 <= waited < 5, waited
    finally:
        release.set()
        thread.join(10)
