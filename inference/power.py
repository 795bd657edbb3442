"""Measured detection power of a model version: does the watermark find its text, and at what cost?

`watermark_power_measure` generates samples from the version itself under each candidate watermark
(WATERMARK_CANDIDATES; each sample under its own probe key, since power varies from key to key, at
temperature 1 and, on half the keys, 0.7), and plain samples once. Each watermarked sample is then
scored exactly as the verifier scores a pasted text (decoded, re-tokenised, entropies recomputed
without the prompt) at 25 … 200 tokens; the scored count and the key's statistic are kept, so
recall can be computed for any number of candidate grants (the verify page uses the number it
tested). The quality cost is the perplexity, under the model itself, of the watermarked samples
against the plain ones. The candidate that meets the recall goal at the least cost is chosen
(inference.watermark.choice) and stored on the version: its new grants get it.
"""

from __future__ import annotations

import json
import logging
import math
import time

import numpy as np
import torch
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from audit.services import audit_append
from core.secrets import watermark_secret, watermark_secrets
from licensing.models import Grant
from licensing.services import grant_watermark_defaults
from training.models import ModelVersion

from .engine import GenerationRequest
from .models import WatermarkPower
from .modelstore import engine_instance, engine_source
from .watermark import (
    DEFAULT_ALPHA,
    SCHEMES,
    Scheme,
    WatermarkKey,
    WatermarkSchemeError,
    scheme_build,
    text_entropies,
    watermark_key_derive,
)
from .watermark.choice import GOAL_TOKENS, RECALL_GOAL, Measured, watermark_pick

log = logging.getLogger(__name__)

LENGTHS = (25, 50, 75, 100, 150, 200)
CARD_LENGTHS = (50, 100, 200)
ROWS_PER_KEY = 4  # samples per probe key (one request of n rows)
ALPHA = DEFAULT_ALPHA


def family_key(scheme: Scheme) -> str:
    return json.dumps(scheme.claims(), sort_keys=True, separators=(",", ":"))


def _scheme_new_grants_get(version: ModelVersion | None = None) -> Scheme:
    """The scheme new grants on `version` get (its chosen one, or the settings'), validated.
    Raises WatermarkSchemeError."""
    return scheme_build(*grant_watermark_defaults(version))


def _candidates(version: ModelVersion) -> list[Scheme]:
    """The schemes measured on a version: WATERMARK_CANDIDATES, and the settings' scheme when it is
    pinned (its figures are then the ones the card shows), each family once."""
    schemes = [scheme_build(c["scheme"], {k: v for k, v in c.items() if k != "scheme"})
               for c in settings.WATERMARK_CANDIDATES]
    if settings.WATERMARK_SCHEME_PINNED or not schemes:
        schemes.append(_scheme_new_grants_get())
    unique = {family_key(s): s for s in schemes}
    return list(unique.values())


