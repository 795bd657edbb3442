"""A tiny GPT-2 actually trained with the project's own loop, to a measured validation perplexity.

Anything about model behaviour (watermark power, quality cost) is measured on such a model: random
weights sample near-uniformly (very high entropy) and a briefly trained one is still far more
random than a converged fine-tune, so power measured on them does not carry over.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
from pathlib import Path

from training.loop import TrainConfig, TrainingCallbacks, run_training
from training.textdata import encode_documents, make_windows, split_windows
from training.tiny import build_tiny_model


@contextlib.contextmanager
def one_torch_thread():
    """Train a tiny model on one thread: its matmuls are too small to gain from two, and on a
    machine whose cores are busy with other work two threads waiting on each other ran 8x slower."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _LastEval(TrainingCallbacks):
    def __init__(self):
        self.perplexity = math.nan

    def on_eval(self, step, val_loss, perplexity):
        self.perplexity = perplexity


def train_tiny(folder: Path, documents: list[str], *, steps: int = 150, context_length: int = 128,
               n_positions: int = 256, learning_rate: float = 3e-3, batch_size: int = 16,
               seed: int = 0, vocab_size: int = 512) -> dict:
    """Build the tiny GPT-2 (tokenizer trained on `documents`) and train it with `run_training` on
    90 % of the windows; returns {"folder", "val_perplexity", "step"} measured on the other 10 %."""
    from transformers import AutoTokenizer

    folder = build_tiny_model(Path(folder), documents, vocab_size=vocab_size, n_positions=n_positions)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = encode_documents(documents, tokenizer)
    train, val = split_windows(make_windows(ids, context_length), 0.1, seed=seed)
    config = TrainConfig(steps=steps, learning_rate=learning_rate, batch_size=batch_size,
                         context_length=context_length, seed=seed, warmup_steps=max(1, steps // 20),
                         sample_every=steps, sample_count=0, checkpoint_every=steps, eval_max_windows=None)
    evals = _LastEval()
    with one_torch_thread(), tempfile.TemporaryDirectory() as work:
        result = run_training(model_path=folder, train_windows=train, val_windows=val, config=config,
                              callbacks=evals, work_dir=Path(work), device="cpu")
        for item in result.output_dir.iterdir():
            shutil.copy2(item, folder / item.name)
    return {"folder": folder, "val_perplexity": evals.perplexity, "step": result.step}
