"""What staff did with the review queue, for the audit log."""

from __future__ import annotations

from audit.services import audit_append


def review_access_record(*, staff, ip: str | None) -> None:
    """Append 'staff opened the review queue' to the audit log. Raises nothing of its own."""
    audit_append(event="review.opened", actor=staff, data={"ip": ip or ""})


def export_record(*, staff, what: str, start, end) -> None:
    """Append a CSV export of `what` for [start, end] to the audit log."""
    audit_append(event="compliance.exported", actor=staff,
                 data={"what": what, "start": start.isoformat(), "end": end.isoformat()})
