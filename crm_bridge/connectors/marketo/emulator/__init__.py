"""A local Marketo REST API emulator that the real ``marketorestpython`` talks to over a socket.

Start one with ``MarketoEmulator().start()``; ``RunningMarketo.client()`` gives a
``MarketoClient`` pointed at it, ``RunningMarketo.token()`` an access token for plain HTTP.
"""

from crm_bridge.connectors.marketo.emulator.emulator import MarketoEmulator, RunningMarketo
from crm_bridge.connectors.marketo.emulator.settings import MarketoEmulatorSettings

__all__ = ["MarketoEmulator", "MarketoEmulatorSettings", "RunningMarketo"]