def _probe_count() -> int:
    """Probe keys per measurement: WATERMARK_POWER_SAMPLES (default 32) samples, 4 per key."""
    return max(1, settings.WATERMARK_POWER_SAMPLES // ROWS_PER_KEY)


def _probe_keys(version: ModelVersion, scheme: Scheme) -> list[WatermarkKey]:
    # Keys no grant has (the "grant id" names the probe), derived like real ones.
    secret = watermark_secret(max(watermark_secrets()))
    return [WatermarkKey(watermark_key_derive(secret=secret, grant_id=f"power-probe:{version.pk}:{i}"), scheme)
            for i in range(_probe_count())]


def _generate(source, watermark, seed: int, max_new: int, prompt: str, temperature: float = 1.0):
    return engine_instance().generate(GenerationRequest(
        **source, prompt=prompt, max_new_tokens=max_new, temperature=temperature,
        n=ROWS_PER_KEY, seed=seed, stop_at_eos=False, watermark=watermark))


def _perplexity(model, prompt_ids: list[int], token_ids: list[int]) -> tuple[float, int]:
    """(sum of NLL in nats, tokens) of `token_ids` after `prompt_ids` under the model (no bias)."""
    ids = torch.tensor([prompt_ids + token_ids], device=next(model.parameters()).device)
    with torch.inference_mode():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
    targets = ids[0, 1:]
    nll = -logp[torch.arange(len(targets)), targets][len(prompt_ids) - 1:]
    return float(nll.sum()), len(token_ids)


class _Texts:
    """What the verifier sees of a sample (re-tokenised ids, entropies without the prompt), computed
    once per text whatever the number of schemes scoring it."""

    def __init__(self, loaded, model):
        self.loaded, self.model, self._ids, self._entropies = loaded, model, {}, {}

    def ids(self, text: str) -> list[int]:
        if text not in self._ids:
            self._ids[text] = self.loaded.tokenizer(text)["input_ids"]
        return self._ids[text]

    def entropies(self, text: str) -> np.ndarray:
        if text not in self._entropies:
            loaded = self.loaded
            self._entropies[text] = text_entropies(self.model, self.ids(text), n_positions=loaded.n_positions,
                                                   bos_token_id=loaded.eos_token_id or 0)
        return self._entropies[text]

    def counts(self, text: str, key: WatermarkKey, lengths=LENGTHS) -> dict[str, list]:
        """What the verifier would compute for this text's first L tokens, for each L of `lengths`:
        [scored pairs, the key's statistic]."""
        ids, scheme = self.ids(text), key.scheme
        entropies = self.entropies(text) if scheme.needs_entropies else None
        out = {}
        for length in lengths:
            if len(ids) < length + 1:
                continue
            prefix = ids[:length + 1]  # the first token is context only
            previous, tokens = scheme.scored_pairs(prefix, entropies=None if entropies is None else entropies[:length + 1])
            score = scheme.scores([key.key], previous=previous, tokens=tokens)[0]
            out[str(length)] = [len(tokens), int(score) if float(score).is_integer() else float(score)]
        return out


def recall_at(counts: list, *, scheme: Scheme, candidates: int) -> float | None:
    """Share of the samples whose statistic the verifier calls watermarked among `candidates` keys."""
    if not counts:
        return None
    return sum(scheme.is_detected(n, score, candidates=candidates, alpha=ALPHA) for n, score in counts) / len(counts)


def _measure_all(version: ModelVersion, schemes: list[Scheme]) -> list[dict]:
    """Samples of the version, plain (once) and under each scheme (at temperature 1, and half as many
    at 0.7), scored as the verifier scores them: one dict of figures per scheme."""
    folder = engine_source(version)  # the version's folders (an adapter's with its base's)
    probes = [(scheme, _probe_keys(version, scheme)) for scheme in schemes]
    # Perplexity and entropies under the model itself: an adapter applied to its base, as served
    # (on a thread of the engine's choosing; no database work in there).
    return engine_instance().measure(
        lambda loaded, model: _measure_on(loaded, model, folder, probes), folder["model_digest"],
        folder["model_dir"], base_digest=folder.get("base_digest"), base_dir=folder.get("base_dir"))


def _measure_on(loaded, model, folder: dict, probes: list[tuple[Scheme, list[WatermarkKey]]]) -> list[dict]:
    """`_measure_all`'s samples and figures, with the model as served, for each (scheme, its probe keys)."""
    tokenizer, texts = loaded.tokenizer, _Texts(loaded, model)
    prompt = tokenizer.eos_token or tokenizer.decode([0])
    prompt_ids = tokenizer(prompt)["input_ids"]
    max_new = min(max(LENGTHS) + 8, loaded.n_positions - len(prompt_ids))
    plain, plain_nll = [], [0.0, 0]
    for i in range(_probe_count()):
        for completion in _generate(folder, None, 1000 + i, max_new, prompt).completions:
            plain.append(completion.text)
            total, count = _perplexity(model, prompt_ids, completion.token_ids)
            plain_nll[0], plain_nll[1] = plain_nll[0] + total, plain_nll[1] + count
    entropies = [e for text in plain for e in texts.entropies(text).tolist()]
    out = []
    for scheme, keys in probes:
        marked, clean, cool, nll = {}, {}, {}, [0.0, 0]
        for i, key in enumerate(keys):
            for completion in _generate(folder, key, 1000 + i, max_new, prompt).completions:
                total, count = _perplexity(model, prompt_ids, completion.token_ids)
                nll[0], nll[1] = nll[0] + total, nll[1] + count
                for length, pair in texts.counts(completion.text, key).items():
                    marked.setdefault(length, []).append(pair)
            for text in plain[i * ROWS_PER_KEY:(i + 1) * ROWS_PER_KEY]:
                for length, pair in texts.counts(text, key).items():
                    clean.setdefault(length, []).append(pair)
            if i % 2 == 0:  # the customers' cooler setting, on half the keys: bounded cost
                for completion in _generate(folder, key, 2000 + i, max_new, prompt, 0.7).completions:
                    for length, pair in texts.counts(completion.text, key, (max(LENGTHS),)).items():
                        cool.setdefault(length, []).append(pair)
        out.append({"scheme": scheme, "counts": marked, "clean_counts": clean, "cool_counts": cool,
                    "perplexity_plain": math.exp(plain_nll[0] / max(1, plain_nll[1])),
                    "perplexity_watermarked": math.exp(nll[0] / max(1, nll[1])),
                    "mean_entropy": float(np.mean(entropies)) if entropies else None})
    return out


def _store(power: WatermarkPower, figures: dict, reference: int) -> None:
    scheme = figures["scheme"]
    power.counts, power.clean_counts, power.cool_counts = figures["counts"], figures["clean_counts"], figures["cool_counts"]
    power.samples = _probe_count() * ROWS_PER_KEY
    power.reference_candidates = reference
    power.recall = {k: recall_at(v, scheme=scheme, candidates=reference) for k, v in power.counts.items()}
    power.perplexity_plain = figures["perplexity_plain"]
    power.perplexity_watermarked = figures["perplexity_watermarked"]
    power.mean_entropy = figures["mean_entropy"]
    power.state, power.measured_at, power.error = WatermarkPower.State.DONE, timezone.now(), ""
    power.save()


def _claim(version: ModelVersion, schemes: list[Scheme], force: bool) -> list[WatermarkPower] | None:
    """The rows to measure, marked running; None when every candidate is measured or being
    measured (and not `force`): a duplicate task exits quietly."""
    with transaction.atomic():
        rows = [WatermarkPower.objects.select_for_update().get_or_create(
            model_version=version, params_key=family_key(scheme),
            defaults={"scheme": scheme.name, "params": scheme.params()}) for scheme in schemes]
        busy = (WatermarkPower.State.DONE, WatermarkPower.State.RUNNING)
        if not force and all(not created and power.state in busy for power, created in rows):
            return None
        WatermarkPower.objects.filter(pk__in=[p.pk for p, _ in rows]).update(state=WatermarkPower.State.RUNNING, error="")
    return [power for power, _ in rows]


def _choose(version: ModelVersion, rows: list[WatermarkPower]) -> WatermarkPower | None:
    """Mark the candidate that meets the recall goal at the least cost (and nothing else) chosen,
    and store it on the version for its new grants."""
    by_label = {str(p.pk): p for p in rows if p.state == WatermarkPower.State.DONE}
    pick = watermark_pick([Measured(pk, p.recall.get(str(GOAL_TOKENS)), p.perplexity_cost)
                           for pk, p in by_label.items()])
    if pick is None:
        return None
    chosen = by_label[pick.label]
    with transaction.atomic():
        WatermarkPower.objects.filter(model_version=version).exclude(pk=chosen.pk).update(chosen=False)
        WatermarkPower.objects.filter(pk=chosen.pk).update(chosen=True)
        ModelVersion.objects.filter(pk=version.pk).update(watermark_scheme=chosen.scheme, watermark_params=chosen.params)
        audit_append(event="version.watermark_chosen", actor=None, subject=version,
                     data={"scheme": chosen.scheme, "params": chosen.params, "recall": chosen.recall,
                           "perplexity_cost": chosen.perplexity_cost})
    chosen.chosen = True
    return chosen


def watermark_power_measure(*, version_id, force: bool = False) -> WatermarkPower:
    """Measure (or re-measure with `force`) every candidate watermark (WATERMARK_CANDIDATES) on a
    model version's own samples, and choose the one new grants on it get: it meets the recall goal
    at 200 tokens at the least perplexity cost (inference.watermark.choice). Returns the figures
    of the scheme new grants get. A duplicate call while one runs, or once it is done without
    `force`, measures nothing (tasks may be delivered twice). Raises ModelVersion.DoesNotExist; a
    measurement that fails is stored as failed with its error."""
    version = ModelVersion.objects.get(pk=version_id)
    schemes = _candidates(version)
    rows = _claim(version, schemes, force)
    if rows is not None:
        started = time.monotonic()
        try:
            figures = _measure_all(version, schemes)
        except Exception as exc:  # noqa: BLE001 - recorded on the rows; the card says it failed
            log.exception("watermark power of %s failed", version.pk)
            WatermarkPower.objects.filter(pk__in=[p.pk for p in rows]).update(
                state=WatermarkPower.State.FAILED, error=str(exc)[:2000])
        else:
            reference = max(1000, Grant.objects.exclude(state=Grant.State.PENDING).count())
            for power, found in zip(rows, figures):
                _store(power, found, reference)
                WatermarkPower.objects.filter(pk=power.pk).update(seconds=time.monotonic() - started)
            _choose(version, rows)
    version.refresh_from_db()
    current = watermark_power_current(version)
    return current if current is not None else WatermarkPower.objects.filter(model_version=version).first()


# --- Reads ------------------------------------------------------------------------------------

def watermark_power_current(version: ModelVersion) -> WatermarkPower | None:
    """The figures of the version for the watermark new grants on it get (what a buyer gets)."""
    try:
        key = family_key(_scheme_new_grants_get(version))
    except (WatermarkSchemeError, ImproperlyConfigured):
        return None
    return WatermarkPower.objects.filter(model_version=version, params_key=key).first()


def _figures(power: WatermarkPower) -> dict:
    scheme = _power_scheme(power)
    cool = power.cool_counts.get(str(GOAL_TOKENS)) or []
    cost = power.perplexity_cost
    return {"state": power.state, "scheme": power.scheme, "params": power.params, "description": scheme.describe(),
            "label": f"{power.scheme} ({', '.join(f'{k} {v}' for k, v in power.params.items())})",
            "cost_text": None if cost is None else f"{cost:+.1%}".replace("-", "−"),
            "acts_at": scheme.acts_at, "distortion_free": scheme.distortion_free, "chosen": power.chosen,
            "rows": [{"tokens": n, "recall": power.recall.get(str(n))} for n in CARD_LENGTHS],
            "recall_cool": recall_at(cool, scheme=scheme, candidates=power.reference_candidates),
            "perplexity_plain": power.perplexity_plain, "perplexity_watermarked": power.perplexity_watermarked,
            "perplexity_cost": power.perplexity_cost}


def watermark_power_summary(version: ModelVersion) -> dict | None:
    """For the model card and listing: the watermark new grants get, its recall at 50/100/200
    tokens (and at 200 tokens at temperature 0.7) and its perplexity cost, beside the other
    candidates measured on the version."""
    power = watermark_power_current(version)
    if power is None:
        return None
    others = [_figures(p) for p in WatermarkPower.objects.filter(model_version=version, state=WatermarkPower.State.DONE)
              .exclude(pk=power.pk).order_by("pk") if p.scheme in SCHEMES]
    return {**_figures(power), "samples": power.samples, "candidates": power.reference_candidates,
            "mean_entropy": power.mean_entropy, "measured_at": power.measured_at, "error": power.error,
            "pinned": bool(settings.WATERMARK_SCHEME_PINNED), "alternatives": others,
            "goal": RECALL_GOAL, "goal_tokens": GOAL_TOKENS}


def _power_scheme(power: WatermarkPower) -> Scheme:
    # Rows are written from a validated scheme only (watermark_power_measure).
    return scheme_build(power.scheme, power.params)


def _matching_power(version_id: str, scheme: Scheme) -> WatermarkPower | None:
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
        scheme = group.scheme
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
                             recall=recall_at(counts, scheme=scheme, candidates=candidates))
            elif lengths:
                entry.update(measured_tokens=lengths[0], samples=len(power.counts[str(lengths[0])]),
                             recall=recall_at(power.counts[str(lengths[0])], scheme=scheme, candidates=candidates),
                             shorter_than_measured=True)
        entry["message"] = _power_message(entry)
        out.append(entry)
    return out


def _power_message(entry: dict) -> str:
    if entry["recall"] is None:
        return f"The detection power of {entry['model_name']} has not been measured yet."
    return (f"Text of {entry['measured_tokens']} tokens from {entry['model_name']} is detected "
            f"{entry['recall']:.0%} of the time.")
