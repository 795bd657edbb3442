"""Receivers of the audit signal: how compliance learns of refusals and revoked keys.

They run after the audited transaction committed (audit.signals), outside the request's own
transaction: a failing flag must never turn the customer's 4xx into a 500.
"""

from __future__ import annotations

from audit.models import AuditRefusal

from .services.flags import flag_revoked_key_used, flags_from_refusal


def audit_entry_appended(sender, entry, **kwargs) -> None:
    # Refusals are recorded off the chain (sender AuditRefusal), one signal each.
    if sender is AuditRefusal and entry.event == "generation.refused":
        flags_from_refusal(refusal_id=entry.pk)
    elif entry.event == "apikey.used_after_revocation":
        flag_revoked_key_used(key_id=entry.subject_id, at=entry.created_at)
