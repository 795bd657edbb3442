"""Watermark recall on models that were actually trained, false positives, and robustness to edits.

Models (all built here, nothing downloaded):
  (a) the demo models: the demo's corpora (marketplace.demo_content) and training settings, trained
      with the project's loop (training.loop.run_training);
  (b) a tiny model trained on the test corpus to a moderate validation perplexity (10-40);
  (c) a GPT-2-small-config model (12 layers, 768 wide; the demo tokenizer's 512 tokens) with
      random weights.
For each: samples at temperature 1.0 under probe keys (one key per 4 samples), scored as the verify
page scores a pasted text (decoded, re-tokenised, entropies recomputed without the prompt) against
1,000 candidate keys, one of them the right one: recall at 100 and 200 tokens = share of samples
whose right key is found with z > 4 and Bonferroni-corrected p below the verifier's alpha (1e-6). False positives: clean texts
(held-out human text of the model's corpus, plain samples, and texts watermarked under keys that are
not candidates) tested against the same 1,000 keys. Robustness: recall at 200 tokens after 10 % of
the words were replaced by random words of the corpus. Quality: perplexity under the model itself of
watermarked vs plain samples.

    .venv/bin/python bench/watermark_recall.py --quick          # under a minute on 2 cores
    .venv/bin/python bench/watermark_recall.py                  # the full run
    .venv/bin/python bench/watermark_recall.py --sweep          # compare schemes and parameters

Last line: `ratio: X`, X = the lowest recall at 200 tokens over (a) and (b) (goal >= 0.95, with 0
false positives).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from inference.engine import Engine, GenerationRequest  # noqa: E402
from inference.watermark import (  # noqa: E402
    DEFAULT_ALPHA,
    DEFAULT_Z_THRESHOLD,
    LEFTHASH,
    SWEET,
    WatermarkKey,
    binomial_sf,
    scheme_build,
    text_entropies,
    watermark_key_derive,
    z_score,
)

ALPHA = DEFAULT_ALPHA  # the verifier's
CANDIDATES = 1000
ROWS = 4


def key_of(family: dict, i: int) -> WatermarkKey:
    return WatermarkKey(key=watermark_key_derive(secret=b"bench-secret", grant_id=f"grant-{i}"), **family)


def build_models(work: Path, quick: bool) -> list[dict]:
    from marketplace.demo_content import harbour_logbook, kitchen_notes
    from marketplace.demo_content import DEMO_HYPERPARAMETERS as HP
    from tests.support.corpus import corpus_documents
    from tests.support.trained import train_tiny

    models = []
    demo = [("demo: Harbour Logbook", harbour_logbook, "At dawn, the Marigold"),
            ("demo: Kitchen Notes", kitchen_notes, "Warm the pan")]
    for name, corpus, prompt in demo[:1] if quick else demo:
        docs = corpus().split("\n<|endoftext|>\n")
        held_out, train_docs = docs[:40], docs[40:]
        started = time.perf_counter()
        trained = train_tiny(work / name.split()[-1], train_docs, steps=HP["steps"], context_length=HP["context_length"],
                             n_positions=max(128, HP["context_length"]), learning_rate=HP["learning_rate"],
                             batch_size=HP["batch_size"], seed=HP["seed"])
        models.append({"name": name, "folder": trained["folder"], "prompt": prompt, "human": held_out,
                       "val_ppl": trained["val_perplexity"], "train_s": time.perf_counter() - started,
                       "words": sorted({w for d in docs for w in d.split()})})
    docs = corpus_documents(count=240, length=60, seed=7)
    started = time.perf_counter()
    trained = train_tiny(work / "moderate", docs[40:], steps=120 if quick else 200, context_length=128)
    models.append({"name": "tiny trained (test corpus)", "folder": trained["folder"], "prompt": "the quick brown",
                   "human": docs[:40], "val_ppl": trained["val_perplexity"], "train_s": time.perf_counter() - started,
                   "words": sorted({w for d in docs for w in d.split()})})
    if not quick:
        models.append(_random_gpt2_small(work / "gpt2-small-random", models[0]))
    return models


def _random_gpt2_small(folder: Path, like: dict) -> dict:
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(like["folder"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_embd=768, n_layer=12,
                                           n_head=12, bos_token_id=0, eos_token_id=0, pad_token_id=0))
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return {"name": "GPT-2-small config, random weights", "folder": folder, "prompt": like["prompt"],
            "human": like["human"], "val_ppl": math.nan, "train_s": 0.0, "words": like["words"]}


def generate(engine: Engine, model: dict, watermark: WatermarkKey | None, *, seed: int, tokens: int,
             rows: int = ROWS) -> list[dict]:
    result = engine.generate(GenerationRequest(
        model_digest=str(model["folder"]), model_dir=model["folder"], prompt=model["prompt"], max_new_tokens=tokens,
        temperature=1.0, n=rows, seed=seed, stop_at_eos=False, watermark=watermark))
    return [{"text": c.text, "ids": c.token_ids, "prompt_ids": result.prompt_token_ids} for c in result.completions]


class Scorer:
    """Scores texts the way the verifier does, against a fixed set of candidate keys."""

    def __init__(self, engine: Engine, model: dict, family: dict, candidates: np.ndarray):
        self.loaded = engine.load(str(model["folder"]), model["folder"])
        self.scheme = scheme_build(family["scheme"], {k: v for k, v in family.items() if k != "scheme"})
        self.candidates = candidates

    def ids(self, text: str) -> list[int]:
        return self.loaded.tokenizer(text)["input_ids"]

    def verdict(self, text: str, length: int | None = None) -> tuple[int | None, float]:
        """(index of the detected candidate or None, best z)."""
        ids = self.ids(text)
        if length is not None:
            ids = ids[:length + 1]
        scheme = self.scheme
        entropies = (text_entropies(self.loaded.model, ids, n_positions=self.loaded.n_positions)
                     if scheme.needs_entropies else None)
        previous, tokens = scheme.scored_pairs(ids, entropies=entropies)
        counts = scheme.green_counts(self.candidates, previous=previous, tokens=tokens)
        best = int(np.argmax(counts))
        n, g = len(tokens), int(counts[best])
        z = z_score(g, n, scheme.gamma)
        hit = z > DEFAULT_Z_THRESHOLD and binomial_sf(g, n, scheme.gamma) * len(self.candidates) < ALPHA
        return (best if hit else None), z

    def perplexity(self, samples: list[dict]) -> float:
        total, count = 0.0, 0
        for s in samples:
            ids = torch.tensor([s["prompt_ids"] + s["ids"]])
            with torch.inference_mode():
                logp = torch.log_softmax(self.loaded.model(input_ids=ids).logits[0, :-1].float(), dim=-1)
            nll = -logp[torch.arange(ids.shape[1] - 1), ids[0, 1:]][len(s["prompt_ids"]) - 1:]
            total, count = total + float(nll.sum()), count + len(s["ids"])
        return math.exp(total / max(1, count))

    def mean_entropy(self, samples: list[dict]) -> float:
        values = [text_entropies(self.loaded.model, self.ids(s["text"]), n_positions=self.loaded.n_positions)
                  for s in samples]
        return float(np.mean(np.concatenate(values)))


def replace_words(text: str, words: list[str], share: float, rng: random.Random) -> str:
    tokens = text.split(" ")
    for i in rng.sample(range(len(tokens)), k=max(1, round(share * len(tokens)))):
        tokens[i] = rng.choice(words)
    return " ".join(tokens)


def evaluate(engine: Engine, model: dict, family: dict, *, samples: int, clean: int, tokens: int) -> dict:
    keys = [key_of(family, i) for i in range(CANDIDATES + samples // ROWS)]
    candidates = np.array([k.key for k in keys[:CANDIDATES]], dtype=np.uint64)
    scorer = Scorer(engine, model, family, candidates)
    marked, plain = [], []
    for i in range(samples // ROWS):
        marked += [(s, i) for s in generate(engine, model, keys[i], seed=100 + i, tokens=tokens)]
        plain += generate(engine, model, None, seed=100 + i, tokens=tokens)
    rng = random.Random(0)
    out = {"recall": {}, "fp": 0, "clean_tested": 0}
    for length in (100, 200):
        hits = [scorer.verdict(s["text"], length)[0] == i for s, i in marked]
        out["recall"][length] = sum(hits) / len(hits)
    out["z_200"] = [round(scorer.verdict(s["text"], 200)[1], 1) for s, _ in marked]
    edited = [scorer.verdict(replace_words(s["text"], model["words"], 0.10, rng), 200)[0] == i for s, i in marked]
    out["recall_edited"] = sum(edited) / len(edited)
    # Clean: human text, plain samples, and other grants' watermarked text (keys not among candidates).
    clean_texts = list(model["human"]) + [s["text"] for s in plain]
    j = 0
    while len(clean_texts) < clean:
        outsider = key_of(family, 10_000 + j)
        clean_texts += [s["text"] for s in generate(engine, model, outsider, seed=5000 + j, tokens=tokens, rows=8)]
        j += 1
    clean_texts = clean_texts[:clean]
    out["fp"] = sum(scorer.verdict(t, 200)[0] is not None for t in clean_texts)
    out["clean_tested"] = len(clean_texts)
    out["clean_max_z"] = round(max(scorer.verdict(t, 200)[1] for t in clean_texts[:200]), 2)
    out["ppl_plain"] = scorer.perplexity(plain)
    out["ppl_marked"] = scorer.perplexity([s for s, _ in marked])
    out["entropy"] = scorer.mean_entropy(plain[:8])
    return out


FAMILIES = {
    "lefthash d2 (old)": {"scheme": LEFTHASH, "gamma": 0.25, "delta": 2.0},
    "sweet d3 t1.0 h1": {"scheme": SWEET, "gamma": 0.25, "delta": 3.0, "entropy_threshold": 1.0, "context_width": 1},
}
SWEEP = {
    "lefthash d4": {"scheme": LEFTHASH, "gamma": 0.25, "delta": 4.0},
    "sweet d2 t0.5 h1": {"scheme": SWEET, "gamma": 0.25, "delta": 2.0, "entropy_threshold": 0.5, "context_width": 1},
    "sweet d4 t0.5 h1": {"scheme": SWEET, "gamma": 0.25, "delta": 4.0, "entropy_threshold": 0.5, "context_width": 1},
    "sweet d2.5 t1.0 h1": {"scheme": SWEET, "gamma": 0.25, "delta": 2.5, "entropy_threshold": 1.0, "context_width": 1},
    "sweet d4 t0.5 h0": {"scheme": SWEET, "gamma": 0.25, "delta": 4.0, "entropy_threshold": 0.5, "context_width": 0},
    "sweet d6 t0.5 h1": {"scheme": SWEET, "gamma": 0.25, "delta": 6.0, "entropy_threshold": 0.5, "context_width": 1},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sweep", action="store_true", help="also compare other schemes and parameters")
    parser.add_argument("--samples", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    samples = args.samples or (8 if args.quick else 40)
    clean = 60 if args.quick else 1000
    families = {**FAMILIES, **(SWEEP if args.sweep else {})}
    current = "sweet d3 t1.0 h1"  # the settings' default for new grants
    started = time.perf_counter()
    engine = Engine(cache_bytes=2 * 1024**3)
    lowest = 1.0
    with tempfile.TemporaryDirectory() as tmp:
        models = build_models(Path(tmp), args.quick)
        for model in models:
            print(f"\n{model['name']}: validation perplexity {model['val_ppl']:.2f}, trained in {model['train_s']:.1f} s")
            for label, family in families.items():
                if args.quick and label != current and model is not models[0]:
                    continue
                t0 = time.perf_counter()
                # 1,000 clean texts for the current scheme on the trained models; fewer elsewhere.
                full = label == current and not model["name"].startswith("GPT-2")
                r = evaluate(engine, model, family, samples=samples, clean=clean if full else min(clean, 120),
                             tokens=208)
                print(f"  {label:20s} recall@100 {r['recall'][100]:.2f} @200 {r['recall'][200]:.2f} "
                      f"edited10% {r['recall_edited']:.2f} | FP {r['fp']}/{r['clean_tested']} (max clean z "
                      f"{r['clean_max_z']}) | ppl {r['ppl_plain']:.2f} -> {r['ppl_marked']:.2f} "
                      f"({r['ppl_marked'] / r['ppl_plain'] - 1:+.1%}) | entropy {r['entropy']:.2f} nats "
                      f"| z@200 min {min(r['z_200'])} median {np.median(r['z_200'])} | {time.perf_counter() - t0:.0f} s")
                if label == current and not model["name"].startswith("GPT-2"):
                    lowest = min(lowest, r["recall"][200])
    engine.close()
    print(f"\n{samples} watermarked samples per model, {CANDIDATES} candidate keys, alpha {ALPHA}; "
          f"{time.perf_counter() - started:.0f} s in all")
    print(f"ratio: {lowest:.3f}")


if __name__ == "__main__":
    main()
