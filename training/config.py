"""TrainConfig: the hyperparameters of a training job, each named once here with its default, its
limits and its help text.

Everything else is derived from it: the job form's fields (training.forms), the API's schema
(training.api), what `TrainingJob.hyperparameters` stores (`to_dict`) and how a stored row is read
back (`from_dict`), the training loop's settings (training.loop takes a TrainConfig), the estimate,
the job page and the model card. The CLI sends `--name value` pairs that the API validates here, so
a new hyperparameter is one field below and nothing else.

Plain Python: no Django and no torch, so the loop, the CLI's server and tests use it alike.

The defaults are what a product user got from the job form before this class existed; where the
training loop had other defaults of its own (learning rate 5e-4, context 128, one sample), the
form's won, because they are what every job started from the site or the API actually trained with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

SCHEDULES = ("linear", "cosine")
METHODS = ("lora", "full")
ACTIVATIONS = ("keep", "recompute")
# GPT-2's projections LoRA may adapt, by the module names peft matches (a name matches a module whose
# dotted path ends with it): "c_proj" alone would take both the attention's and the MLP's.
LORA_TARGETS = ("c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
MAX_STEPS = 1_000_000


@dataclass(frozen=True)
class Limits:
    """What one hyperparameter may be, and how it is presented.

    `min`/`max` are inclusive; `above` is an exclusive lower bound (a learning rate must be
    positive, however small). `optional` fields accept None as a value of their own ("off", "all");
    a non-optional field given None takes its default. `trajectory` fields change the sequence of
    weights a run produces, so a checkpoint refuses to resume under other values.
    """

    label: str
    help: str
    min: float | None = None
    max: float | None = None
    above: float | None = None
    choices: tuple[str, ...] = ()
    max_length: int | None = None
    optional: bool = False
    trajectory: bool = False


def _hp(default: Any, label: str, help: str, **limits: Any) -> Any:
    return field(default=default, metadata={"limits": Limits(label=label, help=help, **limits)})


class HyperparameterError(ValueError):
    """Hyperparameters out of their limits. `errors` maps each offending field to what it must be;
    `field` is the first of them (the one an API error names as its param)."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        self.field = next(iter(self.errors))
        super().__init__("; ".join(f"{name} {message}" for name, message in self.errors.items()))


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training job. Steps are counted from 1; `steps` is the total."""

    steps: int = _hp(200, "Steps", "Optimizer steps in all.", min=1, max=MAX_STEPS, trajectory=True)
    learning_rate: float = _hp(1e-3, "Learning rate", "Peak AdamW learning rate, reached after the warmup.",
                               above=0.0, max=1.0, trajectory=True)
    lr_schedule: str = _hp("linear", "Learning-rate schedule", "After the warmup, decay to 0 at the last step: "
                           "linear or cosine.", choices=SCHEDULES, trajectory=True)
    warmup_steps: int = _hp(0, "Warmup steps", "Steps over which the learning rate rises linearly from 0.",
                            min=0, max=MAX_STEPS, trajectory=True)
    batch_size: int = _hp(8, "Batch size", "Windows per step.", min=1, max=256, trajectory=True)
    # None: the whole batch in one pass. Accumulating over micro-batches sums the same gradients in
    # another order, so it changes the trajectory's last bits.
    micro_batch_size: int | None = _hp(None, "Micro-batch size", "Windows per forward pass: the batch's gradients "
                                       "are accumulated over passes of this many windows, so a large batch fits "
                                       "the device's memory. Empty: the whole batch in one pass.", min=1, max=256,
                                       optional=True, trajectory=True)
    context_length: int = _hp(64, "Context length", "Tokens per training window.", min=8, max=1024,
                              trajectory=True)
    # The backward pass needs every block's activations; "recompute" keeps only each block's input and
    # runs the block's forward again when the backward reaches it (transformers' gradient
    # checkpointing, dropout replayed), so the weights it computes are the same.
    activations: str = _hp("keep", "Activations", "keep: store every block's activations for the backward "
                           "pass (fastest); recompute: store only each block's input and recompute the rest "
                           "in the backward pass, a third (full) to a half (LoRA) more compute for much less "
                           "memory, so a larger micro-batch or context fits.", choices=ACTIVATIONS)
    weight_decay: float = _hp(0.0, "Weight decay", "AdamW weight decay on matrices and embeddings (never on "
                              "biases or LayerNorm).", min=0.0, max=1.0, trajectory=True)
    grad_clip: float = _hp(1.0, "Gradient clipping", "Largest global gradient norm; 0 turns clipping off.",
                           min=0.0, max=100.0, trajectory=True)
    seed: int = _hp(42, "Seed", "Seeds the batches, dropout, samples and the tiny model's initial weights.",
                    min=0, max=2**31 - 1, trajectory=True)
    sample_every: int = _hp(50, "Evaluate every", "Evaluate and write samples every N steps (and at the end).",
                            min=1, max=MAX_STEPS)
    # None evaluates every window (code that wants the exact figure, e.g. tests; the form's blank is 64).
    eval_max_windows: int | None = _hp(64, "Validation windows", "Evaluate on at most this many validation "
                                       "windows, so evaluation stays a small share of a step's time.",
                                       min=1, max=4096, optional=True)
    sample_count: int = _hp(2, "Samples", "Samples written at each evaluation; 0 evaluates without sampling.",
                            min=0, max=8)
    # 2000 characters: room for a prompt longer than a 512-token context (the loop keeps its end).
    sample_prompt: str = _hp("", "Sample prompt", "The samples continue this text (empty: a new document).",
                             max_length=2000)
    sample_max_new_tokens: int = _hp(40, "Sample length", "New tokens per sample.", min=1, max=256)
    checkpoint_every: int = _hp(50, "Checkpoint every", "Write a resumable checkpoint every N steps.",
                                min=1, max=MAX_STEPS)
    keep_checkpoints: int = _hp(2, "Checkpoints kept", "Older checkpoints beyond this many are deleted (those "
                                "made into model versions are kept).", min=1, max=20)
    # On by default: past the lowest validation loss a run only overfits (and the version is made
    # from the best evaluation anyway), so the steps after it are wasted compute.
    early_stopping_patience: int | None = _hp(3, "Early-stopping patience", "Stop after N evaluations "
                                              "without improvement (1000: never in practice). The version is "
                                              "made from the best evaluation either way.", min=1, max=1000,
                                              optional=True)
    early_stopping_min_delta: float = _hp(0.0, "Early-stopping min delta", "How much the validation loss must "
                                          "fall to count as an improvement.", min=0.0, max=100.0)

    # None: the base model's own default (training.base_models.BaseModel.default_method: LoRA on a
    # pretrained base, full on one trained from scratch), resolved when the job is created.
    method: str | None = _hp(None, "Method", "lora trains small low-rank adapters beside the frozen base "
                             "(the default on pretrained bases); full trains every weight (the default from "
                             "scratch).", choices=METHODS, optional=True, trajectory=True)
    lora_r: int = _hp(8, "LoRA rank", "Rank r of each adapter matrix pair (LoRA only).", min=1, max=256,
                      trajectory=True)
    lora_alpha: float = _hp(16.0, "LoRA alpha", "Adapter scale numerator: the update is multiplied by alpha / r "
                            "(LoRA only).", above=0.0, max=4096.0, trajectory=True)
    # Off by default (as in peft): its masks are drawn over every adapted projection's input each
    # step, 13 % of a LoRA step at GPT-2-small size on CPU. Measured on the built-in base and the two
    # demo corpora (demo settings), 0.05 against 0: best validation loss 1.545 vs 1.550 and 1.319 vs
    # 1.320, English words in 80 samples 92.9 vs 91.8 % and 95.7 vs 95.3 %, runs 1.17-1.21x faster.
    # The model's own dropout (GPT-2's 0.1) still applies, and the version is the best evaluation.
    lora_dropout: float = _hp(0.0, "LoRA dropout", "Dropout on the adapters' input while training (LoRA only; "
                              "0: none, the fastest).", min=0.0, max=0.9, trajectory=True)
    # All four, as LoRAX serves GPT-2: at r 8 that is 1.18M parameters (4.7 MB fp32, ~1 % of GPT-2
    # small) against 0.3M for peft's c_attn-only default. Not yet chosen by a quality measurement.
    lora_target_modules: str = _hp(",".join(LORA_TARGETS), "LoRA target modules", "Comma-separated GPT-2 "
                                   "modules that get adapters: " + ", ".join(LORA_TARGETS) + " (LoRA only).",
                                   max_length=200, trajectory=True)

    # A small base's token embeddings are where a dataset's new words live: measured on the built-in
    # base and the Harbour Logbook demo corpus (160 steps, lr 5e-3), adapters alone reached a
    # validation loss of 3.56 and 73 % English words in samples; the same adapters with the data's
    # 500 distinct tokens trained reached 1.43 and 96 % (a full fine-tune: 1.47 and 94 %). GPT-2 ties
    # its output layer to these rows, so they change what the model writes too.
    lora_token_embeddings: int = _hp(1024, "LoRA token embeddings", "How many of the dataset's most frequent "
                                     "tokens have their embedding row (shared with the output layer) trained "
                                     "beside the adapters and stored in the adapter (LoRA only; 0: none).",
                                     min=0, max=65_536, trajectory=True)

    @property
    def recomputes_activations(self) -> bool:
        return self.activations == "recompute"

    @property
    def is_lora(self) -> bool:
        return self.method == "lora"

    def lora_targets(self) -> list[str]:
        """The target module names, in LORA_TARGETS order, without repeats."""
        given = {name.strip() for name in self.lora_target_modules.split(",") if name.strip()}
        return [name for name in LORA_TARGETS if name in given]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """A validated TrainConfig from `data` (a stored `TrainingJob.hyperparameters`, or input).

        Missing keys, and None for a field that is not optional, take their defaults, so rows
        stored by older versions (which had fewer keys) load as they trained. Ints are accepted
        for floats. Unknown keys are refused, not dropped: a setting this version does not know
        (a typo, or a row written by a newer version) would otherwise be silently ignored and the
        job would train something other than what was asked. Raises HyperparameterError (a
        ValueError) naming every field that is unknown, of the wrong type or out of its limits.
        """
        known = {f.name: f for f in dataclasses.fields(cls)}
        errors = {name: "is not a hyperparameter" for name in data if name not in known}
        values = {}
        for name, f in known.items():
            value = data.get(name)
            if name not in data or (value is None and not f.metadata["limits"].optional):
                continue
            values[name] = float(value) if f.type == "float" and _is_int(value) else value
        config = cls(**values)
        errors |= config.errors()
        if errors:
            raise HyperparameterError(errors)
        return config

    def to_dict(self) -> dict[str, Any]:
        """Every field by name: what `TrainingJob.hyperparameters` stores and the API shows."""
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise HyperparameterError (a ValueError) naming every field out of its limits."""
        if errors := self.errors():
            raise HyperparameterError(errors)

    def errors(self) -> dict[str, str]:
        """Each field out of its limits (or of the wrong type), with what it must be."""
        errors = {}
        for f in dataclasses.fields(self):
            if message := _problem(getattr(self, f.name), f.type, f.metadata["limits"]):
                errors[f.name] = message
        if "lora_target_modules" not in errors and isinstance(self.lora_target_modules, str):
            names = [name.strip() for name in self.lora_target_modules.split(",") if name.strip()]
            if not names or any(name not in LORA_TARGETS for name in names):
                errors["lora_target_modules"] = f"must be a comma-separated list of {', '.join(LORA_TARGETS)}"
        return errors

    def plan_errors(self) -> dict[str, str]:
        """Settings valid one by one that make no sense together for a new job: warmup or the
        first evaluation after the last step. The loop runs them (stored rows may have them);
        the form, the API and the CLI refuse them."""
        errors = {name: f"must not exceed the number of steps ({self.steps})"
                  for name in ("warmup_steps", "sample_every") if getattr(self, name) > self.steps}
        if self.micro_batch_size is not None and self.micro_batch_size > self.batch_size:
            errors["micro_batch_size"] = f"must not exceed the batch size ({self.batch_size})"
        return errors

    def described(self) -> list[tuple[str, str, Any]]:
        """(name, label, value) of every field in order, for the job page and the model card."""
        return [(f.name, f.metadata["limits"].label, getattr(self, f.name)) for f in dataclasses.fields(self)]


