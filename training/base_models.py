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
from dataclasses import dataclass, field, fields

from django.conf import settings

from .builtin_base import BUILTIN, FINE_TUNE_DEFAULTS, SIZES, WEIGHTS_LICENCE
from .config import TrainConfig
from .errors import TrainingError

TINY = "tiny"


@dataclass(frozen=True)
class BaseDefaults:
    """The hyperparameters a base starts from, where they differ from TrainConfig's own defaults
    (which suit the tiny model trained from scratch). None: TrainConfig's default."""

    learning_rate: float | None = None
    warmup_steps: int | None = None
    context_length: int | None = None
    batch_size: int | None = None
    micro_batch_size: int | None = None
    # A LoRA run's rate where it differs from a full fine-tune's: its adapters start at zero and are
    # few, so it wants a higher one.
    lora_learning_rate: float | None = None

    def overrides(self, method: str | None = None) -> dict:
        """TrainConfig fields and their values for a job of `method` on this base."""
        found = {f.name: getattr(self, f.name) for f in fields(self)
                 if getattr(self, f.name) is not None and f.name != "lora_learning_rate"}
        if method == "lora" and self.lora_learning_rate is not None:
            found["learning_rate"] = self.lora_learning_rate
        return found


# A pretrained GPT-2 forgets what it knows at the tiny model's 1e-3 without warmup; fine-tunes of it
# usually take 5e-5 to 3e-4 with a warmup. 512 tokens keep a CPU step affordable (1024 is allowed).
# LoRA: 1e-3, five times the full rate, as peft's GPT-2-sized examples use (not measured here: no
# hub weights on this machine).
_GPT2_DEFAULTS = BaseDefaults(learning_rate=2e-4, warmup_steps=20, context_length=512, micro_batch_size=4,
                              lora_learning_rate=1e-3)


@dataclass(frozen=True)
class BaseModel:
    name: str
    label: str
    parameters: int
    n_positions: int
    licence: str  # SPDX id of the base model's own licence (GPT-2 is MIT)
    rights_holder: str = ""  # whose copyright notice the licence asks to keep (GPT-2: OpenAI)
    from_scratch: bool = False  # starts from random weights: nobody's weights, nor their copyright, are inherited
    defaults: BaseDefaults = field(default_factory=BaseDefaults)
    # The architecture's sizes, for the memory estimate (GPT-2 small's unless a base says otherwise).
    vocab_size: int = 50_257
    n_embd: int = 768
    n_layer: int = 12

    @property
    def default_method(self) -> str:
        """How its jobs train unless told otherwise: LoRA adapters on pretrained weights (a
        fraction of a percent of the parameters, a file of megabytes, served beside thousands of
        others on one resident base); every weight when the base starts from random ones, where a
        frozen random base has nothing to adapt."""
        return "full" if self.from_scratch else "lora"
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
                  from_scratch=True, vocab_size=512, n_embd=64, n_layer=2),
        # Imprint's own weights, pretrained here on public-domain text: CC0, no one else's rights.
        BaseModel(BUILTIN, f"Imprint base ({SIZES['full'].parameters() / 1e6:.1f}M, pretrained here on "
                  "public-domain English)", SIZES["full"].parameters(), SIZES["full"].n_positions, WEIGHTS_LICENCE,
                  "Imprint (pretrained on public-domain texts)", builtin=True,
                  defaults=BaseDefaults(**FINE_TUNE_DEFAULTS), vocab_size=SIZES["full"].vocab_size,
                  n_embd=SIZES["full"].n_embd, n_layer=SIZES["full"].n_layer),
        BaseModel("distilgpt2", "DistilGPT-2 (82M)", 81_912_576, 1024, "apache-2.0", "Hugging Face",
                  defaults=BaseDefaults(learning_rate=3e-4, warmup_steps=20, context_length=512, micro_batch_size=4,
                                        lora_learning_rate=1e-3),
                  n_layer=6),
        BaseModel("gpt2", "GPT-2 small (124M)", 124_439_808, 1024, "mit", "OpenAI", defaults=_GPT2_DEFAULTS),
        BaseModel("gpt2-medium", "GPT-2 medium (355M)", 354_823_168, 1024, "mit", "OpenAI",
                  defaults=BaseDefaults(learning_rate=1e-4, warmup_steps=20, context_length=512, micro_batch_size=2,
                                        lora_learning_rate=5e-4),
                  n_embd=1024, n_layer=24),
    )
}


def base_defaults(name: str, method: str | None = None) -> dict:
    """The hyperparameters a job on base `name` starts from where they differ from TrainConfig's
    defaults ({} for an unknown base, or one that states none): what the form, the API and the CLI
    fill in for settings the trainer leaves unset. `method` None: the base's default method."""
    base = BASE_MODELS.get(name)
    return base.defaults.overrides(method or base.default_method) if base is not None else {}


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
# tokens/s is also capped: a whole tiny job (evaluations, samples and checkpoints included) ran at
# 700 tokens/s on a busy 2-core VM and a few thousand on an idle one. These are only the fallback:
# once a job on the base has finished on the device, estimates use its measured throughput.
_EFFECTIVE_FLOPS = {"cpu": 56e9, "cuda": 3.0e14}
_TOKENS_PER_SECOND_CAP = {"cpu": 2_000, "cuda": 400_000}


