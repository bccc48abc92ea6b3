"""Alembic migrations of the state store, shipped inside the package and run by ``Store.open``.

Nothing here reads an ``alembic.ini``: :func:`crm_bridge.store.migrate.alembic_config` builds the
configuration in code and passes the live connection in ``config.attributes["connection"]``.
"""
