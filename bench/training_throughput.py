"""Training throughput: Imprint's loop (training.loop.run_training) against transformers.Trainer.

Both train the same small GPT-2 (4 layers, 256 wide, a BPE tokenizer trained here) on the same
windows with the same batch, step count, fused AdamW, linear warmup/decay schedule and grad clip,
in one process. Trainer's saving, logging, evaluation and progress bar are off; Imprint's
evaluation, samples and checkpoints are pushed past the last step. Throughput is measured the same
way for both, from the median step time (per-step timestamps) after a few warm-up steps, so
start-up and the final save (which the loops do differently) are excluded; total wall times are
printed alongside.

Runs alternate (Imprint, Trainer, Trainer, Imprint, ...) after an untimed warm-up of each, so
drifting machine speed and first-run costs hit both. Process-wide tuning is shared: the glibc
allocator setting that run_training applies (training.loop.reuse_freed_memory) is switched on before
either loop runs, so the ratio compares the loops, not the allocator.

    .venv/bin/python bench/training_throughput.py --quick    # under a minute on 2 cores
    .venv/bin/python bench/training_throughput.py            # the full run

The last line is `ratio: X` with X = Imprint tok/s / Trainer tok/s (higher is better).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import random
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
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

from training.loop import TrainConfig, TrainingCallbacks, reuse_freed_memory, run_training
from training.textdata import encode_documents, make_windows, split_windows
from training.tiny import build_tiny_model

BATCH = 8
CONTEXT = 128
LEARNING_RATE = 5e-4
SEED = 42
WARMUP_STEPS = 3  # steps excluded from throughput: first-call allocations and kernel selection
BENCH_MODEL = {"vocab_size": 4096, "n_positions": CONTEXT, "n_layer": 4, "n_head": 4, "n_embd": 256}


@dataclass
class Measurement:
    tokens_per_second: float
    wall_seconds: float


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


def steady_rate(stamps: list[float], tokens_per_step: int) -> float:
    """Tokens per second of the median step after the warm-up steps.

    The median, not the mean: this machine is shared, and a burst of someone else's work inflates
    a few steps of whichever loop happens to be running; the typical step is what the loop costs.
    """
    durations = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    return tokens_per_step / statistics.median(durations[WARMUP_STEPS - 1 :])


class _ImprintStamps(TrainingCallbacks):
    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_step(self, step: int, loss: float, lr: float, tokens_per_second: float) -> None:
        self.stamps.append(time.perf_counter())


class _TrainerStamps(TrainerCallback):
    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.stamps.append(time.perf_counter())


class _Windows(torch.utils.data.Dataset):
    """Trainer's input: each window is its own label (the model shifts labels internally)."""

    def __init__(self, windows: torch.Tensor) -> None:
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.windows[index], "labels": self.windows[index]}


def run_imprint(
    model_dir: Path, train: torch.Tensor, val: torch.Tensor, steps: int, work: Path
) -> Measurement:
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
    stamps = _ImprintStamps()
    started = time.perf_counter()
    run_training(
        model_path=model_dir,
        train_windows=train,
        val_windows=val,
        config=config,
        callbacks=stamps,
        work_dir=work,
        device="cpu",
    )
    return Measurement(steady_rate(stamps.stamps, BATCH * CONTEXT), time.perf_counter() - started)


def run_trainer(model_dir: Path, train: torch.Tensor, steps: int, work: Path) -> Measurement:
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
    stamps = _TrainerStamps()
    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    trainer = Trainer(model=model, args=arguments, train_dataset=_Windows(train), callbacks=[stamps])
    with contextlib.redirect_stdout(io.StringIO()):  # Trainer prints its summary dict
        trainer.train()
    return Measurement(steady_rate(stamps.stamps, BATCH * CONTEXT), time.perf_counter() - started)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and rounds (under a minute)")
    args = parser.parse_args()
    steps, rounds = (20, 2) if args.quick else (60, 4)
    allocator = reuse_freed_memory()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        texts = synthetic_corpus()
        model_dir = build_tiny_model(root / "bench-model", texts, **BENCH_MODEL)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        ids = encode_documents(texts, tokenizer)
        train, val = split_windows(make_windows(ids, CONTEXT))
        params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(model_dir).parameters())
        print(
            f"model: GPT-2 {BENCH_MODEL['n_layer']} layers x {BENCH_MODEL['n_embd']}, vocab {len(tokenizer)}, "
            f"{params / 1e6:.2f}M params; {len(train)} train windows of {CONTEXT}; batch {BATCH}; "
            f"{steps} steps x {rounds} rounds; torch threads {torch.get_num_threads()}; "
            f"allocator reuse: {allocator}"
        )
        run_imprint(model_dir, train, val, WARMUP_STEPS + 2, root / "warm-imprint")
        run_trainer(model_dir, train, WARMUP_STEPS + 2, root / "warm-trainer")
        imprint: list[Measurement] = []
        trainer: list[Measurement] = []
        for round_index in range(rounds):
            # Alternate which loop goes first so that machine drift does not favour either.
            order = ("imprint", "trainer") if round_index % 2 == 0 else ("trainer", "imprint")
            for name in order:
                work = root / f"{name}-{round_index}"
                if name == "imprint":
                    imprint.append(run_imprint(model_dir, train, val, steps, work))
                else:
                    trainer.append(run_trainer(model_dir, train, steps, work))
                latest = (imprint if name == "imprint" else trainer)[-1]
                print(
                    f"  round {round_index + 1} {name:8s} {latest.tokens_per_second:8.0f} tok/s"
                    f"   wall {latest.wall_seconds:6.2f} s"
                )
        imprint_rate = statistics.median(m.tokens_per_second for m in imprint)
        trainer_rate = statistics.median(m.tokens_per_second for m in trainer)
        print(f"imprint run_training: {imprint_rate:.0f} tok/s")
        print(f"transformers Trainer: {trainer_rate:.0f} tok/s")
        print(f"demo model (tiny config, build + 60 steps, batch {BATCH}): {time_demo_model(root):.2f} s")
        print(f"ratio: {imprint_rate / trainer_rate:.3f}")


if __name__ == "__main__":
    main()
