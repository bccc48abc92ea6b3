"""Running crm-bridge as a service: log events, metrics, health, alerts, progress, ``explain``.

Why a package apart from the engine: the engine (:mod:`crm_bridge.sync`) decides and writes;
everything here only *watches* it through one hook (:class:`~crm_bridge.ops.events.CycleObserver`,
called by the runner at the start and end of each cycle and object) and reads the store.  Nothing
here can change what a cycle does, so an operator feature can never break a sync.
"""
