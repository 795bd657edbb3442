"""Decode speed: Imprint's engine against CTranslate2 on the same weights, in one run.

A GPT-2-small-config model (124M parameters, random weights: speed does not depend on what the
weights learnt) is built here, then converted with CTranslate2's own converter in the same run, once
in float32 and once quantised to int8. Both engines decode greedily from the same 32-token prompt(s)
exactly N new tokens (64; 24 with --quick), on the same threads (CTranslate2 `intra_threads` = torch's
threads), at three points:

- fp32, batch 1:   Imprint precision "fp32"  vs CTranslate2 compute_type "float32"
- int8, batch 1:   Imprint precision "int8"  vs CTranslate2 compute_type "int8"
- int8, batch 8:   8 requests submitted at once (different prompts; Imprint batches them in its
                   serving thread as it would 8 clients) vs one `generate_batch` of 8 prompts

Imprint's side is `Engine.generate`/`submit` (queue, serving thread, batched prefill, lean forward,
sampling code, bookkeeping) without a watermark, as CTranslate2 has no per-step logits hook to apply
one (one Imprint run with the watermark is reported besides). Rounds alternate engines after an
untimed warm-up, with a pause before each run (both engines' thread pools spin after their work);
the median of each is compared.

    .venv/bin/pip install -r requirements-bench.txt         # ctranslate2: a benchmark-only dependency
    .venv/bin/python bench/decode_vs_ctranslate2.py --quick  # under a minute on 2 cores
    .venv/bin/python bench/decode_vs_ctranslate2.py          # the full run

The last line is `ratio: X` with X = the lowest of the three Imprint/CTranslate2 tok/s ratios
(higher is better; the goal is >= 1.0).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent))

from generation_overhead import GPT2_SMALL, PROMPT_WORDS, build_model, decode_arguments

POINTS = [("fp32", 1), ("int8", 1), ("int8", 8)]
CT2_TYPES = {"fp32": "float32", "int8": "int8"}


def ct2_convert(folder: Path, out: Path, quantization: str | None) -> Path:
    """CTranslate2's own Transformers converter. The bench model's tokenizer (trained on the prompt
    words) has fewer entries than GPT-2's 50257 embeddings, which the converter refuses; the
    vocabulary is padded with placeholder tokens that the prompts never use."""
    from ctranslate2.converters import transformers as ct2_transformers

    class PaddedGPT2Loader(ct2_transformers.GPT2Loader):
        def get_vocabulary(self, model, tokenizer):
            tokens = list(super().get_vocabulary(model, tokenizer))
            return tokens + [f"<unused_{i}>" for i in range(model.config.vocab_size - len(tokens))]

    ct2_transformers._MODEL_LOADERS["GPT2Config"] = PaddedGPT2Loader()
    ct2_transformers.TransformersConverter(str(folder)).convert(str(out), quantization=quantization, force=True)
    return out


def prompts_for(tokenizer, count: int, length: int) -> list[str]:
    words = PROMPT_WORDS * 8
    prompts = []
    for i in range(count):
        text = " ".join(words[i:i + length])
        while len(tokenizer(text)["input_ids"]) > length:
            text = text.rsplit(" ", 1)[0]
        prompts.append(text)
    return prompts


def main() -> None:
    args, new_tokens, rounds = decode_arguments(__doc__, quick=(24, 2), full=(64, 4))

    import ctranslate2
    import torch

    from inference.engine import Engine, GenerationRequest
    from inference.watermark import WatermarkKey

    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="imprint-ct2-") as tmp:
        folder = build_model(Path(tmp) / "model", GPT2_SMALL)
        t = time.perf_counter()
        ct2_dirs = {p: ct2_convert(folder, Path(tmp) / f"ct2-{p}", None if p == "fp32" else "int8")
                    for p in CT2_TYPES}
        convert_s = time.perf_counter() - t
        engine = Engine(cache_bytes=4 * 1024**3, max_batch=8)
        digest = "c" * 64
        loaded = engine.load(digest, folder)
        tokenizer = loaded.tokenizer
        prompts = prompts_for(tokenizer, 8, args.prompt_tokens)
        prompt_tokens = [tokenizer.convert_ids_to_tokens(tokenizer(p)["input_ids"]) for p in prompts]
        generators = {p: ctranslate2.Generator(str(d), device="cpu", compute_type=CT2_TYPES[p],
                                               intra_threads=threads, inter_threads=1)
                      for p, d in ct2_dirs.items()}

        def imprint(precision: str, batch: int, watermark=None) -> float:
            requests = [GenerationRequest(model_digest=digest, model_dir=folder, prompt=prompts[i], temperature=0,
                                          max_new_tokens=new_tokens, stop_at_eos=False, precision=precision,
                                          watermark=watermark) for i in range(batch)]
            t = time.perf_counter()
            futures = [engine.submit(r) for r in requests]
            results = [f.result() for f in futures]
            elapsed = time.perf_counter() - t
            assert all(len(c.token_ids) == new_tokens for r in results for c in r.completions)
            assert all(r.precision == precision for r in results)
            return batch * new_tokens / elapsed

        def ct2(precision: str, batch: int) -> float:
            t = time.perf_counter()
            out = generators[precision].generate_batch(
                prompt_tokens[:batch], max_length=new_tokens, min_length=new_tokens, sampling_topk=1,
                include_prompt_in_result=False)
            elapsed = time.perf_counter() - t
            assert all(len(r.sequences_ids[0]) == new_tokens for r in out)
            return batch * new_tokens / elapsed

        for precision, batch in POINTS:  # warm-up: kernels, the lean forwards' set-up, allocator
            imprint(precision, batch)
            ct2(precision, batch)
        runs = {(engine_name, p, b): [] for engine_name in ("imprint", "ct2") for p, b in POINTS}
        for r in range(rounds):
            for precision, batch in POINTS:
                order = ("imprint", "ct2") if r % 2 == 0 else ("ct2", "imprint")
                for name in order:
                    # Both engines' thread pools spin for a while after their work (Intel OpenMP
                    # 200 ms by default, CTranslate2 ships it): a pause keeps one engine's spinning
                    # threads from stealing the cores the other just started on.
                    time.sleep(0.5)
                    runs[(name, precision, batch)].append(
                        (imprint if name == "imprint" else ct2)(precision, batch))
        watermarked = imprint("int8", 1, watermark=WatermarkKey(0xBE7C4))
        engine.close()

    print(f"GPT-2-small config (124.4M parameters, random weights), prompt {args.prompt_tokens} tokens, "
          f"{new_tokens} new tokens greedy, {threads} threads, CTranslate2 {ctranslate2.__version__}, "
          f"torch {torch.__version__}; conversion {convert_s:.1f} s; {rounds} rounds, medians")
    print(f"{'point':<14}{'Imprint tok/s':>15}{'CTranslate2 tok/s':>19}{'Imprint/CT2':>13}")
    ratios = []
    for precision, batch in POINTS:
        mine = statistics.median(runs[("imprint", precision, batch)])
        theirs = statistics.median(runs[("ct2", precision, batch)])
        ratios.append(mine / theirs)
        print(f"{precision + ' batch ' + str(batch):<14}{mine:>15.1f}{theirs:>19.1f}{mine / theirs:>13.2f}")
    print(f"Imprint int8 batch 1 with the per-grant watermark: {watermarked:.1f} tok/s")
    print(f"ratio: {min(ratios):.3f}")


if __name__ == "__main__":
    main()
