"""The HTTP control plane every emulator mounts under ``/__emulator__/``.

Routes (all JSON):

* ``POST /__emulator__/faults`` -- arm a fault (see :class:`~crm_bridge.emulators.runtime.Fault`);
  ``GET`` lists armed faults; ``DELETE`` disarms all.
* ``GET /__emulator__/faults/hits`` -- the calls faults struck, oldest first (see
  :class:`~crm_bridge.emulators.runtime.FaultHit`): whether each was applied and answered yet.
  ``DELETE`` empties the log.
* ``GET /__emulator__/calls`` -- calls per endpoint family; ``DELETE`` zeroes them.
* ``POST /__emulator__/clock`` -- ``{"advance": seconds}`` or ``{"freeze": iso|null}`` or
  ``{"unfreeze": true}``; ``GET`` answers the emulator's time.
* ``POST /__emulator__/reset`` -- empty state, no faults or fault hits, zero counts, real clock.
* ``GET /__emulator__/snapshot`` / ``POST /__emulator__/load`` -- dump and restore state.
* ``POST /__emulator__/expire-tokens`` -- every issued access token is now expired.

Vendor emulators add their own routes (e.g. "act as another user") next to these through
``extra``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from crm_bridge.emulators.runtime import (
    CONTROL_PREFIX,
    CallCounter,
    EmulatorClock,
    Fault,
    FaultPlane,
)

__all__ = ["ControlHooks", "control_routes"]


@dataclass
class ControlHooks:
    """The vendor-specific halves of the control plane."""

    reset_state: Callable[[], None]
    snapshot: Callable[[], dict[str, Any]]
    load: Callable[[dict[str, Any]], None]
    expire_tokens: Callable[[], None]


def control_routes(
    *,
    faults: FaultPlane,
    calls: CallCounter,
    clock: EmulatorClock,
    hooks: ControlHooks,
    extra: Sequence[BaseRoute] = (),
) -> list[BaseRoute]:
    """Build the ``/__emulator__`` routes over the given shared parts and vendor hooks."""

    async def fault_collection(request: Request) -> Response:
        if request.method == "POST":
            try:
                fault = Fault.from_json(await request.json())
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            faults.add(fault)
            return JSONResponse(asdict(fault), status_code=201)
        if request.method == "DELETE":
            faults.clear()
            return Response(status_code=204)
        return JSONResponse([asdict(f) for f in faults.armed()])

    async def fault_hits(request: Request) -> Response:
        if request.method == "DELETE":
            faults.clear_hits()
            return Response(status_code=204)
        return JSONResponse([asdict(hit) for hit in faults.hits()])

    async def call_counts(request: Request) -> Response:
        if request.method == "DELETE":
            calls.reset()
            return Response(status_code=204)
        return JSONResponse(calls.snapshot())

    async def clock_route(request: Request) -> Response:
        if request.method == "POST":
            body = await request.json()
            if "advance" in body:
                clock.advance(float(body["advance"]))
            if "freeze" in body:
                at = body["freeze"]
                clock.freeze(datetime.fromisoformat(at) if at else None)
            if body.get("unfreeze"):
                clock.unfreeze()
        return JSONResponse({"now": clock.now().isoformat(), "epoch": clock.time()})

    async def reset(request: Request) -> Response:
        hooks.reset_state()
        faults.clear()
        faults.clear_hits()
        calls.reset()
        clock.reset()
        return Response(status_code=204)

    async def snapshot(request: Request) -> Response:
        return JSONResponse(hooks.snapshot())

    async def load(request: Request) -> Response:
        hooks.load(await request.json())
        return Response(status_code=204)

    async def expire(request: Request) -> Response:
        hooks.expire_tokens()
        return Response(status_code=204)

    p = CONTROL_PREFIX
    return [
        Route(f"{p}/faults", fault_collection, methods=["GET", "POST", "DELETE"]),
        Route(f"{p}/faults/hits", fault_hits, methods=["GET", "DELETE"]),
        Route(f"{p}/calls", call_counts, methods=["GET", "DELETE"]),
        Route(f"{p}/clock", clock_route, methods=["GET", "POST"]),
        Route(f"{p}/reset", reset, methods=["POST"]),
        Route(f"{p}/snapshot", snapshot, methods=["GET"]),
        Route(f"{p}/load", load, methods=["POST"]),
        Route(f"{p}/expire-tokens", expire, methods=["POST"]),
        *extra,
    ]
