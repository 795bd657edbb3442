"""Checking the audit chain: every entry's link and hash, every seal of refusals, and the chain
against its signed anchors (those in the database, and those of an exported copy an outsider kept).

What each check catches, for someone with write access to the database:
- an edited or removed entry: its own hash, or the next entry's link, no longer matches;
- an entry rewritten with every later hash recomputed: the chain no longer reaches the hash an
  anchor signed for a later entry;
- the tail cut off (head row included): an anchor vouches for an entry that is not there;
- an anchor rewritten to match, or forged: its signature fails (the key is not in the database);
- anchors deleted as well: the exported copy still has them;
- a sealed refusal edited, removed or slipped in: the seal's SHA-256 over its rows no longer matches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Max

from .anchors import SignedHead, keyring_public_keys, signature_problem
from .chain import GENESIS_HASH, SEAL_EVENT, entry_digest, refusals_digest
from .models import AuditAnchor, AuditChainHead, AuditEntry, AuditRefusal


@dataclass
class ChainBreak:
    entry_id: int
    reason: str


@dataclass
class ChainReport:
    """`checked` entries verified in order before the first break; every problem found, the
    first break of the chain first; `anchors` signed anchors the chain was held against;
    `unsealed` refusals recorded since the last seal (append-only, not yet under the chain)."""

    checked: int = 0
    problems: list[ChainBreak] = field(default_factory=list)
    anchors: int = 0
    unsealed: int = 0


def _head_of(anchor: AuditAnchor) -> SignedHead:
    return SignedHead(seq=anchor.seq, hash=anchor.entry_hash, at=anchor.anchored_at.isoformat(), kid=anchor.kid,
                      sig=anchor.signature)


def _seal_problem(entry: AuditEntry, sealed_before: int) -> str | None:
    data = entry.data
    after, last = data.get("after"), data.get("last")
    if after != sealed_before:
        return f"it seals refusals after #{after}, but the seal before it ended at #{sealed_before}"
    rows = list(AuditRefusal.objects.filter(id__gt=after, id__lte=last).order_by("id"))
    if len(rows) != data.get("count") or refusals_digest(rows) != data.get("sha256"):
        return f"the refusals #{after + 1}..#{last} it seals were changed, removed or added to"
    return None


class _Walk:
    """Entries in id order from `after` (whose hash is `prev_hash`), each link, hash, seal and
    anchored hash checked; stops at the first break of the chain itself."""

    def __init__(self, *, after: int, prev_hash: str, anchored: dict[int, SignedHead]):
        self.last_id, self.prev_hash, self.anchored = after, prev_hash, anchored
        self.checked, self.broken, self.seal_problems = 0, None, []
        previous_seal = AuditEntry.objects.filter(event=SEAL_EVENT, id__lte=after).order_by("-id").first()
        self.sealed_up_to = int(previous_seal.data["last"]) if previous_seal else 0
        self.anchored_below = max((s for s in anchored if s <= after), default=0)

    def run(self, until: int | None = None) -> _Walk:
        entries = AuditEntry.objects.filter(id__gt=self.last_id)
        if until is not None:
            entries = entries.filter(id__lte=until)
        for entry in entries.order_by("id").iterator(chunk_size=2000):
            self.broken = self._check(entry)
            if self.broken is not None:
                return self
            self.last_id, self.prev_hash, self.checked = entry.id, entry.entry_hash, self.checked + 1
        if until is not None and self.last_id < until:
            self.broken = ChainBreak(self.last_id + 1, f"entry #{self.last_id + 1} is missing")
        return self

    def _check(self, entry: AuditEntry) -> ChainBreak | None:
        expected_id = self.last_id + 1
        if entry.id != expected_id:
            return ChainBreak(expected_id, f"entry #{expected_id} is missing")
        if entry.prev_hash != self.prev_hash:
            return ChainBreak(entry.id, "its previous-hash does not match the entry before it")
        digest = entry_digest(prev_hash=self.prev_hash, entry_id=entry.id, created_at=entry.created_at,
                              event=entry.event, actor_ref=entry.actor_ref, subject_type=entry.subject_type,
                              subject_id=entry.subject_id, data=entry.data)
        if digest != entry.entry_hash:
            return ChainBreak(entry.id, "its content does not match its hash")
        anchor = self.anchored.get(entry.id)
        if anchor is not None and anchor.hash != entry.entry_hash:
            return ChainBreak(entry.id, (
                f"its recomputed hash no longer reaches the hash anchored for it at {anchor.at}: an entry in "
                f"#{self.anchored_below + 1}..#{entry.id} was changed and the hashes after it recomputed"))
        if anchor is not None:
            self.anchored_below = entry.id
        if entry.event == SEAL_EVENT:
            problem = _seal_problem(entry, self.sealed_up_to)
            if problem:
                self.seal_problems.append(ChainBreak(entry.id, problem))
            self.sealed_up_to = max(self.sealed_up_to, int(entry.data.get("last") or 0))
        return None


def chain_segment_break(*, since: AuditAnchor | None, until: int) -> ChainBreak | None:
    """The first problem of the chain from the anchor `since` (or the first entry) to entry
    #`until`, or None: what must hold before a new anchor may vouch for the head."""
    if since is None:
        walk = _Walk(after=0, prev_hash=GENESIS_HASH, anchored={}).run(until)
    else:
        anchored = AuditEntry.objects.filter(pk=since.seq).first()
        if anchored is None or anchored.entry_hash != since.entry_hash:
            return ChainBreak(since.seq, f"it no longer has the hash anchored for it at {since.anchored_at.isoformat()}")
        walk = _Walk(after=since.seq, prev_hash=since.entry_hash, anchored={}).run(until)
    return walk.broken or (walk.seal_problems[0] if walk.seal_problems else None)


