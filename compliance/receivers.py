"""Receivers of the audit signal: how compliance learns of refusals and revoked keys.

They run after the audited transaction committed (audit.signals), outside the request's own
transaction: a failing flag must never turn the customer's 4xx into a 500.
"""

from __future__ import annotations

from audit.models import AuditRefusal

from .services.cases import case_open_for_disputed_delivery
from .services.flags import flag_revoked_key_used, flags_from_refusal


def audit_entry_appended(sender, entry, **kwargs) -> None:
    # Refusals are recorded off the chain (sender AuditRefusal), one signal each.
    if sender is AuditRefusal and entry.event == "generation.refused":
        flags_from_refusal(refusal_id=entry.pk)
    elif entry.event == "apikey.used_after_revocation":
        flag_revoked_key_used(key_id=entry.subject_id, at=entry.created_at)
    elif entry.event == "commission.disputed" and entry.data.get("grant"):
        # Compliance and the marketplace are siblings: the dispute arrives as plain audited data.
        case_open_for_disputed_delivery(grant_id=entry.data["grant"], commission_ref=entry.subject_id,
                                        reason=entry.data.get("reason", ""), actor_ref=entry.actor_ref)
