"""Verification of a text: its receipt (if given) and a watermark scan over every grant's key.

The scan, built to stay well under a second at 100,000 grants:
- the candidates (every grant that ever generated: all but pending ones) are read once into an
  in-process table of 64-bit keys grouped by model version and key family (the scheme with the
  parameters that decide its green test and scored positions), and read again only when the set of
  grants changed;
- the text is tokenized once per distinct tokenizer (versions fine-tuned from one base share it);
- a scheme that scores by entropy (`needs_entropies`, as `sweet`) needs the model's entropy at each
  position: computed once per model version with its weights by the entropy pass
  (inference.entropy_pass: on an `inference` worker in production, never in the web process),
  bounded in tokens, versions and time; a version it could not run for is reported as not scanned
  (`incomplete_models`) instead of guessed;
- all keys of a group are scored in one vectorised pass (`WatermarkScheme.detect_best`).

The best match's p-value (an exact binomial tail for green-list schemes, an exact Gamma tail for
`gumbel`) is multiplied by the number of keys tested in
total (Bonferroni), so a platform with many grants does not see chance matches; a text is called
watermarked only with z above 4 and a corrected p below ALPHA. When nothing is found, the result
says how often text of that length from each candidate model is detected (`power`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db.models import Count, Max, Q

from core.secrets import watermark_secrets
from licensing.models import Grant
from licensing.selectors import grant_licence_stamp
from training.models import ModelVersion

from .entropy_pass import EntropyPass, entropy_pass_run
from .modelstore import ModelIntegrityError, tokenizer_for
from .receipts import receipt_verify
from .watermark import (
    DEFAULT_ALPHA,
    DEFAULT_Z_THRESHOLD,
    Scheme,
    WatermarkSchemeError,
    detected,
    watermark_key_build,
)

# Tokens of text the verify page asks for; shorter texts are tested too, but a miss says little.
MIN_TOKENS = 60
ALPHA = DEFAULT_ALPHA  # family-wise false-positive rate after the Bonferroni correction


@dataclass
class KeyGroup:
    """The keys of one model version's grants that share a key family (scored together)."""

    version_id: str
    scheme: Scheme  # the first key's; every key of the group scores alike
    keys: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    grant_ids: list[str] = field(default_factory=list)


@dataclass
class CandidateTable:
    """Every candidate grant's key, grouped. Grants only ever join the candidates (a grant's key,
    scheme and parameters never change once it exists, and a revoked grant stays a candidate), so
    the table grows by the grants created or activated since it was last read."""

    fingerprint: tuple = (0, None, None)
    groups: dict = field(default_factory=dict)  # (version id, family) -> KeyGroup
    known: set = field(default_factory=set)

    @property
    def total(self) -> int:
        return len(self.known)

    def add(self, rows) -> None:
        secrets, grouped = watermark_secrets(), {}
        for pk, version_id, scheme, params, secret_version in rows:
            pk = str(pk)
            if pk in self.known:
                continue
            secret = secrets.get(secret_version)
            try:
                key = secret and watermark_key_build(scheme=scheme, params=params or {}, secret=secret, grant_id=pk)
            except WatermarkSchemeError:
                key = None
            if not key:  # a scheme or secret this server lacks cannot be tested
                continue
            ids, keys, _ = grouped.setdefault((str(version_id), key.scheme.family), ([], [], key.scheme))
            ids.append(pk)
            keys.append(key.key)
            self.known.add(pk)
        for index, (ids, keys, scheme) in grouped.items():
            group = self.groups.setdefault(index, KeyGroup(version_id=index[0], scheme=scheme))
            group.keys = np.concatenate([group.keys, np.array(keys, dtype=np.uint64)])
            group.grant_ids.extend(ids)


_table = CandidateTable()
_table_lock = threading.Lock()
_COLUMNS = ("pk", "model_version_id", "watermark_scheme", "watermark_params", "watermark_secret_version")


def _candidates():
    return Grant.objects.exclude(state=Grant.State.PENDING)


def _grants_fingerprint() -> tuple:
    """Changes whenever a grant joins the candidates (created non-pending, or activated)."""
    agg = _candidates().aggregate(n=Count("pk"), activated=Max("activated_at"), created=Max("created_at"))
    return agg["n"], agg["activated"], agg["created"]


