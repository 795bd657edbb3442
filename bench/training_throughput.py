"""Training throughput: Imprint's loop (training.loop.run_training) against transformers.Trainer.

Both train the same small GPT-2 (4 layers, 256 wide, a BPE tokenizer trained here) on the same
windows with the same batch, step count, fused AdamW, linear warmup/decay schedule and grad clip,
in one process. Trainer's saving, logging, evaluation and progress bar are off; Imprint's
evaluation, samples and checkpoints are pushed past the last step.

The two loops run in lock step: each in its own thread, passing a baton so that exactly one of
them computes at a time and their steps alternate (Imprint step 1, Trainer step 1, Imprint step 2,
...). Each step is timed by its own loop's hooks (Imprint: `on_step`'s tokens/s, which times the
step itself; Trainer: `on_step_begin` to `on_step_end`, batch loading excluded, which if anything
favours Trainer). Load from other processes on a shared machine comes and goes over seconds, so it
hits neighbouring steps of both loops alike; the median step of each loop, after a few warm-up
steps and without the last one (which overlaps the other loop's shutdown), gives its tok/s.
Process-wide tuning is shared: the glibc allocator setting that run_training applies
(core.torch_runtime.reuse_freed_memory) is switched on before either loop runs, so the ratio compares
the loops, not the allocator.

    .venv/bin/python bench/training_throughput.py --quick    # under a minute on 2 cores
    .venv/bin/python bench/training_throughput.py            # the full run

The last line is `ratio: X` with X = Imprint tok/s / Trainer tok/s (higher is better).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, import training.*

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.utils import logging as hf_logging

from core.torch_runtime import reuse_freed_memory
from training.loop import TrainConfig, TrainingCallbacks, run_training
from training.textdata import encode_documents, make_windows, split_windows
from training.tiny import build_tiny_model

BATCH = 8
CONTEXT = 128
TOKENS_PER_STEP = BATCH * CONTEXT
LEARNING_RATE = 5e-4
SEED = 42
WARMUP_STEPS = 3  # steps excluded from throughput: first-call allocations and kernel selection
BENCH_MODEL = {"vocab_size": 4096, "n_positions": CONTEXT, "n_layer": 4, "n_head": 4, "n_embd": 256}
BATON_TIMEOUT_S = 600  # a loop that died without closing the baton must not hang the bench forever


def synthetic_corpus(documents: int = 400, words: int = 200, seed: int = 0) -> list[str]:
    """Deterministic text with a few thousand distinct words, so BPE fills a 4K vocabulary."""
    rng = random.Random(seed)
    syllables = [a + b for a in "bcdfghklmnprstvz" for b in "aeiou"] + ["th", "sh", "qu", "st"]
    lexicon = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(3000)]
    punctuation = ["", "", "", "", ",", ".", "!"]
    return [
        " ".join(rng.choice(lexicon) + rng.choice(punctuation) for _ in range(words))
        for _ in range(documents)
    ]


class Baton:
    """Strict alternation between the two loops: only the holder computes a step."""

    def __init__(self, first: str, second: str) -> None:
        self._other = {first: second, second: first}
        self._holder = first
        self._closed = False
        self._condition = threading.Condition()

    def take(self, name: str) -> None:
        with self._condition:
            ready = self._condition.wait_for(lambda: self._closed or self._holder == name, BATON_TIMEOUT_S)
        if not ready:
            raise TimeoutError(f"{name} waited {BATON_TIMEOUT_S} s for its turn")

    def give(self, name: str) -> None:
        with self._condition:
            self._holder = self._other[name]
            self._condition.notify_all()

    def close(self) -> None:
        """One loop has finished (or failed): let the other run freely."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()


def steady_rate(step_seconds: list[float]) -> float:
    """Tokens per second of the median step, warm-up steps and the last step left out."""
    return TOKENS_PER_STEP / statistics.median(step_seconds[WARMUP_STEPS:-1])


class _ImprintTurns(TrainingCallbacks):
    def __init__(self, baton: Baton, name: str) -> None:
        self.baton, self.name = baton, name
        self.step_seconds: list[float] = []

    def control(self) -> str | None:
        self.baton.take(self.name)
        return None

    def on_step(self, step: int, loss: float, lr: float, tokens_per_second: float) -> None:
        self.step_seconds.append(TOKENS_PER_STEP / tokens_per_second)
        self.baton.give(self.name)


class _TrainerTurns(TrainerCallback):
    def __init__(self, baton: Baton, name: str) -> None:
        self.baton, self.name = baton, name
        self.step_seconds: list[float] = []
        self._started = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self.baton.take(self.name)
        self._started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.step_seconds.append(time.perf_counter() - self._started)
        self.baton.give(self.name)


class _Windows(torch.utils.data.Dataset):
    """Trainer's input: each window is its own label (the model shifts labels internally)."""

    def __init__(self, windows: torch.Tensor) -> None:
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        # The loop's windows carry their last target as one more token; Trainer's model reads a
        # window whole (it shifts the labels inside), so it gets the context_length tokens that fit.
        window = self.windows[index][:-1]
        return {"input_ids": window, "labels": window}


def run_imprint(
    model_dir: Path,
    train: torch.Tensor,
    val: torch.Tensor,
    steps: int,
    work: Path,
    callbacks: TrainingCallbacks,
) -> None:
    never = steps + 1  # evaluation, samples and checkpoints only after the last step
    config = TrainConfig(
        steps=steps,
        learning_rate=LEARNING_RATE,
        batch_size=BATCH,
        context_length=CONTEXT,
        seed=SEED,
        warmup_steps=steps // 10,
        sample_every=never,
        sample_count=0,
        checkpoint_every=never,
        eval_max_windows=BATCH,
    )
    run_training(
        model_path=model_dir,
        train_windows=train,
        val_windows=val,
        config=config,
        callbacks=callbacks,
        work_dir=work,
        device="cpu",
    )