def hyperparameters() -> list[tuple[str, type, Any, Limits]]:
    """(name, type, default, limits) of every hyperparameter, in order: what the form, the API's
    schema and the job page are generated from. The type is int, float or str (None aside)."""
    types = {"int": int, "float": float, "str": str}
    return [(f.name, types[f.type.split(" |")[0]], f.default, f.metadata["limits"])
            for f in dataclasses.fields(TrainConfig)]


# Fields that change the trajectory of a run (the training loop refuses to resume across them).
TRAJECTORY_FIELDS = tuple(name for name, _, _, limits in hyperparameters() if limits.trajectory)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _problem(value: Any, type_name: str, limits: Limits) -> str | None:
    """What is wrong with one value, or None."""
    if value is None:
        return None if limits.optional else "must be set"
    kind = type_name.split(" |")[0]
    if kind == "str":
        if not isinstance(value, str):
            return "must be a string"
        if limits.choices and value not in limits.choices:
            return f"must be one of {', '.join(limits.choices)}"
        if limits.max_length is not None and len(value) > limits.max_length:
            return f"must be at most {limits.max_length} characters"
        return None
    if not (_is_int(value) or (kind == "float" and isinstance(value, float))):
        return "must be a whole number" if kind == "int" else "must be a number"
    return _range_problem(value, limits)


def _range_problem(value: float, limits: Limits) -> str | None:
    low_ok = (limits.min is None or value >= limits.min) and (limits.above is None or value > limits.above)
    high_ok = limits.max is None or value <= limits.max
    if low_ok and high_ok:
        return None
    return "must be " + " and ".join(_bounds(limits))


def _bounds(limits: Limits) -> list[str]:
    if limits.min is not None and limits.max is not None:
        return [f"between {limits.min:g} and {limits.max:g}"]
    bounds = []
    if limits.above is not None:
        bounds.append("positive" if limits.above == 0 else f"greater than {limits.above:g}")
    if limits.min is not None:
        bounds.append(f"at least {limits.min:g}")
    if limits.max is not None:
        bounds.append(f"at most {limits.max:g}")
    return bounds
