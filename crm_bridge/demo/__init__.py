"""``crm-bridge demo`` and the sandbox it runs in: both emulators wired to the real connectors.

The sandbox is also what the integration tests and ``bench/`` use, so the demo a newcomer runs
exercises exactly the code paths the tests check.
"""