def tokens_per_second(base: BaseModel, device: str) -> float:
    return min(_EFFECTIVE_FLOPS[device] / (6 * base.parameters), _TOKENS_PER_SECOND_CAP[device])


def recompute_slowdown(config: TrainConfig) -> float:
    """How much longer a step takes when `config` recomputes activations: one more forward pass of
    the blocks, against a forward and a backward of about twice its work (full: 4/3), or of about
    its work when the frozen base's weights need no gradients (LoRA: 3/2). Measured on a
    GPT-2-small-config base on CPU: LoRA 1.50x (1.58x with adapter dropout), full 1.17x."""
    if not config.recomputes_activations:
        return 1.0
    return 1.5 if config.is_lora else 4 / 3


def job_estimate(*, base: BaseModel, steps: int, batch_size: int, context_length: int, device: str,
                 measured: dict | None = None, slowdown: float = 1.0) -> dict:
    """Tokens to process, expected duration on `device` and on the other kind, and compute cost.

    `measured` ({"tokens_per_second", "jobs"}) is the throughput recent jobs on this base and device
    achieved (as if they kept their activations), evaluations and checkpoints included; without it
    the duration on `device` comes from the constants above. `slowdown`: the job's own
    (recompute_slowdown). `source` says which ("measured" or "constant"), `basis` in words. Cost
    uses COMPUTE_RATE_CENTS_PER_HOUR, rounded up to the cent (an estimate shown before the job).
    """
    tokens = steps * batch_size * context_length
    seconds = {d: tokens * slowdown / tokens_per_second(base, d) for d in ("cpu", "cuda")}
    source, basis = "constant", f"the typical throughput of {base.name} on a {device} (no recent job measured)"
    if measured and measured.get("tokens_per_second"):
        seconds[device] = tokens * slowdown / measured["tokens_per_second"]
        source = "measured"
        basis = (f"measured: {measured['tokens_per_second']:,.0f} tokens/s over the last {measured['jobs']} "
                 f"{base.name} job{'s' if measured['jobs'] != 1 else ''} on {device}")
    if slowdown != 1.0:
        basis += f"; recomputing activations takes about {slowdown:.2g}x as long"
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
        "source": source,
        "basis": basis,
    }


# fp32 training: weights, gradients and AdamW's two moments are 16 bytes a parameter; a frozen
# weight (LoRA's base) is 4.
_STATIC_BYTES_PER_PARAMETER = 16
_FROZEN_BYTES_PER_PARAMETER = 4
# Activations a GPT-2 block keeps for backward, per token and per unit of width, in fp32 (about 34
# values per token and width in half precision, after Korthikanti et al. 2022, doubled for fp32;
# attention runs as one fused kernel that stores no T x T matrix).
_ACTIVATION_BYTES_PER_TOKEN_WIDTH = 68
# Recomputing activations keeps each block's fp32 input instead, and one block's activations at a time.
_BLOCK_INPUT_BYTES_PER_TOKEN_WIDTH = 4
# LoRA parameters per unit of rank and width in one block with all four GPT-2 projections adapted:
# c_attn (1 + 3), attn.c_proj (1 + 1), mlp.c_fc (1 + 4) and mlp.c_proj (4 + 1) times the width.
_LORA_PARAMETERS_PER_RANK_WIDTH = 16


def training_memory(base: BaseModel, config: TrainConfig, *, micro_batch: int) -> dict:
    """Estimated peak bytes of one training pass of `micro_batch` windows of `config`: the fp32
    logits and their gradient (micro_batch x context x vocab x 4 bytes, twice), the blocks'
    activations (or, recomputed, their inputs and one block's), and the weights with, for what
    trains, gradients and optimizer state (LoRA: the base frozen, the adapters and token rows
    trained). An estimate to refuse what cannot fit, not a promise."""
    tokens = micro_batch * config.context_length
    logits = tokens * base.vocab_size * 4 * 2
    if config.recomputes_activations:
        activations = tokens * base.n_embd * (base.n_layer * _BLOCK_INPUT_BYTES_PER_TOKEN_WIDTH
                                              + _ACTIVATION_BYTES_PER_TOKEN_WIDTH)
    else:
        activations = tokens * base.n_embd * base.n_layer * _ACTIVATION_BYTES_PER_TOKEN_WIDTH
    if config.is_lora:
        trained = (config.lora_r * _LORA_PARAMETERS_PER_RANK_WIDTH * base.n_embd * base.n_layer
                   + config.lora_token_embeddings * base.n_embd)
        static = base.parameters * _FROZEN_BYTES_PER_PARAMETER + trained * _STATIC_BYTES_PER_PARAMETER
    else:
        static = base.parameters * _STATIC_BYTES_PER_PARAMETER
    return {"logits": logits, "activations": activations, "static": static, "total": logits + activations + static}


def largest_fitting_micro_batch(base: BaseModel, config: TrainConfig, *, limit_bytes: float) -> int:
    """The largest micro-batch of `config` whose estimate fits `limit_bytes` (0 when not even one
    window does)."""
    fixed = training_memory(base, config, micro_batch=0)["total"]
    per_window = training_memory(base, config, micro_batch=1)["total"] - fixed
    return max(0, int((limit_bytes - fixed) // per_window))


def available_device() -> str:
    """The device a training worker would use. Workers are separate machines in production: the
    TRAINING_DEVICE setting says what they have; the embedded default asks torch here."""
    configured = settings.TRAINING_DEVICE
    if configured:
        return configured
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
