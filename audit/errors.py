"""Domain errors of the audit log."""

from core.errors import Conflict, InvalidRequest


class AuditChainBroken(Conflict):
    code = "audit_chain_broken"


class AnchorsFileInvalid(InvalidRequest):
    code = "audit_anchors_file_invalid"
