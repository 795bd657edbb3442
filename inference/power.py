"""Measured detection power of a model version: does the watermark find its text, and at what cost?

`watermark_power_measure` generates samples from the version itself with the watermark new grants
get (each sample under its own probe key, since power varies from key to key), and the same number
of plain samples. Each watermarked sample is then scored exactly as the verifier scores a pasted
text (decoded, re-tokenised, entropies recomputed without the prompt) at 25 … 200 tokens; the
scored and green counts are kept, so recall can be computed for any number of candidate grants
(the verify page uses the number it tested). The quality cost is the perplexity, under the model
itself, of the watermarked samples against the plain ones.
"""

from __future__ import annotations

import json
import logging
import math
import time

import numpy as np
import torch
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.secrets import watermark_secret, watermark_secrets
from licensing.models import Grant
from licensing.services import grant_watermark_defaults
from training.models import ModelVersion

from .engine import GenerationRequest
from .models import WatermarkPower
from .modelstore import engine_instance, engine_source
from .watermark import (
    DEFAULT_ALPHA,
    DEFAULT_Z_THRESHOLD,
    WatermarkKey,
    WatermarkScheme,
    WatermarkSchemeError,
    binomial_sf,
    scheme_build,
    text_entropies,
    watermark_key_derive,
    z_score,
)

log = logging.getLogger(__name__)

LENGTHS = (25, 50, 75, 100, 150, 200)
CARD_LENGTHS = (50, 100, 200)
ROWS_PER_KEY = 4  # samples per probe key (one request of n rows)
ALPHA = DEFAULT_ALPHA


def family_key(scheme: WatermarkScheme) -> str:
    return json.dumps(scheme.claims(), sort_keys=True, separators=(",", ":"))


def _scheme_new_grants_get() -> WatermarkScheme:
    """The settings' scheme, validated. Raises WatermarkSchemeError."""
    return scheme_build(*grant_watermark_defaults())