def candidate_table() -> CandidateTable:
    """The keys of every candidate grant: read in full once per process, then only the grants that
    joined since (by creation or activation time); read in full again if the count disagrees."""
    global _table
    fingerprint = _grants_fingerprint()
    with _table_lock:
        if _table.fingerprint == fingerprint:
            return _table
        _, activated, created = _table.fingerprint
        if _table.known and (activated or created):
            fresh = _candidates().filter(Q(activated_at__gte=activated) | Q(created_at__gte=created))
            _table.add(fresh.values_list(*_COLUMNS))
        if len(_table.known) != fingerprint[0]:  # e.g. a grant deleted, or a scheme dropped: start over
            _table = CandidateTable()
            _table.add(_candidates().values_list(*_COLUMNS).iterator(chunk_size=10_000))
        _table.fingerprint = fingerprint
        return _table


def _tokenizer_identity(version: ModelVersion) -> str:
    """Versions whose tokenizer files are identical tokenize alike: the text is encoded once."""
    for entry in version.files or []:
        if entry.get("name") == "tokenizer.json":
            return entry["sha256"]
    return version.digest


# Characters read per token wanted when only a text's first tokens are scored: BPE tokens of
# ordinary text average ~4 characters, so 8 give the bound's tokens while the web tokenizes a
# bounded prefix (16k characters at 2,048 tokens) of even the longest text; a text of unusually long
# tokens is scored over fewer (`entropy_tokens` says how many).
_CHARS_PER_TOKEN_READ = 8


class _TextView:
    """The text as each model version sees it: ids per tokenizer (all of them, or the first ones
    only for schemes that score by entropy), entropies per version (from the entropy pass)."""

    def __init__(self, text: str):
        self.text = text
        self._ids: dict[str, list[int]] = {}
        self._heads: dict[str, list[int]] = {}
        self.entropy = EntropyPass()

    def ids(self, version: ModelVersion) -> list[int]:
        identity = _tokenizer_identity(version)
        if identity not in self._ids:
            self._ids[identity] = tokenizer_for(version)(self.text)["input_ids"]
        return self._ids[identity]

    def head_ids(self, version: ModelVersion) -> list[int]:
        """The text's first VERIFICATION_ENTROPY_MAX_TOKENS ids, tokenizing only a prefix of it."""
        identity, limit = _tokenizer_identity(version), int(settings.VERIFICATION_ENTROPY_MAX_TOKENS)
        if identity in self._ids:
            return self._ids[identity][:limit]
        if identity not in self._heads:
            if len(self.text) <= limit * _CHARS_PER_TOKEN_READ:
                head = self.ids(version)
            else:  # the prefix's last token may be a word cut in two: drop it
                head = tokenizer_for(version)(self.text[:limit * _CHARS_PER_TOKEN_READ])["input_ids"][:-1]
            self._heads[identity] = head[:limit]
        return self._heads[identity]

    def token_count(self) -> tuple[int, bool]:
        """(tokens in the text as its models' tokenizers count them, the most of any, and whether
        that is the whole text): a text only ever read in part (a long one scored by entropy) is
        counted up to the prefix read."""
        if self._ids:
            return max(len(ids) for ids in self._ids.values()), True
        return max((len(ids) for ids in self._heads.values()), default=0), not self._heads

    def scored_ids(self, version: ModelVersion, scheme: Scheme) -> list[int]:
        return self.head_ids(version) if scheme.needs_entropies else self.ids(version)

    def entropies_fetch(self, groups: list[KeyGroup], versions: dict[str, ModelVersion]) -> list[str]:
        """Run the entropy pass for every version with a group that needs it; returns the versions
        whose tokenizer files were unavailable (skipped before any pass)."""
        requests, skipped = {}, []
        for group in groups:
            version = versions.get(group.version_id)
            if version is None or not group.scheme.needs_entropies or group.version_id in requests:
                continue
            try:
                requests[group.version_id] = self.head_ids(version)
            except (OSError, ModelIntegrityError):
                skipped.append(group.version_id)
        self.entropy = entropy_pass_run(requests)
        return skipped + self.entropy.skipped


def _score_group(view: _TextView, version: ModelVersion, group: KeyGroup):
    """The group's best detection, or raises _NotScanned when its entropies did not come back."""
    scheme, ids = group.scheme, view.scored_ids(version, group.scheme)
    entropies = None
    if scheme.needs_entropies:
        entropies = view.entropy.entropies.get(group.version_id)
        if entropies is None:
            raise _NotScanned
        ids = ids[:len(entropies)]
    previous, tokens = scheme.scored_pairs(ids, entropies=entropies)
    return scheme.detect_best(previous, tokens, group.keys)


