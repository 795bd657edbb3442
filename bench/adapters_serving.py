"""Many LoRA adapters on one resident base: memory, cold-adapter latency and mixed-batch throughput.

A GPT-2-small-config base (random weights: speed does not depend on what a model learnt) and N random
r = 8 adapters on all four GPT-2 projections (with `--token-rows K`, each also replaces K token
embedding rows, as jobs' adapters do), made in the run on a thread that then ends, so that the
engine's thread is the only one that ran torch (as in the servers: a thread that has run torch
keeps an OpenMP team while it lives, which slows the engine's; see core.torch_runtime). It reports:
- resident memory: the engine cache's bytes for the base alone, then with all N adapters loaded;
- first-token latency of a request on a cold adapter (read from disk on admission) against a warm one;
- aggregate tok/s of 8 concurrent requests on 8 different adapters against 8 concurrent requests on
  one merged (whole) model, same engine settings, same run, greedy, no EOS stop.

    .venv/bin/python bench/adapters_serving.py --quick   # a smaller base config, under a minute
    .venv/bin/python bench/adapters_serving.py           # GPT-2 small config, 1,000 adapters

Last line: `ratio: X` with X = multi-adapter tok/s / merged-model tok/s (goal >= 0.85).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

from core.torch_runtime import on_passing_thread  # noqa: E402
from inference.engine import Engine, GenerationRequest  # noqa: E402
from tests.support.adapters import merged_model, random_adapter  # noqa: E402
from tests.support.corpus import corpus_documents  # noqa: E402
from training.tiny import train_tokenizer  # noqa: E402


def base_folder(root: Path, quick: bool) -> Path:
    folder = root / "base"
    tokenizer = train_tokenizer(corpus_documents(), vocab_size=2000, model_max_length=1024)
    size = dict(n_layer=4, n_head=8, n_embd=512) if quick else dict(n_layer=12, n_head=12, n_embd=768)
    # GPT-2 small's vocabulary, so the lm_head costs what it costs there (ids above the tokenizer's are never fed)
    config = GPT2Config(vocab_size=50257, n_positions=1024, bos_token_id=0, eos_token_id=0, **size)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def request(digest, folder, base, prompt, new, on_token=None):
    extra = {"base_digest": "base", "base_dir": base} if base else {}
    return GenerationRequest(model_digest=digest, model_dir=folder, prompt=prompt, max_new_tokens=new,
                             temperature=0, stop_at_eos=False, on_token=on_token, **extra)


def first_token_ms(engine, req_factory) -> float:
    seen = threading.Event()
    started = time.perf_counter()
    future = engine.submit(req_factory(lambda _e: seen.set()))
    seen.wait(60)
    elapsed = (time.perf_counter() - started) * 1000
    future.result(60)
    return elapsed


def aggregate(engine, requests) -> float:
    started = time.perf_counter()
    results = [f.result(600) for f in [engine.submit(r) for r in requests]]
    return sum(r.completion_tokens for r in results) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--adapters", type=int)
    parser.add_argument("--new", type=int)
    parser.add_argument("--token-rows", type=int, default=0,
                        help="token embedding rows per adapter (jobs train up to 1,024 by default)")
    args = parser.parse_args()
    count = args.adapters or (100 if args.quick else 1000)
    new = args.new or (16 if args.quick else 32)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)

        def build():
            base = base_folder(root, args.quick)
            adapters = [random_adapter(root / f"a{i}", base, seed=i, r=8, std=0.02, tokens=args.token_rows)
                        for i in range(count)]
            cold = random_adapter(root / "cold", base, seed=10**6, r=8, std=0.02, tokens=args.token_rows)
            return base, adapters, merged_model(adapters[0], base, root / "merged"), cold

        base, adapters, merged, cold_dir = on_passing_thread(build)
        # Room for every adapter (1,000 at GPT-2-small size: 4.7 GB), so none is evicted.
        engine = Engine(cache_bytes=16 * 1024**3, adapter_bytes=8 * 1024**3, max_batch=8)
        prompt = "In the beginning was the word, and the word"
        engine.generate(request("base", base, None, prompt, 2))  # builds the lean forward
        base_bytes = engine.cache.used_bytes
        for i, folder in enumerate(adapters):
            engine.cache.adapter(f"a{i}", folder, base_digest="base")
        with_adapters = engine.cache.used_bytes
        per_adapter = (with_adapters - base_bytes) / count
        print(f"resident: base {base_bytes / 1e6:.1f} MB (weights + lean copies); + {count} adapters "
              f"{with_adapters / 1e6:.1f} MB; {per_adapter / 1e6:.3f} MB per adapter = "
              f"{100 * per_adapter / base_bytes:.3f} % of the base")
        warm = statistics.median(first_token_ms(engine, lambda cb: request("a1", adapters[1], base, prompt, 2, cb))
                                 for _ in range(3))
        cold = first_token_ms(engine, lambda cb: request("cold", cold_dir, base, prompt, 2, cb))
        print(f"first token: warm adapter {warm:.1f} ms, cold adapter {cold:.1f} ms (+{cold - warm:.1f} ms)")

        engine.generate(request("merged", merged, None, prompt, 2))
        multi_runs, merged_runs, bare_runs = [], [], []
        for _ in range(2 if args.quick else 3):  # alternate, so machine noise hits all alike
            multi_runs.append(aggregate(engine, [request(f"a{i}", adapters[i], base, prompt, new) for i in range(8)]))
            merged_runs.append(aggregate(engine, [request("merged", merged, None, prompt, new) for _ in range(8)]))
            bare_runs.append(aggregate(engine, [request("base", base, None, prompt, new) for _ in range(8)]))
        multi, whole, bare = max(multi_runs), max(merged_runs), max(bare_runs)
        # The bare base runs on the very model (and engine copies) the adapters run on: against it,
        # only the adapters' own work is counted; the merged model is a second resident model.
        print(f"8 concurrent requests, {new} new tokens each: 8 adapters {multi:.1f} tok/s, "
              f"one merged model {whole:.1f} tok/s, the bare base {bare:.1f} tok/s "
              f"(adapters / bare base: {multi / bare:.3f})")
        engine.close()
        print(f"ratio: {multi / whole:.3f}")


if __name__ == "__main__":
    main()