def run_trainer(
    model_dir: Path, train: torch.Tensor, steps: int, work: Path, callback: TrainerCallback
) -> None:
    arguments = TrainingArguments(
        output_dir=str(work),
        max_steps=steps,
        per_device_train_batch_size=BATCH,
        learning_rate=LEARNING_RATE,
        lr_scheduler_type="linear",
        warmup_steps=steps // 10,
        weight_decay=0.0,
        max_grad_norm=1.0,
        optim="adamw_torch_fused",
        seed=SEED,
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
    )
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    trainer = Trainer(model=model, args=arguments, train_dataset=_Windows(train), callbacks=[callback])
    with contextlib.redirect_stdout(io.StringIO()):  # Trainer prints its summary dict
        trainer.train()


# A loop: given the baton and its name on it, trains and returns its seconds per step.
Loop = Callable[[Baton, str], list[float]]


def imprint_loop(model_dir: Path, train: torch.Tensor, val: torch.Tensor, steps: int, work: Path) -> Loop:
    def run(baton: Baton, name: str) -> list[float]:
        turns = _ImprintTurns(baton, name)
        run_imprint(model_dir, train, val, steps, work / name, turns)
        return turns.step_seconds

    return run


def trainer_loop(model_dir: Path, train: torch.Tensor, steps: int, work: Path) -> Loop:
    def run(baton: Baton, name: str) -> list[float]:
        turns = _TrainerTurns(baton, name)
        run_trainer(model_dir, train, steps, work / name, turns)
        return turns.step_seconds

    return run


def race(first: Loop, second: Loop) -> tuple[list[float], list[float]]:
    """Run two loops in lock step, each in its own thread (neither in the main thread, so both
    get the same kind of thread and OpenMP team); returns their seconds per step."""
    baton = Baton("first", "second")
    results: dict[str, list[float]] = {}
    failures: list[BaseException] = []

    def run(name: str, loop: Loop) -> None:
        try:
            # Load only on our turn: from_pretrained patches global torch state and is not safe
            # to run while the other thread loads its model.
            baton.take(name)
            results[name] = loop(baton, name)
        except BaseException as error:  # noqa: BLE001 - re-raised in the main thread below
            failures.append(error)
        finally:
            baton.close()

    threads = [
        threading.Thread(target=run, args=item, name=item[0])
        for item in (("first", first), ("second", second))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return results["first"], results["second"]


def time_demo_model(root: Path, steps: int = 60) -> float:
    """Seconds to build the built-in tiny model and train it with the demo defaults."""
    started = time.perf_counter()
    texts = synthetic_corpus(documents=60, words=120, seed=1)
    model_dir = build_tiny_model(root / "demo-model", texts)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    train, val = split_windows(make_windows(encode_documents(texts, tokenizer), CONTEXT))
    run_training(
        model_path=model_dir,
        train_windows=train,
        val_windows=val,
        config=TrainConfig(steps=steps, batch_size=BATCH, context_length=CONTEXT, checkpoint_every=50),
        work_dir=root / "demo-run",
        device="cpu",
    )
    return time.perf_counter() - started


def prepare(root: Path) -> tuple[Path, torch.Tensor, torch.Tensor, str]:
    """The bench model folder, its train/validation windows and a one-line description."""
    texts = synthetic_corpus()
    model_dir = build_tiny_model(root / "bench-model", texts, **BENCH_MODEL)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    train, val = split_windows(make_windows(encode_documents(texts, tokenizer), CONTEXT))
    params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(model_dir).parameters())
    description = (
        f"model: GPT-2 {BENCH_MODEL['n_layer']} layers x {BENCH_MODEL['n_embd']}, vocab {len(tokenizer)}, "
        f"{params / 1e6:.2f}M params; {len(train)} train windows of {CONTEXT}; batch {BATCH}"
    )
    return model_dir, train, val, description


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (under a minute)")
    parser.add_argument(
        "--calibrate", action="store_true", help="race Imprint against itself: the method's own bias"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch intra-op threads (default: torch's); 1 is steadier on a busy machine",
    )
    args = parser.parse_args()
    steps = 40 if args.quick else 200
    if args.threads:
        torch.set_num_threads(args.threads)
    allocator = reuse_freed_memory()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir, train, val, description = prepare(root)
        print(f"{description}; {steps} steps each, in lock step; torch threads {torch.get_num_threads()}")
        print(f"allocator reuse (shared by both loops): {allocator}")
        imprint = imprint_loop(model_dir, train, val, steps, root / "imprint")
        if args.calibrate:
            first, second = race(imprint, imprint)
            print(f"calibration (Imprint vs Imprint) ratio: {steady_rate(first) / steady_rate(second):.3f}")
        started = time.perf_counter()
        imprint_steps, trainer_steps = race(imprint, trainer_loop(model_dir, train, steps, root / "trainer"))
        imprint_rate, trainer_rate = steady_rate(imprint_steps), steady_rate(trainer_steps)
        print(f"both loops: {time.perf_counter() - started:.1f} s wall")
        print(f"imprint run_training: {imprint_rate:.0f} tok/s (median step {_ms(imprint_rate)} ms)")
        print(f"transformers Trainer: {trainer_rate:.0f} tok/s (median step {_ms(trainer_rate)} ms)")
        print(f"demo model (tiny config, build + 60 steps, batch {BATCH}): {time_demo_model(root):.2f} s")
        print(f"ratio: {imprint_rate / trainer_rate:.3f}")


def _ms(rate: float) -> str:
    return f"{TOKENS_PER_STEP / rate * 1000:.1f}"


if __name__ == "__main__":
    main()
