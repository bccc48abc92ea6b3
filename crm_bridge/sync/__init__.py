"""The sync engine: a pure planner and a batching executor, run once per cycle per pair.

Vocabulary (used the same way in every module here):

* **pair** -- one configured sync between a CRM connector and a marketing-platform (MAP)
  connector, with its object maps.
* **side** -- ``"crm"`` or ``"map"``; conflict rules name sides, never vendors.
* **logical value** -- a field's value in the pair's own vocabulary (CRM picklist values, owner
  e-mails, normalised numbers and dates), so the two sides can be compared.
* **link** -- the stored row saying record A on one side is record B on the other, with the
  logical values both sides last agreed on (``synced``).
* **echo** -- a change we read back that our own write caused; it equals ``synced`` and is dropped.
"""
