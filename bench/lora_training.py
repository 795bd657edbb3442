"""LoRA against full fine-tuning of the same base on the same windows and batch: tokens/s and peak
memory of Imprint's training loop (training.loop.run_training), one run each, in separate
processes (so each peak is its own).

    .venv/bin/python bench/lora_training.py --quick   # a 4-layer 512-wide GPT-2, under a minute
    .venv/bin/python bench/lora_training.py           # GPT-2 small config

Peak memory is the process's peak resident set (ru_maxrss) minus its resident set before the run;
on CUDA, torch's peak allocated bytes. Last line: `ratio: X` with X = LoRA tok/s / full tok/s
(goals: >= 1.2, and LoRA's peak memory <= 0.5x full's). Also reported: LoRA with adapters only, LoRA
recomputing activations (`activations: recompute`) and LoRA with adapter dropout 0.05 (the default is
none: its masks are drawn over every adapted projection's input, every step).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def one_run(method: str, quick: bool, token_rows: int | None = None, recompute: bool = False,
            dropout: float | None = None) -> dict:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from training.loop import TrainConfig, TrainingCallbacks, run_training
    from training.tiny import train_tokenizer
    from tests.support.corpus import corpus_documents

    class Speed(TrainingCallbacks):
        def __init__(self):
            self.rates = []

        def on_step(self, step, loss, lr, tokens_per_second):
            self.rates.append(tokens_per_second)

    size = dict(n_layer=4, n_head=8, n_embd=512) if quick else dict(n_layer=12, n_head=12, n_embd=768)
    seq, batch, steps = (128, 4, 8) if quick else (256, 4, 8)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "base"
        tokenizer = train_tokenizer(corpus_documents(), vocab_size=2000, model_max_length=1024)
        torch.manual_seed(0)
        GPT2LMHeadModel(GPT2Config(vocab_size=50257, n_positions=1024, bos_token_id=0, eos_token_id=0,
                                   **size)).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        windows = torch.randint(1, 2000, (64, seq + 1))  # context + 1 tokens: every token a target
        device = "cuda" if torch.cuda.is_available() else "cpu"
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        speed = Speed()
        rows = {} if token_rows is None else {"lora_token_embeddings": token_rows}
        rows |= {"activations": "recompute"} if recompute else {}
        rows |= {"lora_dropout": dropout} if dropout is not None else {}
        config = TrainConfig(steps=steps, batch_size=batch, context_length=seq, sample_every=10**6,
                             checkpoint_every=10**6, sample_count=0, eval_max_windows=1, method=method, **rows)
        run_training(model_path=folder, train_windows=windows[:48], val_windows=windows[48:], config=config,
                     callbacks=speed, work_dir=Path(tmp) / "run", device=device)
        peak = (torch.cuda.max_memory_allocated() if device == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before)
        return {"tok_s": statistics.median(speed.rates[2:]), "peak": peak, "device": device}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--one", choices=["lora", "full"])
    parser.add_argument("--token-rows", type=int, default=None, help="(with --one lora) lora_token_embeddings")
    parser.add_argument("--recompute", action="store_true", help="(with --one) activations: recompute")
    parser.add_argument("--dropout", type=float, default=None, help="(with --one lora) lora_dropout")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.one, args.quick, args.token_rows, args.recompute, args.dropout)))
        return
    results = {}
    # LoRA as jobs train it (with the data's token rows, up to 1,024 here), and adapters alone.
    # And LoRA recomputing activations: less memory for more compute.
    for name, extra in (("full", ["--one", "full"]), ("lora", ["--one", "lora"]),
                        ("lora, adapters only", ["--one", "lora", "--token-rows", "0"]),
                        ("lora, recomputing activations", ["--one", "lora", "--recompute"]),
                        ("lora, adapter dropout 0.05", ["--one", "lora", "--dropout", "0.05"])):
        cmd = [sys.executable, __file__, *extra] + (["--quick"] if args.quick else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        results[name] = json.loads(out)
        print(f"{name}: {results[name]['tok_s']:.0f} tok/s, peak {results[name]['peak'] / 1e6:.0f} MB "
              f"({results[name]['device']})")
    only = results["lora, adapters only"]
    print(f"adapters only: {only['tok_s'] / results['full']['tok_s']:.3f}x full's tok/s, "
          f"peak {only['peak'] / results['full']['peak']:.2f}x")
    again = results["lora, recomputing activations"]
    print(f"recomputing activations: {again['tok_s'] / results['full']['tok_s']:.3f}x full's tok/s, "
          f"peak {again['peak'] / results['full']['peak']:.2f}x")
    dropped = results["lora, adapter dropout 0.05"]
    print(f"adapter dropout 0.05: {dropped['tok_s'] / results['full']['tok_s']:.3f}x full's tok/s, "
          f"peak {dropped['peak'] / results['full']['peak']:.2f}x")
    print(f"memory: LoRA peak = {results['lora']['peak'] / results['full']['peak']:.2f}x full")
    print(f"ratio: {results['lora']['tok_s'] / results['full']['tok_s']:.3f}")


if __name__ == "__main__":
    main()
