"""Verification of a text: its receipt (if given) and a watermark scan over every grant's key.

The scan, built to stay well under a second at 100,000 grants:
- the candidates (every grant that ever generated: all but pending ones) are read once into an
  in-process table of 64-bit keys grouped by model version and key family (the scheme with the
  parameters that decide its green test and scored positions), and read again only when the set of
  grants changed;
- the text is tokenized once per distinct tokenizer (versions fine-tuned from one base share it);
- a scheme that scores by entropy (`sweet`) needs the model's entropy at each position: computed once per model
  version with its weights, whatever the number of its grants;
- all keys of a group are scored in one vectorised pass (`WatermarkScheme.detect_best`).

The best match's p-value (an exact binomial tail) is multiplied by the number of keys tested in
total (Bonferroni), so a platform with many grants does not see chance matches; a text is called
watermarked only with z above 4 and a corrected p below ALPHA. When nothing is found, the result
says how often text of that length from each candidate model is detected (`power`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
from django.db.models import Count, Max, Q

from core.secrets import watermark_secrets
from licensing.models import Grant
from licensing.selectors import grant_licence_stamp
from training.models import ModelVersion

from .modelstore import ModelIntegrityError, engine_instance, model_folder_fetch, tokenizer_for
from .receipts import receipt_verify
from .watermark import (
    DEFAULT_ALPHA,
    DEFAULT_Z_THRESHOLD,
    WatermarkScheme,
    WatermarkSchemeError,
    detected,
    text_entropies,
    watermark_key_build,
)

# Tokens of text the verify page asks for; shorter texts are tested too, but a miss says little.
MIN_TOKENS = 60
ALPHA = DEFAULT_ALPHA  # family-wise false-positive rate after the Bonferroni correction


@dataclass
class KeyGroup:
    """The keys of one model version's grants that share a key family (scored together)."""

    version_id: str
    scheme: WatermarkScheme  # the first key's; every key of the group scores alike
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


class _TextView:
    """The text as each model version sees it: ids per tokenizer, entropies per model."""

    def __init__(self, text: str, versions: dict[str, ModelVersion]):
        self.text, self.versions = text, versions
        self._ids: dict[str, list[int]] = {}
        self._entropies: dict[str, np.ndarray] = {}

    def ids(self, version: ModelVersion) -> list[int]:
        identity = _tokenizer_identity(version)
        if identity not in self._ids:
            self._ids[identity] = tokenizer_for(version)(self.text)["input_ids"]
        return self._ids[identity]

    def entropies(self, version: ModelVersion) -> np.ndarray:
        if version.digest not in self._entropies:
            loaded = engine_instance().load(version.digest, model_folder_fetch(version))
            self._entropies[version.digest] = text_entropies(
                loaded.model, self.ids(version), n_positions=loaded.n_positions,
                bos_token_id=loaded.eos_token_id if loaded.eos_token_id is not None else 0)
        return self._entropies[version.digest]


def _score_group(view: _TextView, version: ModelVersion, group: KeyGroup):
    scheme = group.scheme
    entropies = view.entropies(version) if scheme.needs_entropies else None
    previous, tokens = scheme.scored_pairs(view.ids(version), entropies=entropies)
    return scheme.detect_best(previous, tokens, group.keys)


def watermark_scan(text: str) -> dict:
    """Best-matching grant for `text` with z, p and the corrected p; when none is detected, the
    detection power for this length for each candidate model. Never raises for a model whose files
    are unavailable: it is skipped and listed."""
    table = candidate_table()
    groups = list(table.groups.values())
    versions = ModelVersion.objects.in_bulk({g.version_id for g in groups}, field_name="pk")
    versions = {str(pk): v for pk, v in versions.items()}
    view, best, tested, skipped, text_tokens, scanned = _TextView(text, versions), None, 0, [], 0, []
    for group in groups:
        version = versions.get(group.version_id)
        if version is None or group.version_id in skipped:
            continue
        try:
            found = _score_group(view, version, group)
            text_tokens = max(text_tokens, len(view.ids(version)) - 1)  # the first token is context only
        except (OSError, ModelIntegrityError):
            skipped.append(group.version_id)
            continue
        tested += len(group.keys)
        scanned.append(group)
        if found and (best is None or found.p_value < best[0].p_value):
            best = (found, group)
    return _scan_result(best, tested, skipped, text_tokens, scanned, versions)


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
                       "scheme": group.scheme.name, "gamma": group.scheme.gamma, "detected": found})
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
    return "too_short" if mark["too_short"] else "no_evidence"
