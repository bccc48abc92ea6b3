"""Scale-out: ``crm-bridge worker`` processes running pair cycles as jobs on PostgreSQL.

Why a package of its own: the embedded default (SQLite + ``crm-bridge daemon``) must keep
working without any of this; only a PostgreSQL store can hold a job queue, shared rate budgets
and heartbeats that several processes on several hosts agree on.  See docs/operations.md,
"Several workers".
"""
