"""Base models a trainer can fine-tune, how to load their tokenizers, and run-time estimates.

`tiny` is the built-in configuration: a GPT-2 of ~150K parameters whose tokenizer is trained on the
dataset itself, trained from scratch on a CPU in seconds (demos and tests). `imprint-base` is the
built-in pretrained base (training.builtin_base): prepared once per installation from public-domain
text that a package ships, then fine-tuned like any pretrained model. The GPT-2 family loads
through `from_pretrained` by hub name, or from a local folder named in TRAINING_BASE_MODEL_PATHS
(e.g. `gpt2=/models/gpt2`), so machines without hub access can still fine-tune real GPT-2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.conf import settings

from .builtin_base import BUILTIN, FINE_TUNE_DEFAULTS, SIZES, WEIGHTS_LICENCE
from .errors import TrainingError

TINY = "tiny"


@dataclass(frozen=True)
class BaseModel:
    name: str
    label: str
    parameters: int
    n_positions: int
    licence: str  # SPDX id of the base model's own licence (GPT-2 is MIT)
    rights_holder: str = ""  # whose copyright notice the licence asks to keep (GPT-2: OpenAI)
    from_scratch: bool = False  # starts from random weights: nobody's weights, nor their copyright, are inherited
    builtin: bool = False  # the built-in pretrained base, prepared on this installation (not a hub model)

    @property
    def source(self) -> str:
        """What `from_pretrained` receives: a configured local folder, else the hub name."""
        return dict(settings.TRAINING_BASE_MODEL_PATHS).get(self.name, self.name)


BASE_MODELS = {
    m.name: m
    for m in (
        # The tiny model inherits no weights and no tokenizer, only GPT-2's architecture as transformers
        # implements it (an architecture is not a work whose copyright passes to trained weights): it
        # names no rights-holder, so no model card or rights chain credits OpenAI for it.
        BaseModel(TINY, "Built-in tiny GPT-2 (trains from scratch in seconds on a CPU)", 150_000, 128, "mit",
                  from_scratch=True),
        # Imprint's own weights, pretrained here on public-domain text: CC0, no one else's rights.
        BaseModel(BUILTIN, f"Imprint base ({SIZES['full'].parameters() / 1e6:.1f}M, pretrained here on "
                  "public-domain English)", SIZES["full"].parameters(), SIZES["full"].n_positions, WEIGHTS_LICENCE,
                  "Imprint (pretrained on public-domain texts)", builtin=True),
        BaseModel("distilgpt2", "DistilGPT-2 (82M)", 81_912_576, 1024, "apache-2.0", "Hugging Face"),
        BaseModel("gpt2", "GPT-2 small (124M)", 124_439_808, 1024, "mit", "OpenAI"),
        BaseModel("gpt2-medium", "GPT-2 medium (355M)", 354_823_168, 1024, "mit", "OpenAI"),
    )
}

def base_model_get(name: str) -> BaseModel:
    """The base model of that name. Raises TrainingError (param "base_model") for an unknown one."""
    try:
        return BASE_MODELS[name]
    except KeyError:
        raise TrainingError(f"Unknown base model {name!r}; choose one of {', '.join(BASE_MODELS)}.",
                            param="base_model") from None


def hub_tokenizer_load(base: BaseModel):
    """The tokenizer of a GPT-2 family base, from its configured local copy or the hub. Raises
    TrainingError (param "base_model") when neither is reachable."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(base.source)
    except OSError as exc:
        raise TrainingError(
            f"The {base.name} tokenizer is not available on this server (no local copy and no hub "
            f"access): {exc.__class__.__name__}. Configure TRAINING_BASE_MODEL_PATHS.",
            param="base_model") from exc


# Sustained training throughput, in FLOP/s actually achieved (not peak): on this kind of 2-core CPU
# GPT-2 small trains at ~75 tokens/s at 512 tokens (6 × 124M FLOP per token ≈ 56 GFLOP/s). The GPU
# figure assumes an H100-class card at ~30 % of its bf16 peak. Small models are overhead-bound, so
# tokens/s is also capped.
_EFFECTIVE_FLOPS = {"cpu": 56e9, "cuda": 3.0e14}
_TOKENS_PER_SECOND_CAP = {"cpu": 25_000, "cuda": 400_000}


def tokens_per_second(base: BaseModel, device: str) -> float:
    return min(_EFFECTIVE_FLOPS[device] / (6 * base.parameters), _TOKENS_PER_SECOND_CAP[device])


def job_estimate(*, base: BaseModel, steps: int, batch_size: int, context_length: int, device: str) -> dict:
    """Tokens to process, expected duration on `device` and on the other kind, and compute cost.

    Cost uses COMPUTE_RATE_CENTS_PER_HOUR, rounded up to the cent (an estimate shown before the job).
    """
    tokens = steps * batch_size * context_length
    seconds = {d: tokens / tokens_per_second(base, d) for d in ("cpu", "cuda")}
    rate = settings.COMPUTE_RATE_CENTS_PER_HOUR
    return {
        "tokens": tokens,
        "device": device,
        "seconds": round(seconds[device], 1),
        "cpu_seconds": round(seconds["cpu"], 1),
        "gpu_seconds": round(seconds["cuda"], 1),
        "cost_cents": math.ceil(seconds[device] / 3600 * rate),
        "rate_cents_per_hour": rate,
        "gpu_recommended": seconds["cpu"] > 600,
    }


def available_device() -> str:
    """The device a training worker would use. Workers are separate machines in production: the
    TRAINING_DEVICE setting says what they have; the embedded default asks torch here."""
    configured = settings.TRAINING_DEVICE
    if configured:
        return configured
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