def _trusted_anchors(exported: tuple[list[SignedHead], dict[str, str]] | None,
                     problems: list[ChainBreak]) -> dict[int, SignedHead]:
    """{seq: anchor} of every anchor whose signature holds; a problem for each one that does not,
    and for each exported anchor the database lost or altered."""
    keyring = keyring_public_keys()
    stored = {a.seq: _head_of(a) for a in AuditAnchor.objects.order_by("seq")}
    trusted = {}
    for head in stored.values():
        problem = signature_problem(head, keyring)
        if problem:
            problems.append(ChainBreak(head.seq, f"the anchor of entry #{head.seq} (signed at {head.at}): {problem}"))
        else:
            trusted[head.seq] = head
    heads, file_keys = exported or ([], {})
    for head in heads:
        problem = signature_problem(head, {**file_keys, **keyring})
        if problem:
            problems.append(ChainBreak(head.seq, f"the exported anchor of entry #{head.seq}: {problem}"))
            continue
        if head.seq not in stored:
            problems.append(ChainBreak(head.seq, (f"the anchor of entry #{head.seq} signed at {head.at} is missing "
                                                  "from the database (the exported copy has it)")))
        elif stored[head.seq] != head:
            problems.append(ChainBreak(head.seq, f"the database's anchor of entry #{head.seq} differs from the "
                                                 "exported copy"))
        trusted[head.seq] = head if head.seq not in trusted or trusted[head.seq] == head else trusted[head.seq]
    return trusted


def _missing_tail(walk: _Walk, trusted: dict[int, SignedHead]) -> ChainBreak | None:
    present = AuditEntry.objects.aggregate(top=Max("id"))["top"] or 0
    if trusted and max(trusted) > present:
        top = trusted[max(trusted)]
        return ChainBreak(present + 1, (f"entries #{present + 1}..#{top.seq} are missing: the anchor signed at "
                                        f"{top.at} vouches for entry #{top.seq}"))
    head = AuditChainHead.objects.filter(pk=1).first()
    if walk.broken is None and head is not None and head.last_entry_id and head.last_entry_id > walk.last_id:
        missing = walk.last_id + 1
        return ChainBreak(missing, f"entry #{missing} is missing (the chain head is at #{head.last_entry_id})")
    return None


def audit_chain_report(*, exported: tuple[list[SignedHead], dict[str, str]] | None = None) -> ChainReport:
    """Check the whole chain, its seals and its anchors (plus `exported`: the anchors and keys of
    an exported anchors document, audit.anchors.anchors_document_parse). Reads in id order, in chunks."""
    anchor_problems: list[ChainBreak] = []
    trusted = _trusted_anchors(exported, anchor_problems)
    walk = _Walk(after=0, prev_hash=GENESIS_HASH, anchored=trusted).run()
    tail = _missing_tail(walk, trusted)
    first = [walk.broken] if walk.broken else []
    others = sorted([*anchor_problems, *walk.seal_problems, *([tail] if tail else [])], key=lambda p: p.entry_id)
    return ChainReport(checked=walk.checked, problems=first + others, anchors=len(trusted),
                       unsealed=AuditRefusal.objects.filter(id__gt=walk.sealed_up_to).count())


def audit_chain_verify(*, exported: tuple[list[SignedHead], dict[str, str]] | None = None
                       ) -> tuple[int, ChainBreak | None]:
    """(entries checked, the first problem or None); see audit_chain_report."""
    report = audit_chain_report(exported=exported)
    return report.checked, (report.problems[0] if report.problems else None)