class _NotScanned(Exception):
    """A group whose entropy pass did not run in time or within the bounds."""


def watermark_scan(text: str) -> dict:
    """Best-matching grant for `text` with z, p and the corrected p; when none is detected, the
    detection power for this length for each candidate model. Never raises for a model whose files
    are unavailable (listed in `skipped_models`) or whose entropy pass could not run in time or
    within its bounds (listed in `incomplete_models`): its grants are not tested."""
    table = candidate_table()
    groups = list(table.groups.values())
    versions = ModelVersion.objects.in_bulk({g.version_id for g in groups}, field_name="pk")
    versions = {str(pk): v for pk, v in versions.items()}
    view = _TextView(text)
    skipped = view.entropies_fetch(groups, versions)
    best, tested, text_tokens, scanned = None, 0, 0, []
    for group in groups:
        version = versions.get(group.version_id)
        if version is None or group.version_id in skipped:
            continue
        try:
            # The first token is context only.
            text_tokens = max(text_tokens, len(view.scored_ids(version, group.scheme)) - 1)
            found = _score_group(view, version, group)
        except (OSError, ModelIntegrityError):
            skipped.append(group.version_id)
            continue
        except _NotScanned:
            continue
        tested += len(group.keys)
        scanned.append(group)
        if found and (best is None or found.p_value < best[0].p_value):
            best = (found, group)
    result = _scan_result(best, tested, skipped, text_tokens, scanned, versions)
    result["incomplete_models"] = view.entropy.incomplete
    result["entropy_tokens"] = max((len(e) for e in view.entropy.entropies.values()), default=0)
    # `text_tokens` counts the scored tokens (the first is context only); people read the whole count.
    result["text_token_count"], result["text_token_count_exact"] = view.token_count()
    return result


def _scan_result(best, tested, skipped, text_tokens, scanned, versions) -> dict:
    result = {"detected": False, "candidates": tested, "text_tokens": text_tokens, "min_tokens": MIN_TOKENS,
              "too_short": text_tokens < MIN_TOKENS, "skipped_models": skipped, "z_threshold": DEFAULT_Z_THRESHOLD,
              "alpha": ALPHA}
    if best is not None:
        detection, group = best
        found = detected(detection, candidates=tested, alpha=ALPHA)
        result.update({"z_score": round(detection.z_score, 3), "p_value": detection.p_value,
                       "adjusted_p_value": min(1.0, detection.p_value * tested),
                       "scored_tokens": detection.scored_tokens, "green_tokens": detection.green_tokens,
                       "score": detection.score, "scheme": group.scheme.name,
                       "gamma": getattr(group.scheme, "gamma", None), "detected": found})
        if found:
            grant = (Grant.objects.select_related("model_version", "terms")
                     .get(pk=group.grant_ids[int(np.flatnonzero(group.keys == np.uint64(detection.key))[0])]))
            result.update({"grant_id": str(grant.pk), "model_version": str(grant.model_version_id),
                           "model_digest": grant.model_version.digest, "licence": grant_licence_stamp(grant)})
            return result
    from .power import detection_power_for_scan

    result["power"] = detection_power_for_scan(
        groups=scanned, versions=versions, text_tokens=text_tokens, candidates=tested, alpha=ALPHA)
    return result


def verification_run(*, text: str, receipt: str | None = None, prompt: str | None = None) -> dict:
    """The verdict on a text: receipt check (which check fails, if any) and watermark scan."""
    out: dict = {"receipt": None, "watermark": watermark_scan(text)}
    if receipt:
        check = receipt_verify(jws=receipt, text=text, prompt=prompt)
        out["receipt"] = {"valid": check.valid, "reason": check.reason, "message": check.message,
                          "kid": check.kid,
                          "claims": check.claims if check.reason in ("ok", "text_altered", "prompt_altered") else None}
    out["verdict"] = _verdict(out)
    return out


def _verdict(out: dict) -> str:
    receipt, mark = out["receipt"], out["watermark"]
    if receipt and receipt["valid"]:
        return "receipt_valid"
    if mark["detected"]:
        return "watermark_detected"
    if receipt:
        return f"receipt_{receipt['reason']}"
    if mark["incomplete_models"]:
        return "scan_incomplete"  # a miss among the versions scanned says nothing of the others
    return "too_short" if mark["too_short"] else "no_evidence"
