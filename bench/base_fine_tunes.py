"""A full fine-tune and a LoRA of the built-in base on the public-domain poems, as plain Hugging Face
folders, for benches that measure "a fine-tune and a LoRA of the built-in base" (bench/watermark_recall.py).

Both run through the project's loop (training.loop.run_training) on the poems base_quality.py
writes out (sixteen to train on, four held out), batch 8, context 64, evaluating every 10 steps and
stopping early after 3 evaluations without improvement, as bench/base_quality.py does:

- full: every weight trained, lr 3e-4 (the base's full fine-tuning rate), 10-step warmup;
- lora: adapters (rank 8, alpha 16, the loop's default targets, the data's token rows) beside the
  frozen base, at the base's LoRA rate (2e-3);
  the loop saves the adapter only, so it is merged into the base with peft's merge_and_unload (as a
  merged download of a LoRA version is) and the merged folder is what benches load.

    .venv/bin/python bench/base_fine_tunes.py --base-folder /work/artifacts/imprint-base-full \
        --out var/bench/base-fine-tunes

Writes OUT/full, OUT/lora-adapter, OUT/lora-merged and OUT/poems-held-out.txt (the held-out poems,
one per document separated by <|endoftext|>: the human text a bench mixes watermarked text into).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent))

from base_quality import BATCH, CONTEXT, split_poems  # noqa: E402

from training.builtin_base import FINE_TUNE_DEFAULTS  # noqa: E402  (plain Python)

SEPARATOR = "\n<|endoftext|>\n"


def train(name: str, base: Path, method: str, steps: int, lr: float, out: Path, work: Path) -> dict:
    from transformers import AutoTokenizer

    from training.config import TrainConfig
    from training.loop import run_training
    from training.textdata import encode_documents, make_windows

    train_docs, val_docs = split_poems()
    tokenizer = AutoTokenizer.from_pretrained(base)
    train_ids, val_ids = encode_documents(train_docs, tokenizer), encode_documents(val_docs, tokenizer)
    config = TrainConfig(steps=steps, learning_rate=lr, warmup_steps=10, batch_size=BATCH, context_length=CONTEXT,
                         sample_every=10, sample_count=0, eval_max_windows=None, checkpoint_every=steps,
                         keep_checkpoints=1, early_stopping_patience=3, seed=7, method=method)
    started = time.monotonic()
    result = run_training(model_path=base, train_windows=make_windows(train_ids, CONTEXT),
                          val_windows=make_windows(val_ids, CONTEXT), config=config, work_dir=work / name,
                          device="cpu")
    target = out / (name if method == "full" else f"{name}-adapter")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(result.output_dir, target)
    facts = {"method": method, "status": result.status, "steps": result.step, "learning_rate": lr,
             "val_loss": result.val_loss, "val_perplexity": math.exp(result.val_loss),
             "seconds": round(time.monotonic() - started, 1), "base": str(base)}
    if method == "lora":
        facts["merged"] = str(merge(base, target, out / f"{name}-merged"))
    (out / f"{name}.json").write_text(json.dumps(facts, indent=1) + "\n")
    return facts


def merge(base: Path, adapter: Path, merged: Path) -> Path:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).merge_and_unload()
    shutil.rmtree(merged, ignore_errors=True)
    model.save_pretrained(merged, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt"):
        if (adapter / name).is_file():
            shutil.copy2(adapter / name, merged / name)
    return merged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-folder", required=True, help="the built-in base (a Hugging Face folder)")
    parser.add_argument("--out", default=str(ROOT.parent / "var" / "bench" / "base-fine-tunes"))
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "poems-held-out.txt").write_text(SEPARATOR.join(split_poems()[1]) + "\n")
    base = Path(args.base_folder)
    with tempfile.TemporaryDirectory() as tmp:
        for name, method, lr in (("full", "full", FINE_TUNE_DEFAULTS["learning_rate"]),
                                 ("lora", "lora", FINE_TUNE_DEFAULTS["lora_learning_rate"])):
            facts = train(name, base, method, args.steps, lr, out, Path(tmp))
            print(f"{name}: {facts['status']} at step {facts['steps']} in {facts['seconds']:.0f} s, "
                  f"validation perplexity {facts['val_perplexity']:.2f}", flush=True)
    print(f"written to {out}: full, lora-adapter, lora-merged, poems-held-out.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