def _probe_count() -> int:
    """Probe keys per measurement: WATERMARK_POWER_SAMPLES (default 32) samples, 4 per key."""
    return max(1, settings.WATERMARK_POWER_SAMPLES // ROWS_PER_KEY)


def _probe_keys(version: ModelVersion, scheme: WatermarkScheme) -> list[WatermarkKey]:
    # Keys no grant has (the "grant id" names the probe), derived like real ones.
    secret = watermark_secret(max(watermark_secrets()))
    return [WatermarkKey(watermark_key_derive(secret=secret, grant_id=f"power-probe:{version.pk}:{i}"), scheme)
            for i in range(_probe_count())]


def _generate(loaded, version, source, watermark, seed: int, max_new: int, prompt: str):
    return engine_instance().generate(GenerationRequest(
        **source, prompt=prompt, max_new_tokens=max_new, temperature=1.0,
        n=ROWS_PER_KEY, seed=seed, stop_at_eos=False, watermark=watermark))


def _perplexity(model, prompt_ids: list[int], token_ids: list[int]) -> tuple[float, int]:
    """(sum of NLL in nats, tokens) of `token_ids` after `prompt_ids` under the model (no bias)."""
    ids = torch.tensor([prompt_ids + token_ids], device=next(model.parameters()).device)
    with torch.inference_mode():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
    targets = ids[0, 1:]
    nll = -logp[torch.arange(len(targets)), targets][len(prompt_ids) - 1:]
    return float(nll.sum()), len(token_ids)


def _counts_at_lengths(loaded, tokenizer, text: str, key: WatermarkKey) -> dict[str, list[int]]:
    """What the verifier would count for this text's first L tokens, for each L of LENGTHS."""
    ids, scheme = tokenizer(text)["input_ids"], key.scheme
    entropies = (text_entropies(loaded.model, ids, n_positions=loaded.n_positions,
                                bos_token_id=loaded.eos_token_id or 0) if scheme.needs_entropies else None)
    out = {}
    for length in LENGTHS:
        if len(ids) < length + 1:
            continue
        prefix = ids[:length + 1]  # the first token is context only
        previous, tokens = scheme.scored_pairs(prefix, entropies=None if entropies is None else entropies[:length + 1])
        green = int(scheme.green_counts([key.key], previous=previous, tokens=tokens)[0])
        out[str(length)] = [len(tokens), green]
    return out


def is_detected(scored: int, green: int, *, gamma: float, candidates: int, alpha: float = ALPHA) -> bool:
    """The verifier's rule for a text with these counts among `candidates` keys."""
    return (z_score(green, scored, gamma) > DEFAULT_Z_THRESHOLD
            and binomial_sf(green, scored, gamma) * max(1, candidates) < alpha)


def recall_at(counts: list, *, gamma: float, candidates: int) -> float | None:
    if not counts:
        return None
    return sum(is_detected(n, g, gamma=gamma, candidates=candidates) for n, g in counts) / len(counts)


def _measure(power: WatermarkPower, version: ModelVersion, scheme: WatermarkScheme) -> None:
    folder = engine_source(version)  # the version's folders (an adapter's with its base's)
    engine = engine_instance()
    loaded = engine.load(folder["model_digest"], folder["model_dir"], base_digest=folder.get("base_digest"),
                         base_dir=folder.get("base_dir"))
    tokenizer = loaded.tokenizer
    prompt = tokenizer.eos_token or tokenizer.decode([0])
    prompt_ids = tokenizer(prompt)["input_ids"]
    max_new = min(max(LENGTHS) + 8, loaded.n_positions - len(prompt_ids))
    marked, clean = {str(n): [] for n in LENGTHS}, {str(n): [] for n in LENGTHS}
    nll = {"plain": [0.0, 0], "marked": [0.0, 0]}
    entropies = []
    for i, key in enumerate(_probe_keys(version, scheme)):
        for kind, watermark in (("marked", key), ("plain", None)):
            result = _generate(loaded, version, folder, watermark, seed=1000 + i, max_new=max_new, prompt=prompt)
            for completion in result.completions:
                total, count = _perplexity(loaded.model, result.prompt_token_ids, completion.token_ids)
                nll[kind][0] += total
                nll[kind][1] += count
                found = _counts_at_lengths(loaded, tokenizer, completion.text, key)
                for length, pair in found.items():
                    (marked if kind == "marked" else clean)[length].append(pair)
                if kind == "plain":
                    ids = tokenizer(completion.text)["input_ids"]
                    entropies.extend(text_entropies(loaded.model, ids, n_positions=loaded.n_positions,
                                                    bos_token_id=loaded.eos_token_id or 0).tolist())
    reference = max(1000, Grant.objects.exclude(state=Grant.State.PENDING).count())
    gamma = scheme.gamma
    power.counts = {k: v for k, v in marked.items() if v}
    power.clean_counts = {k: v for k, v in clean.items() if v}
    power.samples = _probe_count() * ROWS_PER_KEY
    power.reference_candidates = reference
    power.recall = {k: recall_at(v, gamma=gamma, candidates=reference) for k, v in power.counts.items()}
    power.perplexity_plain = math.exp(nll["plain"][0] / max(1, nll["plain"][1]))
    power.perplexity_watermarked = math.exp(nll["marked"][0] / max(1, nll["marked"][1]))
    power.mean_entropy = float(np.mean(entropies)) if entropies else None


def watermark_power_measure(*, version_id, force: bool = False) -> WatermarkPower:
    """Measure (or re-measure with `force`) the detection power of a model version under the
    watermark new grants get; returns the stored figures. A duplicate call while one runs, or
    once it is done without `force`, returns the existing row (tasks may be delivered twice).
    Raises ModelVersion.DoesNotExist; a measurement that fails is stored as failed with its error."""
    version = ModelVersion.objects.get(pk=version_id)
    scheme = _scheme_new_grants_get()
    with transaction.atomic():
        power, created = WatermarkPower.objects.select_for_update().get_or_create(
            model_version=version, params_key=family_key(scheme),
            defaults={"scheme": scheme.name, "params": scheme.params()})
        if not created and not force and power.state in (WatermarkPower.State.DONE, WatermarkPower.State.RUNNING):
            return power
        WatermarkPower.objects.filter(pk=power.pk).update(state=WatermarkPower.State.RUNNING, error="")
    started = time.monotonic()
    try:
        _measure(power, version, scheme)
    except Exception as exc:  # noqa: BLE001 - recorded on the row; the card says it failed
        log.exception("watermark power of %s failed", version.pk)
        WatermarkPower.objects.filter(pk=power.pk).update(state=WatermarkPower.State.FAILED, error=str(exc)[:2000])
        power.refresh_from_db()
        return power
    power.state, power.measured_at, power.seconds = WatermarkPower.State.DONE, timezone.now(), time.monotonic() - started
    power.save()
    return power


# --- Reads ------------------------------------------------------------------------------------

def watermark_power_current(version: ModelVersion) -> WatermarkPower | None:
    """The figures of the version for the watermark new grants get (what a buyer gets), if measured."""
    return WatermarkPower.objects.filter(model_version=version, params_key=family_key(_scheme_new_grants_get())).first()


def watermark_power_summary(version: ModelVersion) -> dict | None:
    """For the model card and listing: recall at 50/100/200 tokens and the perplexity cost."""
    power = watermark_power_current(version)
    if power is None:
        return None
    rows = [{"tokens": n, "recall": power.recall.get(str(n))} for n in CARD_LENGTHS]
    return {"state": power.state, "rows": rows, "samples": power.samples, "scheme": power.scheme,
            "params": power.params, "description": _power_scheme(power).describe(),
            "candidates": power.reference_candidates,
            "perplexity_plain": power.perplexity_plain, "perplexity_watermarked": power.perplexity_watermarked,
            "perplexity_cost": power.perplexity_cost, "mean_entropy": power.mean_entropy,
            "measured_at": power.measured_at, "error": power.error}


def _power_scheme(power: WatermarkPower) -> WatermarkScheme:
    # Rows are written from a validated scheme only (watermark_power_measure).
    return scheme_build(power.scheme, power.params)


def _matching_power(version_id: str, scheme: WatermarkScheme) -> WatermarkPower | None:
    """A measurement of the version under the scheme's family (delta aside: it is the grants')."""
    for power in WatermarkPower.objects.filter(model_version_id=version_id, scheme=scheme.name,
                                               state=WatermarkPower.State.DONE):
        try:
            if _power_scheme(power).family == scheme.family:
                return power
        except WatermarkSchemeError:  # a scheme this server no longer implements
            continue
    return None


def detection_power_for_scan(*, groups, versions: dict, text_tokens: int, candidates: int, alpha: float) -> list[dict]:
    """For a scan that found nothing: per candidate model (and key family), how often text of this
    length from it is detected among this many candidates (measured at the longest measured length
    not above the text's; None where the model was never measured)."""
    out, seen = [], set()
    for group in groups:
        gamma = group.scheme.gamma
        if (group.version_id, group.scheme.family) in seen:
            continue
        seen.add((group.version_id, group.scheme.family))
        version = versions[group.version_id]
        power = _matching_power(group.version_id, group.scheme)
        listing = getattr(version, "listing", None)
        entry = {"model_version": group.version_id, "model_name": listing.title if listing else version.name,
                 "text_tokens": text_tokens, "measured_tokens": None, "recall": None, "samples": 0}
        if power is not None:
            lengths = sorted(int(n) for n in power.counts)
            fitting = [n for n in lengths if n <= text_tokens]
            if fitting:
                length = fitting[-1]
                counts = power.counts[str(length)]
                entry.update(measured_tokens=length, samples=len(counts),
                             recall=recall_at(counts, gamma=gamma, candidates=candidates))
            elif lengths:
                entry.update(measured_tokens=lengths[0], samples=len(power.counts[str(lengths[0])]),
                             recall=recall_at(power.counts[str(lengths[0])], gamma=gamma, candidates=candidates),
                             shorter_than_measured=True)
        entry["message"] = _power_message(entry)
        out.append(entry)
    return out


def _power_message(entry: dict) -> str:
    if entry["recall"] is None:
        return f"The detection power of {entry['model_name']} has not been measured yet."
    return (f"Text of {entry['measured_tokens']} tokens from {entry['model_name']} is detected "
            f"{entry['recall']:.0%} of the time.")
