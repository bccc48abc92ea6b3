"""Wiring: from a validated configuration to an open store, live connectors and pair runners.

The CLI and ``crm-bridge demo`` build one :class:`Session`, use it, and close it; tests build one
around in-memory connectors.  Nothing here decides anything -- it only assembles the parts so
that every entry point wires them the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from crm_bridge.config import LoadedConfig
from crm_bridge.connector import Connector
from crm_bridge.errors import ConfigError, ConfigProblem
from crm_bridge.ops.events import CycleTracker
from crm_bridge.ops.wiring import standard_tracker
from crm_bridge.store import Store
from crm_bridge.sync.runner import SyncRunner

__all__ = ["Session"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Session:
    """An open store plus the connectors and runners the configuration names."""

    def __init__(
        self,
        config: LoadedConfig,
        *,
        connectors: Mapping[str, Connector[Any]] | None = None,
        store: Store | None = None,
        now: Callable[[], datetime] = _utcnow,
        tracker: CycleTracker | None = None,
    ) -> None:
        self.config = config
        # Every runner's observer: log events, progress, alerts; the daemon adds metrics.
        self.tracker = tracker if tracker is not None else standard_tracker(config)
        self.now = now
        self.store = store or Store.open(config.settings.store.url)
        self._connectors: dict[str, Connector[Any]] = dict(connectors or {})
        self._runners: dict[str, SyncRunner] = {}

    def connector(self, name: str) -> Connector[Any]:
        """The live connector called ``name`` (created on first use)."""
        if name not in self._connectors:
            self._connectors[name] = self.config.connectors[name].create()
        return self._connectors[name]

    def pair_names(self, only: str | None = None) -> list[str]:
        """Configured pairs, or just ``only`` (which must exist)."""
        pairs = list(self.config.settings.pairs)
        if only is None:
            return pairs
        if only not in pairs:
            raise ConfigError(
                [
                    ConfigProblem(
                        "--pair",
                        f"no pair named {only!r}",
                        fix=f"use one of: {', '.join(pairs) or 'none'}",
                    )
                ]
            )
        return [only]

    def runner(self, pair: str) -> SyncRunner:
        """The runner of ``pair`` (kept, so caches such as owners survive between cycles)."""
        if pair not in self._runners:
            settings = self.config.settings.pairs[pair]
            self._runners[pair] = SyncRunner(
                name=pair,
                settings=settings,
                crm=self.connector(settings.crm),
                map_=self.connector(settings.map),
                store=self.store,
                now=self.now,
            )
            self._runners[pair].observer = self.tracker
        return self._runners[pair]

    def close(self) -> None:
        """Close connectors and the store."""
        for connector in self._connectors.values():
            connector.close()
        self.store.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
