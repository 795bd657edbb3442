"""The model-entropy pass of a verification: the entropies an entropy-selective watermark scheme
(`needs_entropies`) scores by, computed with the model's weights where weights may be loaded.

- On `inference` queue workers when settings.INFERENCE_IN_PROCESS is false (production): the web
  tier sends token ids and waits at most the time budget; it never loads weights.
- In the web process in the embedded default (like generation there: no worker needed).

Bounded per request, whatever the text: VERIFICATION_ENTROPY_MAX_TOKENS (the first tokens of the
text that entropy schemes score), VERIFICATION_ENTROPY_MAX_VERSIONS (model versions whose pass one
verification may ask for) and VERIFICATION_ENTROPY_SECONDS (the time budget). A version left out by
a bound or the budget is reported as `incomplete`, never guessed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from celery import current_app
from django.conf import settings

log = logging.getLogger(__name__)

# A worker starts no model past this share of the budget, so that the result of the last model it
# started can still reach the web before the web stops waiting.
_WORKER_SHARE = 0.8
ENTROPY_TASK = "inference.verification_entropies"


@dataclass
class EntropyPass:
    """Entropies per model version id; the versions whose files were unavailable (`skipped`) and
    those the pass could not run for in time or within the bounds (`incomplete`)."""

    entropies: dict[str, np.ndarray] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict) -> EntropyPass:
        return cls(entropies={k: np.asarray(v, dtype=np.float64) for k, v in data.get("entropies", {}).items()},
                   skipped=list(data.get("skipped", [])), incomplete=list(data.get("incomplete", [])))


def entropy_pass_compute(*, requests: dict[str, list[int]], deadline: float) -> dict:
    """Entropies of each version's token ids (JSON), loading weights on this process's engine; once
    per model digest. Starts no version after `deadline` (epoch seconds): those come back
    `incomplete`. Never raises for a version whose files are unavailable: it comes back `skipped`."""
    from training.models import ModelVersion

    from .engine import EngineError
    from .modelstore import ModelIntegrityError, engine_instance, engine_source
    from .watermark import text_entropies

    versions = {str(pk): v for pk, v in ModelVersion.objects.in_bulk(list(requests), field_name="pk").items()}
    out: dict = {"entropies": {}, "skipped": [], "incomplete": []}
    by_digest: dict[str, list[float]] = {}
    for version_id, ids in requests.items():
        version = versions.get(version_id)
        if version is None:
            out["skipped"].append(version_id)
            continue
        if version.digest not in by_digest and time.time() > deadline:
            out["incomplete"].append(version_id)
            continue
        try:
            if version.digest not in by_digest:
                # Under the model as served: an adapter applied to its base.
                source = engine_source(version)
                by_digest[version.digest] = engine_instance().measure(
                    lambda loaded, model, ids=ids: text_entropies(
                        model, ids, n_positions=loaded.n_positions,
                        bos_token_id=loaded.eos_token_id if loaded.eos_token_id is not None else 0).tolist(),
                    source.pop("model_digest"), source.pop("model_dir"), **source)
        except (OSError, ModelIntegrityError, EngineError):
            out["skipped"].append(version_id)
            continue
        out["entropies"][version_id] = by_digest[version.digest]
    return out


def entropy_pass_run(requests: dict[str, list[int]]) -> EntropyPass:
    """The entropy pass for `requests` (version id -> the text's token ids under its tokenizer),
    within VERIFICATION_ENTROPY_MAX_VERSIONS, VERIFICATION_ENTROPY_MAX_TOKENS and
    VERIFICATION_ENTROPY_SECONDS. Never raises: whatever could not be computed in time (a worker
    busy or absent, a broker down) comes back `incomplete`."""
    limit, tokens = int(settings.VERIFICATION_ENTROPY_MAX_VERSIONS), int(settings.VERIFICATION_ENTROPY_MAX_TOKENS)
    chosen = {vid: list(ids[:tokens]) for vid, ids in list(requests.items())[:limit]}
    over = [vid for vid in requests if vid not in chosen]
    if not chosen:
        return EntropyPass(incomplete=over)
    seconds = float(settings.VERIFICATION_ENTROPY_SECONDS)
    if settings.INFERENCE_IN_PROCESS:
        result = EntropyPass.from_json(entropy_pass_compute(requests=chosen, deadline=time.time() + seconds))
    else:
        result = _remote(chosen, seconds)
    result.incomplete.extend(over)
    return result


def _remote(requests: dict[str, list[int]], seconds: float) -> EntropyPass:
    payload = {"versions": requests, "deadline": time.time() + seconds * _WORKER_SHARE}
    async_result = None
    try:
        # Sent by name: the task (inference.tasks) runs this module's compute, so importing it here
        # would make the two modules import each other. `expires`: a worker that gets to it after
        # the web stopped waiting drops it unrun.
        async_result = current_app.send_task(ENTROPY_TASK, args=[payload], expires=seconds)
        return EntropyPass.from_json(async_result.get(timeout=seconds, interval=0.05))
    except Exception as exc:  # noqa: BLE001 - a verification answers "not completed", never fails
        log.warning("verification entropy pass not completed: %s", exc.__class__.__name__)
        return EntropyPass(incomplete=list(requests))
    finally:
        if async_result is not None:
            _forget(async_result)


def _forget(async_result) -> None:
    try:
        async_result.forget()  # the result backend keeps nothing a verification no longer reads
    except Exception:  # noqa: BLE001 - best effort; results expire anyway
        pass
