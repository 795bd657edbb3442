"""Watermark recall against quality cost, per model and scheme: the frontier publishing chooses on.

Models (all built here, nothing downloaded; `--model FOLDER` adds any Hugging Face GPT-2 folder,
e.g. a fine-tune of the built-in base, and may be repeated):
  (a) the demo models: the demo's corpora (marketplace.demo_content) and training settings, trained
      with the project's loop (training.loop.run_training);
  (b) a tiny model trained on the test corpus to a moderate validation perplexity (10-40);
  (c) the tiny test model (random weights, the test corpus' tokenizer).
For each model and scheme: samples under probe keys (one key per 4 samples) at temperature 1.0,
scored as the verify page scores a pasted text (decoded, re-tokenised, entropies recomputed without
the prompt) against 1,000 candidate keys, one of them the right one. Recall at 50/100/200 tokens =
share of samples whose right key is found with z > 4 and Bonferroni-corrected p below the verifier's
alpha (1e-6); also at 200 tokens at temperature 0.7. False attributions: clean texts (held-out human
text of the model's corpus, plain samples, texts watermarked under keys that are not candidates)
tested against the same keys. Robustness: recall at 200 tokens after 10 % of the words were replaced
by random words of the corpus, and for the 200 tokens between two 100-token human passages.
Quality: perplexity under the model itself of watermarked vs plain samples (temperature 1).
Diversity: distinct texts among 20 identical requests (no seed), watermarked and plain.
Reference: transformers' SynthID-Text (tournament sampling, ngram 5, 30 keys; one key set per
generate call), scored with the frequentist mean-g test (exact binomial tail) among 1,000 key sets.

    .venv/bin/python bench/watermark_recall.py --quick          # a few minutes on 2 cores
    .venv/bin/python bench/watermark_recall.py                  # the full run
    .venv/bin/python bench/watermark_recall.py --model path/to/fine-tune --model path/to/other
    # only a fine-tune and a LoRA of the built-in base (built by bench/base_fine_tunes.py), with the
    # held-out poems as their human text:
    .venv/bin/python bench/watermark_recall.py --given-only --human var/bench/base-fine-tunes/poems-held-out.txt \
        --model var/bench/base-fine-tunes/full --name "base full fine-tune" \
        --model var/bench/base-fine-tunes/lora-merged --name "base LoRA (merged)"

Last line: `ratio: X`, X = the lowest over the models of (recall@200 of the scheme the platform
chooses for it / 0.95), counted 0 where its perplexity cost exceeds 5 % (goal >= 1, with 0 false
attributions).
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
    GUMBEL,
    LEFTHASH,
    SWEET,
    WatermarkKey,
    binomial_sf,
    scheme_build,
    text_entropies,
    watermark_key_derive,
)
from inference.watermark.choice import RECALL_GOAL, Measured, watermark_pick  # noqa: E402

ALPHA = DEFAULT_ALPHA  # the verifier's
CANDIDATES = 1000
ROWS = 4
COST_BOUND = 0.05
LENGTHS = (50, 100, 200)


def key_of(family: dict, i: int) -> WatermarkKey:
    params = {k: v for k, v in family.items() if k != "scheme"}
    return WatermarkKey(watermark_key_derive(secret=b"bench-secret", grant_id=f"grant-{i}"), family["scheme"], **params)


def _words(docs: list[str]) -> list[str]:
    return sorted({w for d in docs for w in d.split()})


def given_models(extra: list[str], prompt: str, human_file: str, names: list[str]) -> list[dict]:
    """The models given with --model; their human text: the documents of `human_file` (separated by
    <|endoftext|>, e.g. the held-out poems bench/base_fine_tunes.py writes), whose words also stand in
    for the 10 % replacement."""
    docs = [d.strip() for d in Path(human_file).read_text(encoding="utf-8").split("<|endoftext|>") if d.strip()]
    return [{"name": name or f"given: {path}", "folder": Path(path), "prompt": prompt, "human": docs,
             "val_ppl": math.nan, "train_s": 0.0, "words": _words(docs)}
            for path, name in zip(extra, names + [""] * len(extra))]


def build_models(work: Path, quick: bool, extra: list[str], prompt: str) -> list[dict]:
    from marketplace.demo_content import DEMO_HYPERPARAMETERS as HP
    from marketplace.demo_content import harbour_logbook, kitchen_notes
    from tests.support.corpus import corpus_documents
    from tests.support.trained import train_tiny
    from training.tiny import build_tiny_model

    models = []
    demo = [("demo: Harbour Logbook", harbour_logbook, "At dawn, the Marigold"),
            ("demo: Kitchen Notes", kitchen_notes, "Warm the pan")]
    for name, corpus, demo_prompt in demo[:1] if quick else demo:
        docs = corpus().split("\n<|endoftext|>\n")
        held_out, train_docs = docs[:40], docs[40:]
        started = time.perf_counter()
        trained = train_tiny(work / name.split()[-1], train_docs, steps=HP["steps"], context_length=HP["context_length"],
                             n_positions=max(256, HP["context_length"]), learning_rate=HP["learning_rate"],
                             batch_size=HP["batch_size"], seed=HP["seed"])
        models.append({"name": name, "folder": trained["folder"], "prompt": demo_prompt, "human": held_out,
                       "val_ppl": trained["val_perplexity"], "train_s": time.perf_counter() - started,
                       "words": _words(docs)})
    docs = corpus_documents(count=240, length=60, seed=7)
    started = time.perf_counter()
    trained = train_tiny(work / "moderate", docs[40:], steps=120 if quick else 200, context_length=128)
    models.append({"name": "tiny trained (test corpus)", "folder": trained["folder"], "prompt": "the quick brown",
                   "human": docs[:40], "val_ppl": trained["val_perplexity"], "train_s": time.perf_counter() - started,
                   "words": _words(docs)})
    folder = build_tiny_model(work / "tiny-test", docs, n_positions=256)
    models.append({"name": "tiny test model (random weights)", "folder": folder, "prompt": "the quick brown",
                   "human": docs[:40], "val_ppl": math.nan, "train_s": 0.0, "words": _words(docs)})
    for path in extra:  # e.g. fine-tunes of the built-in base; human text: the demo corpus' held-out part
        models.append({"name": f"given: {path}", "folder": Path(path), "prompt": prompt, "human": models[0]["human"],
                       "val_ppl": math.nan, "train_s": 0.0, "words": models[0]["words"]})
    return models


def generate(engine: Engine, model: dict, watermark: WatermarkKey | None, *, seed: int | None, tokens: int,
             rows: int = ROWS, temperature: float = 1.0) -> list[dict]:
    result = engine.generate(GenerationRequest(
        model_digest=str(model["folder"]), model_dir=model["folder"], prompt=model["prompt"], max_new_tokens=tokens,
        temperature=temperature, n=rows, seed=seed, stop_at_eos=False, watermark=watermark))
    return [{"text": c.text, "ids": c.token_ids, "prompt_ids": result.prompt_token_ids} for c in result.completions]


class Scorer:
    """Scores texts the way the verifier does, against a fixed set of candidate keys."""

    def __init__(self, engine: Engine, model: dict, family: dict, candidates: np.ndarray):
        self.loaded = engine.load(str(model["folder"]), model["folder"])
        self.scheme = scheme_build(family["scheme"], {k: v for k, v in family.items() if k != "scheme"})
        self.candidates = candidates
        self._entropies: dict[tuple, np.ndarray] = {}

    def ids(self, text: str) -> list[int]:
        return self.loaded.tokenizer(text)["input_ids"]

    def entropies(self, ids: list[int]) -> np.ndarray:
        key = tuple(ids)
        if key not in self._entropies:
            self._entropies[key] = text_entropies(self.loaded.model, ids, n_positions=self.loaded.n_positions)
        return self._entropies[key]

    def verdict_ids(self, ids: list[int]) -> tuple[int | None, float]:
        """(index of the detected candidate or None, best z)."""
        scheme = self.scheme
        entropies = self.entropies(ids) if scheme.needs_entropies else None
        previous, tokens = scheme.scored_pairs(ids, entropies=entropies)
        found = scheme.detect_best(previous, tokens, self.candidates)
        hit = scheme.is_detected(found.scored_tokens, found.score, candidates=len(self.candidates), alpha=ALPHA)
        index = int(np.flatnonzero(self.candidates == np.uint64(found.key))[0])
        return (index if hit else None), found.z_score

    def verdict(self, text: str, length: int | None = None) -> tuple[int | None, float]:
        ids = self.ids(text)
        return self.verdict_ids(ids if length is None else ids[:length + 1])

    def perplexity(self, samples: list[dict]) -> float:
        return perplexity(self.loaded.model, samples)


def perplexity(model, samples: list[dict]) -> float:
    total, count = 0.0, 0
    for s in samples:
        ids = torch.tensor([s["prompt_ids"] + s["ids"]])
        with torch.inference_mode():
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
        nll = -logp[torch.arange(ids.shape[1] - 1), ids[0, 1:]][len(s["prompt_ids"]) - 1:]
        total, count = total + float(nll.sum()), count + len(s["ids"])
    return math.exp(total / max(1, count))


def replace_words(text: str, words: list[str], share: float, rng: random.Random) -> str:
    tokens = text.split(" ")
    for i in rng.sample(range(len(tokens)), k=max(1, round(share * len(tokens)))):
        tokens[i] = rng.choice(words)
    return " ".join(tokens)


def human_ids(scorer: Scorer, model: dict, rng: random.Random, tokens: int) -> list[int]:
    ids: list[int] = []
    while len(ids) < tokens:
        ids += scorer.ids(rng.choice(model["human"]) + "\n")
    return ids[:tokens]


def repeated_4grams(samples: list[dict]) -> float:
    """Share of 4-grams of a sample's tokens seen earlier in that sample: how much a sampler repeats
    itself (a deterministic sampler keyed on context can loop; perplexity alone would read it as
    better text)."""
    repeated = total = 0
    for s in samples:
        ids, seen = s["ids"], set()
        for i in range(len(ids) - 3):
            gram = tuple(ids[i:i + 4])
            repeated += gram in seen
            seen.add(gram)
            total += 1
    return repeated / max(1, total)


def distinct(engine: Engine, model: dict, watermark: WatermarkKey | None, requests: int = 20) -> int:
    """Distinct texts among identical requests (no seed: each gets a fresh one, as an API caller)."""
    return len({generate(engine, model, watermark, seed=None, tokens=100, rows=1)[0]["text"] for _ in range(requests)})


def evaluate(engine: Engine, model: dict, family: dict, *, samples: int, clean: int, tokens: int,
             plain: list[dict]) -> dict:
    keys = [key_of(family, i) for i in range(CANDIDATES + samples // ROWS)]
    candidates = np.array([k.key for k in keys[:CANDIDATES]], dtype=np.uint64)
    scorer = Scorer(engine, model, family, candidates)
    marked, cool = [], []
    for i in range(samples // ROWS):
        marked += [(s, i) for s in generate(engine, model, keys[i], seed=100 + i, tokens=tokens)]
        cool += [(s, i) for s in generate(engine, model, keys[i], seed=300 + i, tokens=tokens, temperature=0.7)]
    rng = random.Random(0)
    out = {"recall": {}}
    for length in LENGTHS:
        out["recall"][length] = float(np.mean([scorer.verdict(s["text"], length)[0] == i for s, i in marked]))
    out["recall_t07"] = float(np.mean([scorer.verdict(s["text"], 200)[0] == i for s, i in cool]))
    out["z_200"] = [scorer.verdict(s["text"], 200)[1] for s, _ in marked]
    out["recall_edited"] = float(np.mean([scorer.verdict(replace_words(s["text"], model["words"], 0.10, rng), 200)[0] == i
                                          for s, i in marked]))
    sandwich = [scorer.verdict_ids(human_ids(scorer, model, rng, 100) + scorer.ids(s["text"])[:200]
                                   + human_ids(scorer, model, rng, 100))[0] == i for s, i in marked]
    out["recall_sandwich"] = float(np.mean(sandwich))
    # Clean: human text, plain samples, and other grants' watermarked text (keys not among candidates).
    clean_texts = list(model["human"]) + [s["text"] for s in plain]
    j = 0
    while len(clean_texts) < clean:
        outsider = key_of(family, 10_000 + j)
        clean_texts += [s["text"] for s in generate(engine, model, outsider, seed=5000 + j, tokens=tokens, rows=8)]
        j += 1
    verdicts = [scorer.verdict(t, 200) for t in clean_texts[:clean]]
    out["fp"], out["clean_tested"] = sum(v[0] is not None for v in verdicts), len(verdicts)
    out["clean_max_z"] = max(v[1] for v in verdicts)
    out["ppl_plain"] = scorer.perplexity(plain)
    out["ppl_marked"] = scorer.perplexity([s for s, _ in marked])
    out["cost"] = out["ppl_marked"] / out["ppl_plain"] - 1
    out["rep4"], out["rep4_plain"] = repeated_4grams([s for s, _ in marked]), repeated_4grams(plain)
    out["distinct"] = distinct(engine, model, keys[0])
    return out


# --- The reference: transformers' SynthID-Text --------------------------------------------------

SYNTHID_NGRAM = 5


def _synthid_keys(i: int) -> list[int]:
    rng = np.random.default_rng(watermark_key_derive(secret=b"bench-synthid", grant_id=f"grant-{i}") >> 1)
    return [int(k) for k in rng.integers(1, 2**31, 30)]


def synthid_evaluate(engine: Engine, model: dict, *, samples: int, plain: list[dict], tokens: int,
                     candidates: int) -> dict:
    """SynthID-Text as transformers ships it, one key set per generate call; detection: the mean
    g-value over unrepeated n-grams and all tournament layers, an exact binomial tail (g is a fair
    coin without the watermark), Bonferroni over `candidates` key sets."""
    from transformers import SynthIDTextWatermarkingConfig
    from transformers.generation.logits_process import SynthIDTextWatermarkLogitsProcessor

    loaded = engine.load(str(model["folder"]), model["folder"])
    lm, tok = loaded.model, loaded.tokenizer
    prompt_ids = tok(model["prompt"], return_tensors="pt")["input_ids"]
    marked = []
    for i in range(samples // ROWS):
        config = SynthIDTextWatermarkingConfig(ngram_len=SYNTHID_NGRAM, keys=_synthid_keys(i))
        for temperature in (1.0, 0.7):
            torch.manual_seed(100 + i)
            with torch.inference_mode():
                out = lm.generate(prompt_ids.repeat(ROWS, 1), do_sample=True, temperature=temperature, top_k=0,
                                  max_new_tokens=tokens, min_new_tokens=tokens, watermarking_config=config,
                                  pad_token_id=loaded.eos_token_id or 0, attention_mask=torch.ones_like(prompt_ids.repeat(ROWS, 1)))
            for row in out[:, prompt_ids.shape[1]:].tolist():
                marked.append({"ids": row, "prompt_ids": prompt_ids[0].tolist(), "key": i, "t": temperature,
                               "text": tok.decode(row, skip_special_tokens=True)})
    processors = [SynthIDTextWatermarkLogitsProcessor(ngram_len=SYNTHID_NGRAM, keys=_synthid_keys(c),
                                                      sampling_table_size=2**16, sampling_table_seed=0,
                                                      context_history_size=1024, device=torch.device("cpu"))
                  for c in range(candidates)]

    def verdicts(ids: list[int], lengths) -> dict[int, int | None]:
        """The detected key set (or None) for each prefix length: g-values are computed once over
        the longest prefix; the n-grams of a prefix are the first ones (same repetition mask)."""
        batch = torch.tensor([ids[:max(lengths)]])
        mask = processors[0].compute_context_repetition_mask(batch)[0].bool()
        g = torch.stack([proc.compute_g_values(batch)[0].sum(-1) for proc in processors])  # [candidates, n-grams]
        out = {}
        for length in lengths:
            cut = max(0, length - SYNTHID_NGRAM + 1)
            keep = mask[:cut]
            n = int(keep.sum()) * 30
            scores = g[:, :cut][:, keep].sum(-1)
            best = int(scores.argmax())
            best_g = int(scores[best])
            z = (best_g - n / 2) / math.sqrt(n / 4) if n else 0.0
            out[length] = best if z > 4 and binomial_sf(best_g, n, 0.5) * candidates < ALPHA else None
        return out

    def recall(rows, lengths):
        found = [verdicts(tok(s["text"])["input_ids"], lengths) for s in rows]
        return {length: float(np.mean([f[length] == s["key"] for f, s in zip(found, rows)])) for length in lengths}

    hot = [s for s in marked if s["t"] == 1.0]
    clean_fp = sum(verdicts(tok(s["text"])["input_ids"], (200,))[200] is not None for s in plain)
    return {"recall": recall(hot, LENGTHS), "recall_t07": recall([s for s in marked if s["t"] == 0.7], (200,))[200],
            "ppl_plain": perplexity(lm, plain), "ppl_marked": perplexity(lm, hot), "fp": clean_fp,
            "clean_tested": len(plain), "candidates": candidates}


# --- The schemes compared -------------------------------------------------------------------------

# In the order of the settings' candidates (ties go to the first), then the schemes of old grants.
FAMILIES = {
    "gumbel w3 t0.5": {"scheme": GUMBEL, "context_width": 3, "entropy_threshold": 0.5, "free_share": 0.1},
    "gumbel w2 t0.5": {"scheme": GUMBEL, "context_width": 2, "entropy_threshold": 0.5, "free_share": 0.1},
    "sweet d3 t1.0 (old default)": {"scheme": SWEET, "gamma": 0.25, "delta": 3.0, "entropy_threshold": 1.0,
                                    "context_width": 1},
    "gumbel w1 t0.5": {"scheme": GUMBEL, "context_width": 1, "entropy_threshold": 0.5, "free_share": 0.1},
    "sweet d1.5 t1.0": {"scheme": SWEET, "gamma": 0.25, "delta": 1.5, "entropy_threshold": 1.0, "context_width": 1},
    "lefthash d2 (old)": {"scheme": LEFTHASH, "gamma": 0.25, "delta": 2.0},
}
# The candidates publishing chooses among (settings.WATERMARK_CANDIDATES).
CHOSEN_AMONG = [FAMILIES[label] for label in ("gumbel w3 t0.5", "gumbel w2 t0.5", "sweet d3 t1.0 (old default)")]
QUICK = ("gumbel w3 t0.5", "gumbel w2 t0.5", "sweet d3 t1.0 (old default)")


def _line(label: str, r: dict) -> str:
    rec = " ".join(f"@{n} {r['recall'][n]:.2f}" for n in LENGTHS)
    extra = (f" edited10% {r['recall_edited']:.2f} sandwich {r['recall_sandwich']:.2f} | repeated 4-grams "
             f"{r['rep4']:.1%} (plain {r['rep4_plain']:.1%}) | distinct "
             f"{r['distinct']}/20 | z@200 min {min(r['z_200']):.1f} median {np.median(r['z_200']):.1f}"
             if "recall_edited" in r else "")
    return (f"  {label:28s} recall {rec} T0.7@200 {r['recall_t07']:.2f} | FP {r['fp']}/{r['clean_tested']} | ppl "
            f"{r['ppl_plain']:.2f} -> {r['ppl_marked']:.2f} ({r['ppl_marked'] / r['ppl_plain'] - 1:+.1%}){extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument("--model", action="append", default=[], help="a model folder to add (repeatable)")
    parser.add_argument("--prompt", default="The", help="prompt for the models given with --model")
    parser.add_argument("--no-synthid", action="store_true", help="skip the transformers SynthID reference")
    parser.add_argument("--given-only", action="store_true",
                        help="measure only the --model folders (needs --human), building none of the others")
    parser.add_argument("--human", help="human text for the --model folders: documents separated by <|endoftext|> "
                                        "(default: the first demo corpus' held-out part)")
    parser.add_argument("--name", action="append", default=[], help="a display name per --model, in order")
    parser.add_argument("--clean", type=int, default=None, help="clean texts per candidate scheme (default 1000)")
    parser.add_argument("--synthid-samples", type=int, default=16)
    parser.add_argument("--synthid-candidates", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    samples = args.samples or (8 if args.quick else 40)
    clean = args.clean or (60 if args.quick else 1000)
    if args.given_only and not (args.model and args.human):
        parser.error("--given-only needs --model and --human")
    started = time.perf_counter()
    engine = Engine(cache_bytes=2 * 1024**3)
    ratios, frontier = [], []
    with tempfile.TemporaryDirectory() as tmp:
        if args.given_only:
            models = given_models(args.model, args.prompt, args.human, args.name)
        else:
            models = build_models(Path(tmp), args.quick, [], args.prompt)
            models += (given_models(args.model, args.prompt, args.human, args.name) if args.human else
                       [{**m, "name": name or f"given: {path}", "folder": Path(path), "prompt": args.prompt,
                         "val_ppl": math.nan, "train_s": 0.0}
                        for path, name, m in zip(args.model, args.name + [""] * len(args.model),
                                                 [models[0]] * len(args.model))])
        for model in models:
            print(f"\n{model['name']}: validation perplexity {model['val_ppl']:.2f}, trained in "
                  f"{model['train_s']:.1f} s", flush=True)
            plain = []
            for i in range(samples // ROWS):
                plain += generate(engine, model, None, seed=100 + i, tokens=208)
            print(f"  plain sampling: distinct {distinct(engine, model, None)}/20", flush=True)
            measured = []
            for label, family in FAMILIES.items():
                if args.quick and label not in QUICK:
                    continue
                t0 = time.perf_counter()
                # 1,000 clean texts for the schemes publishing chooses among; fewer for the others.
                tested = clean if family in CHOSEN_AMONG else min(clean, 200)
                r = evaluate(engine, model, family, samples=samples, clean=tested, tokens=208, plain=plain)
                print(_line(label, r) + f" | {time.perf_counter() - t0:.0f} s", flush=True)
                measured.append((Measured(label, r["recall"][200], r["cost"]), r))
                frontier.append((model["name"], label, r))
            if not args.no_synthid:
                t0 = time.perf_counter()
                r = synthid_evaluate(engine, model, samples=min(samples, args.synthid_samples),
                                     plain=plain[:20 if args.quick else 40], tokens=208,
                                     candidates=args.synthid_candidates or (100 if args.quick else CANDIDATES))
                print(_line(f"SynthID (transformers, {r['candidates']} keys)", r)
                      + f" | {time.perf_counter() - t0:.0f} s", flush=True)
            # The platform's rule, on figures that also kept every clean text unattributed.
            chosen = watermark_pick([m for m, r in measured if r["fp"] == 0 and FAMILIES[m.label] in CHOSEN_AMONG])
            r = next(r for m, r in measured if m is chosen)
            ratio = chosen.recall / RECALL_GOAL if chosen.cost is not None and chosen.cost <= COST_BOUND else 0.0
            print(f"  chosen: {chosen.label} (recall@200 {chosen.recall:.2f}, cost {chosen.cost:+.1%}, "
                  f"FP {r['fp']}/{r['clean_tested']}, edited {r['recall_edited']:.2f}) -> {ratio:.3f}", flush=True)
            ratios.append(ratio)
    engine.close()
    print(f"\n{samples} watermarked samples per model and scheme, {CANDIDATES} candidate keys, alpha {ALPHA}; "
          f"{time.perf_counter() - started:.0f} s in all")
    print(f"ratio: {min(ratios):.3f}")


if __name__ == "__main__":
    main()
