"""Verification of a text: its receipt (if given) and a watermark scan over every grant's key.

The scan tokenizes the text with each model version's tokenizer and tests the keys of that version's
grants, each with the watermark parameters stored on the grant (those it generated with); the best
match's p-value is multiplied by the number of keys tested in total (Bonferroni), so a platform with
many grants does not see chance matches.
"""

from __future__ import annotations

from collections import defaultdict

from licensing.models import Grant
from licensing.selectors import grant_licence_stamp

from .modelstore import ModelIntegrityError, tokenizer_for
from .receipts import receipt_verify
from .selectors import grant_watermark_key
from .watermark import DEFAULT_Z_THRESHOLD, detect_any

# Tokens of text the verify page asks for. Measured on the (briefly trained) tiny model with bias 2.0,
# gamma 0.25, temperature 1, 16 samples: z stays above 4 from a median of 25 generated tokens, 50 for
# 15 of 16 and 57 for the worst (tests/inference/test_watermark.py), so the page asks for 60.
MIN_TOKENS = 60
ALPHA = 1e-3  # family-wise false-positive rate after the Bonferroni correction


def _grants_by_version():
    by_version = defaultdict(list)
    for grant in Grant.objects.select_related("model_version", "terms").exclude(state=Grant.State.PENDING):
        by_version[grant.model_version].append(grant)
    return by_version


def _keys_by_gamma(grants) -> dict[float, dict[int, Grant]]:
    """{gamma: {key: grant}}: each grant is tested with the parameters it generated with."""
    groups: dict[float, dict[int, Grant]] = defaultdict(dict)
    for grant in grants:
        key = grant_watermark_key(grant)
        if key is not None:  # a scheme this server does not implement cannot be tested
            groups[key.gamma][key.key] = grant
    return groups


def watermark_scan(text: str) -> dict:
    """Best-matching grant for `text` with z, p and the corrected p. Never raises for a model whose
    files are unavailable: it is skipped and listed."""
    best, total_keys, skipped, text_tokens = None, 0, [], 0
    for version, grants in _grants_by_version().items():
        try:
            ids = tokenizer_for(version)(text)["input_ids"]
        except (OSError, ModelIntegrityError):
            skipped.append(str(version.pk))
            continue
        text_tokens = max(text_tokens, len(ids) - 1)  # the first token is context only
        for gamma, keys in _keys_by_gamma(grants).items():
            found = detect_any(ids, keys, gamma=gamma)
            total_keys += len(keys)
            if found.best and (best is None or found.best.p_value < best[0].p_value):
                best = (found.best, keys[found.best.key], gamma)
    result = {"detected": False, "candidates": total_keys, "text_tokens": text_tokens, "min_tokens": MIN_TOKENS,
              "too_short": text_tokens < MIN_TOKENS, "skipped_models": skipped, "z_threshold": DEFAULT_Z_THRESHOLD}
    if best is None:
        return result
    detection, grant, gamma = best
    adjusted = min(1.0, detection.p_value * total_keys)
    detected = detection.z_score > DEFAULT_Z_THRESHOLD and adjusted < ALPHA
    result.update({"z_score": round(detection.z_score, 3), "p_value": detection.p_value,
                   "adjusted_p_value": adjusted, "scored_tokens": detection.scored_tokens,
                   "green_tokens": detection.green_tokens, "gamma": gamma, "detected": detected})
    if detected:
        result.update({"grant_id": str(grant.pk), "model_version": str(grant.model_version_id),
                       "model_digest": grant.model_version.digest, "licence": grant_licence_stamp(grant)})
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
