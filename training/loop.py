"""The fine-tuning loop: a plain torch loop over pre-cut token windows, with checkpoints that resume
bit for bit, evaluation, samples, early stopping and pause/cancel.

No Django here: the caller (a Celery task) passes windows, a config and callbacks, and gets a
`TrainResult` back. Reproducibility contract: the batch of step s and the dropout RNG of step s are
pure functions of (seed, s), so on CPU a run resumed from a checkpoint ends with the same weights,
bit for bit, as a run that was never interrupted.

Windows are context_length + 1 tokens (textdata.make_windows): the model reads the first
context_length and predicts the last context_length. The weights a run ends with are those of the
evaluation with the lowest validation loss (its checkpoint is written when it is found and never
pruned), not the last step's: training past the best only overfits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.activations import GELUTanh, NewGELUActivation

from core.torch_runtime import reuse_freed_memory

# TrainConfig is defined with the other hyperparameter code and imported from here by the loop's callers.
from .config import TRAJECTORY_FIELDS, TrainConfig
from .lora import model_prepare, trained_tokens, weights_source

STATUSES = ("succeeded", "paused", "cancelled", "early_stopped")
SAMPLE_TOP_K = 40
CHECKPOINTS_DIR = "checkpoints"
FINAL_DIR = "final"
STATE_FILE = "trainer_state.json"
_CHECKPOINT_NAME = re.compile(r"^step-(\d+)$")
# What a checkpoint holds beyond the model and tokenizer: never part of a final model.
_TRAINING_STATE_FILES = ("optimizer.pt", "scheduler.pt", "scaler.pt", "rng.pt", STATE_FILE)
# Purposes mixed into derived seeds, so that batches, dropout and samples draw independent streams.
_BATCHES, _DROPOUT, _SAMPLES, _ADAPTER_INIT = 0, 1, 2, 3


class TrainingCallbacks:
    """What the loop reports and asks while it runs; every method is a no-op here. Subclass and
    override what you need. Callbacks run on the training thread: keep them quick."""

    def on_step(self, step: int, loss: float, lr: float, tokens_per_second: float) -> None:
        """After every optimizer step; `lr` is the rate that step used."""

    def on_eval(self, step: int, val_loss: float, perplexity: float) -> None:
        """After each evaluation (every `sample_every` steps and at the end)."""

    def on_sample(self, step: int, texts: list[str]) -> None:
        """Generated continuations of `sample_prompt` (prompt not included)."""

    def on_checkpoint(self, step: int, folder: Path) -> None:
        """A complete checkpoint folder; it may be pruned once newer ones exist, so copy it now."""

    def control(self) -> str | None:
        """Checked before every step: "pause" (checkpoint, then stop), "cancel" (stop) or None."""
        return None


@dataclass
class TrainResult:
    """How a run ended. `output_dir` holds the model and tokenizer of the best evaluation, at
    `best_step` with `best_val_loss` (succeeded and early_stopped only; `step` is where the run
    stopped); `checkpoint_dir` is the checkpoint to resume from (paused only)."""

    status: str
    step: int
    train_loss: float | None
    val_loss: float | None
    output_dir: Path | None = None
    checkpoint_dir: Path | None = None
    best_step: int | None = None
    best_val_loss: float | None = None


class ResumeMismatch(ValueError):
    """The checkpoint was written by a run with other trajectory settings or other data."""


@dataclass
class _Progress:
    """The loop's own state, saved as trainer_state.json in each checkpoint."""

    step: int = 0
    best_val_loss: float | None = None
    best_step: int | None = None  # the evaluation whose weights the run ends with
    evals_without_improvement: int = 0
    train_loss: float | None = None
    val_loss: float | None = None


# from_pretrained swaps global torch state (default device, init functions) while it builds a
# model, so two loads in threads of one process (a threads-pool worker) can corrupt each other.
_MODEL_LOADING = threading.Lock()


