"""What the chain hashes: an entry's digest over the previous hash and its fields, and the digest
of a batch of refusals that a seal entry carries. Pure functions, shared by appending and checking."""

from __future__ import annotations

import hashlib
import json

GENESIS_HASH = "0" * 64
SEAL_EVENT = "audit.refusals_sealed"


def _body(*, entry_id: int, created_at, event: str, actor_ref: str, subject_type: str, subject_id: str,
          data: dict) -> str:
    return json.dumps(
        {"id": entry_id, "at": created_at.isoformat(), "event": event, "actor": actor_ref,
         "subject": [subject_type, subject_id], "data": data},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )


def entry_digest(*, prev_hash: str, entry_id: int, created_at, event: str, actor_ref: str,
                 subject_type: str, subject_id: str, data: dict) -> str:
    body = _body(entry_id=entry_id, created_at=created_at, event=event, actor_ref=actor_ref,
                 subject_type=subject_type, subject_id=subject_id, data=data)
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def refusals_digest(rows) -> str:
    """SHA-256 over the refusals in id order, one canonical JSON line each (ids included, so a
    removed, added or reordered row changes it as much as an edited one)."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(_body(entry_id=row.id, created_at=row.created_at, event=row.event, actor_ref=row.actor_ref,
                            subject_type=row.subject_type, subject_id=row.subject_id, data=row.data).encode())
        digest.update(b"\n")
    return digest.hexdigest()
