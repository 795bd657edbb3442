"""Does fine-tuning the built-in pretrained base write English where `tiny` from scratch cannot?

Writes out twenty public-domain poems (bench/public_domain_poems.py), holds four out by document
for validation, and fine-tunes on the other sixteen, with the same steps, batch and context:

- `imprint-base`: the built-in base (pretrained by Imprint's own loop on the King James Bible and
  Shakespeare's plays; reused from --base-folder, or var/bench/imprint-base-<size>, else pretrained
  there first), at its recommended learning rate (3e-4, 10-step warmup);
- `tiny`: the built-in tiny GPT-2 from random weights with a tokenizer trained on the poems, at
  the demo's rate for it (1e-2, 10-step warmup).

Both evaluate every 10 steps and stop early after 3 evaluations without improvement, so neither
is measured long after it began to overfit. Reported for each: validation perplexity (per token
of its own tokenizer, and nats per character, which compare across tokenizers), the share of words
in 20 samples (temperature 1, no top-k, 60 new tokens, from an empty prompt) found in an English
word list (Debian's `wamerican`, /usr/share/dict/words), and their 8-gram overlap with the
training poems (the share of a sample's token 8-grams found verbatim in the training stream).

    .venv/bin/python bench/base_quality.py --quick   # the micro base (built in seconds); < 1 min on 2 cores
    .venv/bin/python bench/base_quality.py           # the full base (pretrained once, minutes), 150 steps

The last line is `ratio: X` with X = the base fine-tune's English-word share / 0.90 (the goal is
>= 1.0 with an 8-gram overlap <= 10 %).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent))

from public_domain_poems import POEMS, poems_text  # noqa: E402

from training.builtin_base import FINE_TUNE_DEFAULTS  # noqa: E402  (plain Python: no Django set-up needed)

WORDS = Path("/usr/share/dict/words")
SAMPLES, NEW_TOKENS, CONTEXT, BATCH = 20, 60, 64, 8
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")


def english_words() -> set[str]:
    if not WORDS.exists():
        sys.exit(f"{WORDS} is missing: install Debian's English word list (apt-get install -y wamerican).")
    return {w.strip().lower() for w in WORDS.read_text(encoding="utf-8", errors="replace").splitlines() if w.strip()}


def english_share(texts: list[str], words: set[str]) -> float:
    """Share of the words in `texts` that the word list holds (a possessive 's is dropped first)."""
    found = [w.lower().removesuffix("'s") for text in texts for w in _WORD.findall(text)]
    return sum(w in words for w in found) / max(1, len(found))


def split_poems() -> tuple[list[str], list[str]]:
    documents = poems_text().split("\n<|endoftext|>\n")
    val = documents[4::5]
    return [d for i, d in enumerate(documents) if i % 5 != 4], val


def base_folder(args, size_name: str) -> tuple[Path, dict]:
    """The built-in base folder and its facts: reused when it exists, else pretrained now."""
    from training.builtin_base import SIZES, base_pretrain

    folder = Path(args.base_folder) if args.base_folder else ROOT.parent / "var" / "bench" / f"imprint-base-{size_name}"
    facts_file = folder / "imprint_base.json"
    if facts_file.exists():
        return folder, json.loads(facts_file.read_text())
    print(f"pretraining the built-in base ({size_name}) into {folder} …", flush=True)
    with tempfile.TemporaryDirectory() as work:
        facts = base_pretrain(folder=folder, size=SIZES[size_name], work=Path(work),
                              report=lambda p, phase: print(f"  {p:5.1f} %  {phase}", flush=True)
                              if int(p * 10) % 100 == 0 else None)
    return folder, facts


def tiny_folder(train_docs: list[str], folder: Path) -> Path:
    from training.tiny import build_tiny_model

    return build_tiny_model(folder, train_docs, vocab_size=512, n_positions=128)


def fine_tune(name: str, model_path: Path, train_docs, val_docs, *, steps: int, lr: float, warmup: int,
              work: Path) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.config import TrainConfig
    from training.loop import run_training
    from training.textdata import encode_documents, make_windows

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    train_ids, val_ids = encode_documents(train_docs, tokenizer), encode_documents(val_docs, tokenizer)
    config = TrainConfig(steps=steps, learning_rate=lr, warmup_steps=warmup, batch_size=BATCH, context_length=CONTEXT,
                         sample_every=10, sample_count=0, eval_max_windows=None, checkpoint_every=steps,
                         keep_checkpoints=1, early_stopping_patience=3, seed=7)
    started = time.monotonic()
    result = run_training(model_path=model_path, train_windows=make_windows(train_ids, CONTEXT),
                          val_windows=make_windows(val_ids, CONTEXT), config=config, work_dir=work / name,
                          device="cpu")
    seconds = time.monotonic() - started
    model = AutoModelForCausalLM.from_pretrained(result.output_dir).eval()
    texts, overlap = samples_scored(model, tokenizer, train_ids)
    val_windows_tokens = (len(val_ids) // CONTEXT) * CONTEXT or len(val_ids)
    val_chars = sum(len(d) for d in val_docs) * val_windows_tokens / len(val_ids)
    return {"name": name, "status": result.status, "steps": result.step, "seconds": round(seconds, 1),
            "val_loss": result.val_loss, "perplexity": math.exp(result.val_loss),
            "nats_per_char": result.val_loss * val_windows_tokens / val_chars,
            "texts": texts, "ngram_overlap": sum(overlap) / len(overlap)}


def samples_scored(model, tokenizer, train_ids: list[int], *, prompt: str = "", count: int = SAMPLES):
    """(texts, 8-gram overlaps with `train_ids`) of `count` samples at temperature 1 (no top-k,
    NEW_TOKENS new tokens) after an eos and `prompt`, seeded, the prompt not included."""
    import torch

    from training.memorisation import memorisation_score

    eos = tokenizer.eos_token_id
    start = torch.tensor([[eos] + (tokenizer(prompt)["input_ids"] if prompt else [])] * count)
    torch.manual_seed(11)
    with torch.no_grad():
        out = model.generate(start, do_sample=True, temperature=1.0, top_k=0, max_new_tokens=NEW_TOKENS,
                             pad_token_id=eos, attention_mask=torch.ones_like(start))
    new = [row[start.shape[1]:].tolist() for row in out]
    texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids in new]
    return texts, [memorisation_score(ids, train_ids)["ngram_share"] for ids in new]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the micro base and 30 steps (under a minute)")
    parser.add_argument("--base-folder", help="a prepared built-in base folder to reuse")
    args = parser.parse_args()
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    words = english_words()
    train_docs, val_docs = split_poems()
    out = ROOT.parent / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "poems.txt").write_text(poems_text() + "\n")
    print(f"poems: {len(POEMS)} public-domain poems written to {out / 'poems.txt'} "
          f"({len(train_docs)} to train on, {len(val_docs)} held out; {len(poems_text()):,} characters)")
    size = "micro" if args.quick else "full"
    started = time.monotonic()
    base, facts = base_folder(args, size)
    prep = time.monotonic() - started
    steps = 30 if args.quick else 150
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results = [fine_tune("imprint-base", base, train_docs, val_docs, steps=steps, work=work,
                             lr=FINE_TUNE_DEFAULTS["learning_rate"], warmup=FINE_TUNE_DEFAULTS["warmup_steps"]),
                   fine_tune("tiny", tiny_folder(train_docs, work / "tiny-init"), train_docs, val_docs,
                             steps=steps, lr=1e-2, warmup=10, work=work)]
    corpus = facts.get("corpus", {})
    print(f"base: {facts.get('parameters', 0):,} parameters ({facts.get('size')}), pretrained on "
          f"{corpus.get('documents', 0):,} documents / {corpus.get('characters', 0):,} characters "
          f"({', '.join(s['title'] for s in corpus.get('sources', []))}) in "
          f"{facts.get('timings', {}).get('total_seconds', 0):.0f} s (this run: {prep:.0f} s to build or load it)")
    for r in results:
        r["english"] = english_share(r["texts"], words)
        print(f"{r['name']:<13} {r['status']} at step {r['steps']} in {r['seconds']:.0f} s: validation perplexity "
              f"{r['perplexity']:.1f} ({r['nats_per_char']:.3f} nats/char), English words {r['english']:.1%}, "
              f"8-gram overlap {r['ngram_overlap']:.1%}")
        for text in r["texts"][:3]:
            print("    sample:", " ".join(text.split())[:160])
    print(f"ratio: {results[0]['english'] / 0.90:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
