"""Periodic work of the audit log (the `audit.*` tasks go to the default queue: light work)."""

from __future__ import annotations

import logging

from celery import shared_task

from .errors import AuditChainBroken
from .services import audit_anchor_create

logger = logging.getLogger(__name__)


@shared_task(name="audit.anchor_head")
def anchor_head() -> int | None:
    """Seal pending refusals into the chain and sign its head. Returns the anchored sequence number.
    A broken chain is logged as an error and not anchored (retrying cannot mend it)."""
    try:
        anchor = audit_anchor_create()
    except AuditChainBroken as exc:
        logger.error("Audit chain not anchored: %s", exc.message)
        return None
    return anchor.seq if anchor else None
