"""Marketo Engage: the local REST API emulator (``emulator``); the connector comes later."""