def use_fused_gelu(model: torch.nn.Module) -> int:
    """Swap transformers' NewGELUActivation (GPT-2's "gelu_new", seven elementwise ops, each
    saving a tensor for backward) for the single-op tanh GELU. Same formula, equal up to float
    rounding, about 7% faster per training step on CPU. The saved config is unchanged, so the
    trained model loads and serves as before. Returns how many modules were swapped."""
    swapped = 0
    for parent in model.modules():
        for name, child in parent.named_children():
            if type(child) is NewGELUActivation:
                setattr(parent, name, GELUTanh())
                swapped += 1
    return swapped


def activations_recompute(model: torch.nn.Module) -> None:
    """Keep only each block's input for the backward pass and recompute the block's activations
    there (transformers' activation checkpointing, non-reentrant: dropout is replayed from the saved
    RNG state, so the gradients are the ones the stored activations give). On a LoRA model, the
    frozen base's blocks. Only while training: evaluation and samples run as before."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})


def run_training(
    *,
    model_path: str | Path,
    train_windows: torch.Tensor,
    val_windows: torch.Tensor,
    config: TrainConfig,
    callbacks: TrainingCallbacks | None = None,
    work_dir: Path,
    resume_from: Path | None = None,
    device: str | None = None,
) -> TrainResult:
    """Fine-tune the causal LM at `model_path` (a Hugging Face folder or hub name) on the windows.

    Checkpoints go to `work_dir/checkpoints/step-NNNNNNNN` (only the newest `keep_checkpoints`
    are kept, and the best evaluation's); the final model, the best evaluation's weights, goes to
    `work_dir/final`. With `resume_from`, training continues at the checkpoint's step + 1 from its
    weights, optimizer, scheduler and RNG state; the best evaluation's checkpoint, when it is an
    earlier one, must then be in `work_dir/checkpoints` (the job runner downloads it there), else
    the run ends with its last weights.
    On CPU it trains in fp32 and calls `reuse_freed_memory()` (process-wide, see there); on CUDA
    it uses autocast. Raises ValueError for a bad config or windows, ResumeMismatch for a
    checkpoint from another trajectory, and whatever model loading raises for a bad `model_path`.
    """
    config.validate()
    _check_windows(train_windows, val_windows, config)
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if target.type == "cpu":
        reuse_freed_memory()
    run = _Run(
        config=config,
        callbacks=callbacks or TrainingCallbacks(),
        work_dir=Path(work_dir),
        device=target,
        train_windows=train_windows,
        val_windows=val_windows,
    )
    run.load(Path(resume_from) if resume_from is not None else None, model_path)
    return run.train()


def _check_windows(train: torch.Tensor, val: torch.Tensor, config: TrainConfig) -> None:
    for name, windows in (("train_windows", train), ("val_windows", val)):
        if windows.dim() != 2 or len(windows) == 0:
            raise ValueError(f"{name} must be a non-empty [n, context_length + 1] tensor")
        if windows.shape[1] != config.context_length + 1:
            raise ValueError(
                f"{name} are {windows.shape[1]} tokens long but context_length is {config.context_length}: "
                f"windows hold context_length + 1 tokens (textdata.make_windows)"
            )


def _derived_seed(seed: int, purpose: int, index: int) -> int:
    """A well-mixed 63-bit seed for (seed, purpose, index); unlike seed + index, neighbouring
    seeds never share streams."""
    return int(np.random.SeedSequence([seed, purpose, index]).generate_state(2, np.uint64)[0] >> 1)


class _BatchPlan:
    """Which windows make up the batch of each step: a pure function of (seed, step).

    Sample positions run through epochs; each epoch is its own permutation seeded by (seed, epoch),
    so any step's batch can be computed without replaying the earlier ones.
    """

    def __init__(self, window_count: int, batch_size: int, seed: int) -> None:
        self.window_count = window_count
        self.batch_size = batch_size
        self.seed = seed
        self._permutations: dict[int, np.ndarray] = {}

    def indices(self, step: int) -> torch.Tensor:
        start = (step - 1) * self.batch_size
        positions = np.arange(start, start + self.batch_size)
        epochs, offsets = np.divmod(positions, self.window_count)
        chosen = [self._permutation(int(e))[o] for e, o in zip(epochs, offsets, strict=True)]
        return torch.as_tensor(np.asarray(chosen, dtype=np.int64))

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._permutations:
            # Only the current epoch or two are ever needed again; drop older ones to bound memory.
            for old in [e for e in self._permutations if e < epoch - 1]:
                del self._permutations[old]
            rng = np.random.default_rng(_derived_seed(self.seed, _BATCHES, epoch))
            self._permutations[epoch] = rng.permutation(self.window_count)
        return self._permutations[epoch]


def _lr_lambda(config: TrainConfig) -> Callable[[int], float]:
    """Linear warmup from 0, then linear or cosine decay to 0 at `steps` (as transformers'
    get_linear/cosine_schedule_with_warmup, so runs compare with Trainer's)."""
    warmup, total, cosine = config.warmup_steps, config.steps, config.lr_schedule == "cosine"

    def multiplier(index: int) -> float:
        if index < warmup:
            return index / max(1, warmup)
        progress = (index - warmup) / max(1, total - warmup)
        if cosine:
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
        return max(0.0, 1.0 - progress)

    return multiplier


def _make_optimizer(model: torch.nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with decay on matrices/embeddings only; fused kernels (CPU and CUDA) are the fastest
    implementation and, like the others, deterministic on CPU."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(groups, lr=config.learning_rate, fused=fused)


def _causal_lm_loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy of logits [b, T, V] against targets [b, T]: a window's inputs
    are its first T tokens and its targets its last T, so every position has a target."""
    return F.cross_entropy(
        logits.float().view(-1, logits.shape[-1]),
        targets.reshape(-1),
        reduction=reduction,
    )


def _perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 700 else math.inf  # math.exp overflows just above 709


def _windows_digest(windows: torch.Tensor) -> str:
    return hashlib.blake2b(windows.detach().cpu().contiguous().numpy().tobytes(), digest_size=16).hexdigest()


class _Precision:
    """fp32 on CPU; autocast on CUDA, bf16 where supported, else fp16 with a GradScaler."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.dtype: torch.dtype | None = None
        if device.type == "cuda":
            self.dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        enabled = self.dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=True) if enabled else None

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)


class _Run:
    """One call of run_training: the model, optimizer and progress, and the steps between."""

    def __init__(
        self,
        *,
        config: TrainConfig,
        callbacks: TrainingCallbacks,
        work_dir: Path,
        device: torch.device,
        train_windows: torch.Tensor,
        val_windows: torch.Tensor,
    ) -> None:
        self.config = config
        self.callbacks = callbacks
        self.work_dir = work_dir
        self.device = device
        self.train_digest = _windows_digest(train_windows)
        # Windows are small (8 bytes a token) and move to the device once, not per step.
        self.train_windows = train_windows.to(device=device, dtype=torch.long)
        self.val_windows = val_windows[: config.eval_max_windows].to(device=device, dtype=torch.long)
        self.plan = _BatchPlan(len(train_windows), config.batch_size, config.seed)
        self.precision = _Precision(device)
        self.progress = _Progress()
        self.checkpointed_step: int | None = None
        self.evaluated_step: int | None = None
        self.sampled_step: int | None = None

    # --- setup -----------------------------------------------------------------------------------

    def load(self, resume_from: Path | None, model_path: str | Path) -> None:
        """Load the model (from the checkpoint when resuming) and build optimizer and scheduler."""
        source = weights_source(resume_from=resume_from, model_path=model_path)
        with _MODEL_LOADING:
            # Master weights stay fp32 whatever the checkpoint's dtype; CUDA speed comes from autocast.
            self.model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
            self.tokenizer = AutoTokenizer.from_pretrained(source)
        self.model.to(self.device)
        use_fused_gelu(self.model)
        # LoRA: the frozen base wrapped with adapters (loaded from an adapter checkpoint when resuming);
        # save_pretrained then writes the adapter only, and the optimizer holds its parameters only.
        self.model = model_prepare(self.model, self.config, resume_from=resume_from,
                                   init_seed=_derived_seed(self.config.seed, _ADAPTER_INIT, 0),
                                   token_ids=trained_tokens(self.config, self.train_windows))
        if self.config.recomputes_activations:
            activations_recompute(self.model)
        if self.tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no eos token")
        self.n_positions = int(self.model.config.max_position_embeddings)
        if self.config.context_length > self.n_positions:
            raise ValueError(f"context_length exceeds the model's {self.n_positions} positions")
        self.optimizer = _make_optimizer(self.model, self.config, self.device)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _lr_lambda(self.config))
        if resume_from is not None:
            self._restore(resume_from)

    def _restore(self, folder: Path) -> None:
        state = json.loads((folder / STATE_FILE).read_text())
        self._check_resumable(state)
        self.progress = _Progress(**state["progress"])
        self.checkpointed_step = self.progress.step

        def load(name: str) -> Any:
            # weights_only: a checkpoint is data; never unpickle arbitrary objects from storage.
            return torch.load(folder / name, map_location=self.device, weights_only=True)

        self.optimizer.load_state_dict(load("optimizer.pt"))
        self.scheduler.load_state_dict(load("scheduler.pt"))
        if self.precision.scaler is not None and (folder / "scaler.pt").exists():
            self.precision.scaler.load_state_dict(load("scaler.pt"))
        rng = torch.load(folder / "rng.pt", weights_only=True)
        torch.set_rng_state(rng["cpu"])
        if torch.cuda.is_available() and rng["cuda"]:
            torch.cuda.set_rng_state_all(rng["cuda"])

    def _check_resumable(self, state: dict[str, Any]) -> None:
        saved, current = state["config"], dataclasses.asdict(self.config)
        # A setting a checkpoint does not name is newer than it: the checkpoint trained without it
        # (its adapter folder says how), which is no change of trajectory.
        changed = [name for name in TRAJECTORY_FIELDS if saved.get(name, current[name]) != current[name]]
        if changed:
            raise ResumeMismatch(f"checkpoint was trained with other settings: {', '.join(changed)}")
        if state.get("train_digest") != self.train_digest:
            raise ResumeMismatch("checkpoint was trained on other training windows")

    # --- the loop --------------------------------------------------------------------------------

    def train(self) -> TrainResult:
        self.model.train()
        for step in range(self.progress.step + 1, self.config.steps + 1):
            command = self.callbacks.control()
            if command == "pause":
                return self._pause()
            if command == "cancel":
                return self._result("cancelled")
            if command is not None:
                raise ValueError(f"control() returned {command!r}; expected 'pause', 'cancel' or None")
            self._timed_step(step)
            if step % self.config.sample_every == 0 and self._evaluate_and_sample(step):
                return self._finish("early_stopped")
            if step % self.config.checkpoint_every == 0 and step < self.config.steps:
                self._write_checkpoint()
        return self._finish("succeeded")

    def _timed_step(self, step: int) -> None:
        lr = self.scheduler.get_last_lr()[0]
        started = time.perf_counter()
        loss = self._step(step)  # .item() inside synchronises CUDA, so the timing is honest
        elapsed = time.perf_counter() - started
        self.progress.step = step
        self.progress.train_loss = loss
        tokens = self.config.batch_size * self.config.context_length
        self.callbacks.on_step(step, loss, lr, tokens / elapsed if elapsed > 0 else math.inf)

    def _step(self, step: int) -> float:
        batch = self.train_windows[self.plan.indices(step).to(self.device)]
        # Reseeding per step makes dropout a function of (seed, step), independent of how many
        # steps this process has run, which is what makes resumed runs bitwise identical.
        torch.manual_seed(_derived_seed(self.config.seed, _DROPOUT, step))
        scaler = self.precision.scaler
        total = 0.0
        # Gradient accumulation: each micro-batch's mean loss is weighted by its share of the batch,
        # so the summed gradients are those of the whole batch's mean loss.
        for micro in batch.split(self.config.micro_batch_size or len(batch)):
            with self.precision.autocast():
                logits = self.model(input_ids=micro[:, :-1], use_cache=False).logits
            loss = _causal_lm_loss(logits, micro[:, 1:]) * (len(micro) / len(batch))
            del logits
            (scaler.scale(loss) if scaler else loss).backward()
            total += loss.item()
        if self.config.grad_clip:
            if scaler:
                scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip, foreach=True)
        if scaler:
            scaler.step(self.optimizer)
            scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total

    # --- evaluation and samples ------------------------------------------------------------------

    def _evaluate_and_sample(self, step: int) -> bool:
        """Evaluate (and sample) at `step`; True when early stopping says to stop. A new best
        evaluation is checkpointed at once: its weights are the ones the run will end with."""
        val_loss = self._evaluate()
        self.evaluated_step = step
        self.progress.val_loss = val_loss
        self.callbacks.on_eval(step, val_loss, _perplexity(val_loss))
        if self.config.sample_count:
            self.sampled_step = step
            self.callbacks.on_sample(step, self._sample(step))
        stop = self._should_stop_early(val_loss)
        if self.progress.best_step == step and not stop and step < self.config.steps:
            self._write_checkpoint()
        return stop

    def _should_stop_early(self, val_loss: float) -> bool:
        """Track the best evaluation (an improvement is a fall of more than the minimum delta)
        and say whether patience has run out."""
        progress, config = self.progress, self.config
        if (
            progress.best_val_loss is None
            or val_loss < progress.best_val_loss - config.early_stopping_min_delta
        ):
            progress.best_val_loss = val_loss
            progress.best_step = progress.step
            progress.evals_without_improvement = 0
        else:
            progress.evals_without_improvement += 1
        patience = config.early_stopping_patience
        return patience is not None and progress.evals_without_improvement >= patience

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        """Eval mode and no autograd for the block, back to train mode after, even on errors."""
        self.model.eval()
        try:
            with torch.inference_mode(), self.precision.autocast():
                yield
        finally:
            self.model.train()

    def _evaluate(self) -> float:
        """Mean next-token loss over the validation windows (every predicted token weighs the same)."""
        total, count = 0.0, 0
        with self._inference():
            for batch in self.val_windows.split(self.config.micro_batch_size or self.config.batch_size):
                logits = self.model(input_ids=batch[:, :-1], use_cache=False).logits
                total += _causal_lm_loss(logits, batch[:, 1:], reduction="sum").item()
                count += batch[:, 1:].numel()
        return total / count

    def _sample(self, step: int) -> list[str]:
        """`sample_count` continuations of the prompt, seeded by (seed, step) and never running
        past the model's positions."""
        eos = self.tokenizer.eos_token_id
        prompt = self.tokenizer.encode(self.config.sample_prompt, add_special_tokens=False) or [eos]
        prompt = prompt[-(self.n_positions - 1) :]  # keep room for at least one new token
        max_new = min(self.config.sample_max_new_tokens, self.n_positions - len(prompt))
        input_ids = torch.tensor([prompt], device=self.device)
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        # fork_rng: sampling must not disturb the RNG state a checkpoint would save.
        with torch.random.fork_rng(devices=devices), self._inference():
            torch.manual_seed(_derived_seed(self.config.seed, _SAMPLES, step))
            output = self.model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                do_sample=True,
                top_k=SAMPLE_TOP_K,
                max_new_tokens=max_new,
                num_return_sequences=self.config.sample_count,
                pad_token_id=eos,
            )
        return self.tokenizer.batch_decode(output[:, len(prompt) :], skip_special_tokens=True)

    # --- endings ---------------------------------------------------------------------------------

    def _pause(self) -> TrainResult:
        folder = self._write_checkpoint()
        return self._result("paused", checkpoint_dir=folder)

    def _finish(self, status: str) -> TrainResult:
        step = self.progress.step
        if self.evaluated_step != step:
            self.evaluated_step = step
            self.progress.val_loss = self._evaluate()
            self.callbacks.on_eval(step, self.progress.val_loss, _perplexity(self.progress.val_loss))
            self._should_stop_early(self.progress.val_loss)  # the last step may be the best
        if self.config.sample_count and self.sampled_step != step:
            self.sampled_step = step
            self.callbacks.on_sample(step, self._sample(step))
        return self._result(status, output_dir=self._save_final())

    def _result(self, status: str, **folders: Path) -> TrainResult:
        progress = self.progress
        return TrainResult(status, progress.step, progress.train_loss, progress.val_loss, **folders,
                           best_step=progress.best_step, best_val_loss=progress.best_val_loss)

    def _best_folder(self) -> Path | None:
        """The checkpoint of the best evaluation when it is not the current step's weights."""
        best = self.progress.best_step
        if best is None or best == self.progress.step:
            return None
        folder = self.work_dir / CHECKPOINTS_DIR / f"step-{best:08d}"
        return folder if (folder / STATE_FILE).exists() else None

    def _save_final(self) -> Path:
        """The best evaluation's weights (safetensors) and tokenizer only: what serving needs, no
        optimizer state. Without its checkpoint at hand (an earlier attempt's, not provided) the
        run ends with its current weights and `best_step` is the current step."""
        final = self.work_dir / FINAL_DIR
        partial = self.work_dir / f"{FINAL_DIR}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        best = self._best_folder()
        if best is not None:
            shutil.copytree(best, partial, ignore=shutil.ignore_patterns(*_TRAINING_STATE_FILES))
        else:
            self.model.save_pretrained(partial, safe_serialization=True)
            self.tokenizer.save_pretrained(partial)
            if self.progress.best_step is not None and self.progress.best_step != self.progress.step:
                self.progress.best_step, self.progress.best_val_loss = self.progress.step, self.progress.val_loss
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        return final

    # --- checkpoints -----------------------------------------------------------------------------

    def _write_checkpoint(self) -> Path:
        """Write the checkpoint of the current step (once), report it, prune old ones.

        Written to a `.partial` folder and renamed, so a crash never leaves a half checkpoint
        under a valid name.
        """
        step = self.progress.step
        folder = self.work_dir / CHECKPOINTS_DIR / f"step-{step:08d}"
        if self.checkpointed_step == step and folder.exists():
            return folder  # e.g. pause right after a scheduled checkpoint
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        self._save_checkpoint_files(partial)
        shutil.rmtree(folder, ignore_errors=True)  # a stale one from an earlier run in this work_dir
        os.replace(partial, folder)
        self.checkpointed_step = step
        self.callbacks.on_checkpoint(step, folder)
        self._prune_checkpoints()
        return folder

    def _save_checkpoint_files(self, folder: Path) -> None:
        self.model.save_pretrained(folder, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)
        torch.save(self.optimizer.state_dict(), folder / "optimizer.pt")
        torch.save(self.scheduler.state_dict(), folder / "scheduler.pt")
        if self.precision.scaler is not None:
            torch.save(self.precision.scaler.state_dict(), folder / "scaler.pt")
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        torch.save({"cpu": torch.get_rng_state(), "cuda": cuda}, folder / "rng.pt")
        state = {
            "step": self.progress.step,
            "progress": dataclasses.asdict(self.progress),
            "config": dataclasses.asdict(self.config),
            "train_digest": self.train_digest,
        }
        (folder / STATE_FILE).write_text(json.dumps(state, indent=2))

    def _prune_checkpoints(self) -> None:
        """Keep the newest `keep_checkpoints` and the best evaluation's, whatever its age."""
        best = self.progress.best_step
        for folder in list_checkpoints(self.work_dir)[: -self.config.keep_checkpoints]:
            if best is None or folder.name != f"step-{best:08d}":
                shutil.rmtree(folder, ignore_errors=True)


def list_checkpoints(work_dir: Path) -> list[Path]:
    """The complete checkpoint folders in `work_dir`, oldest first (`.partial` ones excluded)."""
    root = Path(work_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _CHECKPOINT_NAME.match(p.name))]
    return [folder for _, folder in sorted(found)]
