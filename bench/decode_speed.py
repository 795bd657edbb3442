"""Decode speed at batch 1: Imprint's engine against Hugging Face `model.generate`, in one run.

The same GPT-2-small-sized model (124M parameters, random weights, fp32) — the very same loaded
weights for both —, the same 32-token prompt, greedy decoding of exactly N new tokens (128; fewer
with --quick). Imprint's side is `Engine.generate` (queue, serving thread, lean forward with its
static per-row KV cache and two-core batch-1 kernels, sampling, bookkeeping), without the
watermark so both do the same work (one engine run with the watermark is reported besides).

Memory bandwidth is measured in the same run (best of several copies of a 256 MiB tensor, read +
write bytes) and the batch-1 limit printed: bandwidth / weight bytes read per token.

    .venv/bin/python bench/decode_speed.py --quick    # under a minute on 2 cores
    .venv/bin/python bench/decode_speed.py            # the full run

Runs alternate (generate, engine, engine, generate, ...) after an untimed warm-up of each; the last
line is `ratio: X` with X = the median over back-to-back pairs of engine tok/s / generate tok/s
(higher is better; the goal is >= 1.5).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent))

from generation_overhead import GPT2_SMALL, PROMPT_WORDS, build_model, decode_arguments


def bandwidth_gbs(mib: int = 256, reps: int = 6) -> float:
    """Memory bandwidth in GB/s: best copy of a `mib` MiB fp32 tensor (bytes read + bytes written)."""
    import torch

    src = torch.ones(mib * 1024 * 1024 // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t)
    return 2 * src.numel() * 4 / best / 1e9


def main() -> None:
    args, new_tokens, rounds = decode_arguments(__doc__, quick=(32, 2), full=(128, 3))

    import torch

    from inference.engine import Engine, GenerationRequest, model_nbytes
    from inference.watermark import WatermarkKey

    with tempfile.TemporaryDirectory(prefix="imprint-decode-") as tmp:
        folder = build_model(Path(tmp) / "model", GPT2_SMALL)
        engine = Engine(cache_bytes=4 * 1024**3)
        digest = "b" * 64
        t = time.perf_counter()
        loaded = engine.load(digest, folder)
        prompt = " ".join((PROMPT_WORDS * 8)[:args.prompt_tokens])
        prompt_ids = torch.tensor([loaded.tokenizer(prompt)["input_ids"]], device=loaded.device)
        model = loaded.model
        # Weight bytes read per token: every parameter once (the tied lm_head is the embedding).
        weight_bytes = model_nbytes(model)

        def request(**kwargs) -> GenerationRequest:
            return GenerationRequest(model_digest=digest, model_dir=folder, prompt=prompt, temperature=0,
                                     max_new_tokens=new_tokens, stop_at_eos=False, **kwargs)

        def run_generate() -> float:
            t = time.perf_counter()
            with torch.inference_mode():
                out = model.generate(prompt_ids, attention_mask=torch.ones_like(prompt_ids), do_sample=False,
                                     max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0)
            assert out.shape[1] - prompt_ids.shape[1] == new_tokens
            return new_tokens / (time.perf_counter() - t)

        def run_engine(**kwargs) -> float:
            t = time.perf_counter()
            result = engine.generate(request(**kwargs))
            assert result.completion_tokens == new_tokens
            return new_tokens / (time.perf_counter() - t)

        # Warm-up (and the engine's one-time set-up: the lean forward and its kernel choice).
        engine.generate(request())
        setup_s = time.perf_counter() - t
        run_generate()

        same = engine.generate(request()).completions[0].token_ids
        with torch.inference_mode():
            ref = model.generate(prompt_ids, attention_mask=torch.ones_like(prompt_ids), do_sample=False,
                                 max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0)
        identical = same == ref[0, prompt_ids.shape[1]:].tolist()

        gbs = bandwidth_gbs()
        print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, threads {torch.get_num_threads()}, "
              f"device {loaded.device}; GPT-2-small config ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M "
              f"params, {weight_bytes / 1e6:.1f} MB), prompt {prompt_ids.shape[1]} tokens, {new_tokens} new, greedy")
        print(f"engine set-up (load + lean forward + kernel choice + first request): {setup_s:.1f} s")
        print(f"greedy tokens identical to generate: {identical}")
        gen, eng, ratios = [], [], []
        for i in range(rounds):
            pair = (run_generate(), run_engine()) if i % 2 == 0 else tuple(reversed((run_engine(), run_generate())))
            gen.append(pair[0])
            eng.append(pair[1])
            ratios.append(pair[1] / pair[0])
            print(f"round {i + 1}: generate {pair[0]:.1f} tok/s, engine {pair[1]:.1f} tok/s, x{ratios[-1]:.2f}")
        watermarked = run_engine(watermark=WatermarkKey(12345))
        gbs = max(gbs, bandwidth_gbs())
        limit = gbs * 1e9 / weight_bytes
        print(f"generate: median {statistics.median(gen):.1f} tok/s")
        print(f"engine:   median {statistics.median(eng):.1f} tok/s (with the watermark: {watermarked:.1f} tok/s)")
        print(f"memory bandwidth {gbs:.1f} GB/s -> batch-1 limit {limit:.1f} tok/s "
              f"({weight_bytes / 1e6:.1f} MB of weights per token); engine at "
              f"{100 * statistics.median(eng) / limit:.0f}% of it, generate at {100 * statistics.median(gen) / limit:.0f}%")
        engine.close()
        print(f"ratio: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
