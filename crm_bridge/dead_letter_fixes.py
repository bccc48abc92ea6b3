"""What fixes each dead-letter code: the one table ``dlq list --summary`` and docs/errors.md share.

Why one table in one module: a dead letter's code is all an admin sees of thousands of rejected
records, and the answer to "what do I change?" is a config key or a command, not a vendor
message.  Keeping it here (rather than in each command) means the summary, the sync's
dead-letter warning and the docs cannot drift apart: ``tests/cli/test_dlq.py`` checks that every
code below is documented in docs/errors.md with the same fix.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEAD_LETTER_FIXES", "FALLBACK_FIX", "DeadLetterFix", "fix_for"]


@dataclass(frozen=True, slots=True)
class DeadLetterFix:
    """What a code means and the config key or command that clears it."""

    code: str
    means: str
    fix: str


_FIXES = (
    DeadLetterFix(
        "OWNER_NOT_FOUND",
        "the record's owner has no active owner with the same e-mail on the other side",
        "`crm-bridge owners` lists who matches; give the owner a user with the same e-mail, or "
        "set `pairs.NAME.default_map_owner` / `pairs.NAME.default_crm_owner`; then "
        "`crm-bridge dlq replay`",
    ),
    DeadLetterFix(
        "REFERENCE_NOT_LINKED",
        "a reference (e.g. a contact's account) points at a record the sync has not linked yet",
        "nothing, usually: it replays by itself once the referred record links; if it stays, "
        "`crm-bridge dlq list --code` on that record's own letter says why",
    ),
    DeadLetterFix(
        "ROLE_NEEDS_CONTACT",
        "a deal's people include someone who is still a Lead in Salesforce (a contact role "
        "needs a Contact)",
        "convert the lead in Salesforce, then `crm-bridge dlq replay` (automatic retries with "
        "backoff also pick it up once the link has followed the person to the Contact)",
    ),
    DeadLetterFix(
        "DUPLICATE_IDENTITY",
        "another record on the same side has this identity (e-mail) and is already linked",
        "merge the two records in the vendor (the reason names the other one) or change one "
        "e-mail; the merge is synced, no replay needed",
    ),
    DeadLetterFix(
        "ALREADY_LINKED",
        "the vendor's upsert landed on a record that is already linked to someone else",
        "merge the duplicate people in the vendor, then `crm-bridge dlq replay`",
    ),
    DeadLetterFix(
        "REQUIRED_FIELD_MISSING",
        "the target object requires a field the pair does not map or the source left empty",
        "map it: `[pairs.NAME.objects.OBJ.fields.FIELD]` with `crm` / `map` names, or fill it "
        "in at the source; then `crm-bridge dlq replay`",
    ),
    DeadLetterFix(
        "INVALID_EMAIL_ADDRESS",
        "the target refused the e-mail address",
        "correct the address on the source record (the next sync carries it)",
    ),
    DeadLetterFix(
        "INVALID_EMAIL",
        "the target refused the e-mail address",
        "correct the address on the source record (the next sync carries it)",
    ),
    DeadLetterFix(
        "INVALID_OPTION",
        "a picklist / enumeration value the target does not have",
        "add a value map: `[pairs.NAME.objects.OBJ.fields.FIELD.values]`, or add the value in "
        "the target; then `crm-bridge dlq replay`",
    ),
    DeadLetterFix(
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "a picklist value the restricted Salesforce picklist does not have",
        "add a value map: `[pairs.NAME.objects.OBJ.fields.FIELD.values]`, or add the value in "
        "the target; then `crm-bridge dlq replay`",
    ),
    DeadLetterFix(
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "a validation rule of the org refused the record",
        "fix the data at the source or the rule in the org; then `crm-bridge dlq replay`",
    ),
    DeadLetterFix(
        "PROPERTY_DOESNT_EXIST",
        "the pair maps a field the target does not have",
        "correct the field name in `[pairs.NAME.objects.OBJ.fields.FIELD]` "
        "(`crm-bridge check` lists what the connector sees); then `crm-bridge dlq replay`",
    ),
    DeadLetterFix(
        "INVALID_FIELD",
        "the pair maps a field the target does not have",
        "correct the field name in `[pairs.NAME.objects.OBJ.fields.FIELD]` "
        "(`crm-bridge check` lists what the connector sees); then `crm-bridge dlq replay`",
    ),
    DeadLetterFix(
        "READ_ONLY_VALUE",
        "the pair writes a field the target computes itself",
        'set `direction = "crm_to_map"` or `"map_to_crm"` on that field so it flows only '
        "towards the side that may be written",
    ),
    DeadLetterFix(
        "UNABLE_TO_LOCK_ROW",
        "the record was locked by another transaction in the CRM",
        "nothing: it is retried automatically up to `pairs.NAME.dead_letter_max_attempts`",
    ),
    DeadLetterFix(
        "NO_EMAIL",
        "a reason push found a person with no e-mail (older capture runs)",
        "give the person an e-mail in the CRM; the sync links them and the next outcome pushes",
    ),
)

DEAD_LETTER_FIXES: dict[str, DeadLetterFix] = {f.code: f for f in _FIXES}
"""Code -> what it means and its fix (docs/errors.md, *Dead-letter codes*, shows the same)."""

FALLBACK_FIX = (
    "`crm-bridge dlq show ID` prints the vendor's message and payload; fix the record or the "
    "mapping, then `crm-bridge dlq replay ID`"
)


def fix_for(code: str | None) -> str:
    """The fix of ``code``, or the generic one for a vendor code the table does not know."""
    found = DEAD_LETTER_FIXES.get(code or "")
    return found.fix if found is not None else FALLBACK_FIX
