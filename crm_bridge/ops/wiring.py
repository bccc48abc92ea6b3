"""The observers every :class:`~crm_bridge.session.Session` gives its runners.

Why in one function: ``sync``, ``daemon``, ``dlq replay`` and the demo all run cycles through a
session, and an operator expects the same log events, progress and alerts from each.  The
daemon adds metrics and health to the same tracker (:meth:`CycleTracker.add`).
"""

from __future__ import annotations

from crm_bridge.config import LoadedConfig
from crm_bridge.log import SecretMasker
from crm_bridge.ops.alerts import Alerter
from crm_bridge.ops.events import CycleTracker, LogSink, Sink
from crm_bridge.ops.progress import ProgressSink

__all__ = ["standard_tracker"]


def standard_tracker(config: LoadedConfig, *, progress: bool = True) -> CycleTracker:
    """Log events always; progress (terminal or periodic lines); alerts when configured."""
    sinks: list[Sink] = [LogSink()]
    if progress:
        sinks.append(ProgressSink())
    alerts = config.settings.alerts
    if alerts is not None and alerts.webhooks:
        masker = SecretMasker(config.secret_values())
        sinks.append(Alerter(alerts, mask=masker.mask_text))
    return CycleTracker(sinks)
