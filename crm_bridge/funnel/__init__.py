"""The marketing-to-revenue funnel: a person event log, how it is filled, and what it shows.

* :mod:`.events` -- what one event is (a person reached a stage at a time, with context).
* :mod:`.repository` -- append-only reads and writes of ``person_events``.
* :mod:`.settings` -- which lead status / lifecycle stage means SAL or SQL, per pair.
* :mod:`.derive` -- events from what the engines already recorded (audit log, SLA, reasons).
* :mod:`.backfill` -- events from what the systems hold (lifecycle dates, conversions, deals).
* :mod:`.model` -- stage counts, conversion, velocity, losses, amounts and breakdowns.
* :mod:`.render` -- the model as terminal tables, CSV and JSON.
"""
