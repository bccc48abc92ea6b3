"""Where connectors get their rate limiters and daily budgets from: local, or shared by workers.

Why a seam here: a vendor's limits belong to the *account* (a HubSpot app in a portal, a
Marketo instance), and with several ``crm-bridge worker`` processes on one PostgreSQL store
each process would otherwise pace itself as if it were alone -- N workers, N times the limit.
Connectors therefore ask :func:`budgets` for their limiters, naming the account they spend;
by default that returns the ordinary in-process :class:`~crm_bridge.http.RollingWindowLimiter`
and :class:`~crm_bridge.http.DailyBudget` (the embedded SQLite + daemon setup, the tests), and a
worker installs :class:`crm_bridge.workers.budgets.SharedBudgets` with :func:`use_budgets`
before it builds any connector, so the same connector code draws on counts in PostgreSQL.

The account keys are built from the connector's settings with :func:`account_key`, so two
connectors configured for the same account -- in one process or many -- share one count.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Protocol

from crm_bridge.http.clock import Clock
from crm_bridge.http.ratelimit import DailyBudget, RollingWindowLimiter

__all__ = ["BudgetProvider", "LocalBudgets", "account_key", "budgets", "use_budgets"]


class BudgetProvider(Protocol):
    """Makes the limiters a connector paces its calls with."""

    def window(
        self,
        account: str,
        *,
        max_calls: int,
        window_seconds: float,
        clock: Clock,
        name: str,
    ) -> RollingWindowLimiter:
        """At most ``max_calls`` calls of ``account`` in any ``window_seconds``."""
        ...

    def daily(
        self,
        account: str,
        *,
        reserve_fraction: float,
        name: str,
        day: Callable[[], str] | None = None,
    ) -> DailyBudget:
        """The daily allocation of ``account``; ``day`` names the current allocation period.

        ``day`` is given where crm-bridge must count the day itself (Marketo reports no usage);
        without it the budget is fed the vendor's own count and stays local.
        """
        ...


class LocalBudgets:
    """The in-process limiters: one process alone spends each account (the default)."""

    def window(
        self,
        account: str,
        *,
        max_calls: int,
        window_seconds: float,
        clock: Clock,
        name: str,
    ) -> RollingWindowLimiter:
        """A plain :class:`RollingWindowLimiter`."""
        return RollingWindowLimiter(max_calls, window_seconds, clock, name=name)

    def daily(
        self,
        account: str,
        *,
        reserve_fraction: float,
        name: str,
        day: Callable[[], str] | None = None,
    ) -> DailyBudget:
        """A plain :class:`DailyBudget`."""
        return DailyBudget(reserve_fraction=reserve_fraction, name=name)


_lock = threading.Lock()
_provider: BudgetProvider = LocalBudgets()


def budgets() -> BudgetProvider:
    """The provider connectors build their limiters with now."""
    with _lock:
        return _provider


def use_budgets(provider: BudgetProvider) -> BudgetProvider:
    """Install ``provider`` for connectors built from now on; returns the previous one."""
    global _provider
    with _lock:
        previous, _provider = _provider, provider
    return previous


def account_key(vendor: str, endpoint: str, credential: str | None, limit: str) -> str:
    """``vendor:<endpoint>:<credential digest>:<limit>`` -- the name every process agrees on.

    The credential (token or client id) is hashed: the key is stored in the database and shown
    in diagnostics, and it must not leak a secret.
    """
    digest = hashlib.sha256((credential or "").encode()).hexdigest()[:16]
    return f"{vendor}:{endpoint.rstrip('/')}:{digest}:{limit}"
