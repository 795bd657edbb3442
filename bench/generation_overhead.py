"""Generation overhead: Imprint's engine alone against Imprint's full metered path, in one run.

What metering costs: the same GPT-2-small-sized model (124M parameters, random weights, a
byte-level BPE tokenizer trained here), the same prompt, the same decode — greedy, exactly N new
tokens, the grant's own watermark, the same precision — once straight on the engine and once
through the API:

- engine:  `engine_instance().generate(GenerationRequest(...))` in this process: the queue, the
           serving thread, prefill and decode with the per-grant watermark bias
- Imprint: `POST /api/v1/generations` through Django's test client: API-key auth, grant checks,
           rate limit, quota reservation (conditional UPDATE), the same engine and decode, then
           settle + ledger row + signed receipt + idempotency bookkeeping in one transaction.

The model is stored, fetched into the model cache, verified and loaded before timing (a warm
server). Runs alternate (engine, Imprint, Imprint, engine, ...) after an untimed warm-up of each;
back-to-back pairs are compared. A fresh SQLite database under a temporary var/ holds the rows.
`model.generate`, which the engine already beats (bench/decode_speed.py), is timed once besides.

    .venv/bin/python bench/generation_overhead.py --quick    # under a minute on 2 cores
    .venv/bin/python bench/generation_overhead.py            # the full run

The last line is `ratio: X` with X = the median over back-to-back pairs of Imprint time / engine
time (lower is better; the goal is <= 1.05).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT_WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "rivers", "run", "past", "old", "stone", "bridges", "and", "quiet", "towns", "sleep", "under", "a", "pale", "winter", "moon"]
GPT2_SMALL = {"vocab_size": 50257, "n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12}


def django_setup(var_dir: Path) -> None:
    """Django on a fresh SQLite database and database cache under `var_dir` (never the real var/)."""
    os.environ["IMPRINT_VAR_DIR"] = str(var_dir)
    os.environ["DATABASE_URL"] = f"sqlite:///{var_dir / 'bench.sqlite3'}"
    os.environ.pop("CACHE_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)


def build_model(folder: Path, config: dict, seed: int = 0) -> Path:
    """A randomly initialised GPT-2 of `config` with a tokenizer trained on the prompt words."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from training.tiny import train_tokenizer

    texts = [" ".join(PROMPT_WORDS[i:] + PROMPT_WORDS[:i]) for i in range(len(PROMPT_WORDS))] * 4
    tokenizer = train_tokenizer(texts, vocab_size=512, model_max_length=config["n_positions"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(GPT2Config(**config, bos_token_id=0, eos_token_id=0, pad_token_id=0))
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def served_licence(model_dir: Path, *, quota: int = 10**9, rate_per_minute: int = 10_000):
    """Store the model as a ModelVersion with a listing, terms, an active grant and an API key.
    Returns (version, plaintext key)."""
    from accounts.models import User
    from django.utils import timezone

    from licensing.services import (
        apikey_create,
        grant_activate,
        grant_create_pending,
        terms_create,
    )
    from marketplace.models import Listing
    from training.artifacts import folder_upload, manifest_digest
    from training.models import Dataset, ModelVersion, TrainingJob

    trainer = User.objects.create(username="bench-trainer", email="trainer@bench.local", is_trainer=True)
    customer = User.objects.create(username="bench-customer", email="customer@bench.local", is_customer=True,
                                   email_verified_at=timezone.now())
    manifest = folder_upload(model_dir, "models/bench")
    data = Dataset.objects.create(owner=trainer, name="bench", file="datasets/bench.txt", sha256="0" * 64,
                                  size_bytes=1, licence="cc-by-4.0", licence_attested=True)
    job = TrainingJob.objects.create(owner=trainer, dataset=data, name="bench", base_model="gpt2", total_steps=1,
                                     state=TrainingJob.State.SUCCEEDED)
    config = json.loads((model_dir / "config.json").read_text())
    version = ModelVersion.objects.create(
        owner=trainer, job=job, name="bench model", from_step=1, storage_prefix="models/bench",
        digest=manifest_digest(manifest), parameter_count=0, base_model="gpt2", base_licence="mit",
        dataset_digest="0" * 64, dataset_licence="cc-by-4.0", n_positions=config["n_positions"], card="bench",
        files=manifest)
    Listing.objects.create(trainer=trainer, model_version=version, title="bench", card="bench", published=True)
    terms = terms_create(raw={
        "licence_id": "custom", "uses": ["personal", "research"], "samples": {"publish": True, "resell": False},
        "attribution": "bench", "quota": {"tokens": quota, "period": "total"},
        "rate_limit_per_minute": rate_per_minute, "duration_days": 30, "restrictions": []}, model_version=version)
    grant = grant_create_pending(customer=customer, model_version=version, terms=terms, acceptance=None,
                                 price_paid_cents=100, currency="usd")
    grant_activate(grant_id=grant.pk)
    _key, plaintext = apikey_create(owner=customer, name="bench", grants=[grant])
    return version, plaintext


def api_generate(client, version, plaintext: str, prompt: str, new_tokens: int) -> dict:
    body = {"model": str(version.pk), "prompt": prompt, "max_new_tokens": new_tokens, "temperature": 0,
            "ignore_eos": True}
    response = client.post("/api/v1/generations", data=json.dumps(body), content_type="application/json",
                           headers={"Authorization": f"Bearer {plaintext}"})
    if response.status_code != 200:
        raise RuntimeError(f"generation failed: {response.status_code} {response.content[:300]!r}")
    return response.json()


def decode_arguments(doc: str, *, quick: tuple[int, int], full: tuple[int, int]):
    """The decode benches' command line (--quick, --new-tokens, --prompt-tokens, --rounds), with
    (new tokens, rounds) defaults for a --quick and a full run. Returns (args, new_tokens, rounds)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer tokens and rounds (< 1 min on 2 cores)")
    parser.add_argument("--new-tokens", type=int, default=None)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    new_tokens, rounds = quick if args.quick else full
    return args, args.new_tokens or new_tokens, args.rounds or rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer tokens and repetitions (< 1 min)")
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=None)
    parser.add_argument("--reps", type=int, default=None)
    args = parser.parse_args()
    new_tokens = args.new_tokens or (24 if args.quick else 128)
    reps = args.reps or (4 if args.quick else 6)

    with tempfile.TemporaryDirectory(prefix="imprint-bench-") as tmp:
        var_dir = Path(tmp)
        started = time.perf_counter()
        django_setup(var_dir)
        model_dir = build_model(var_dir / "model-src", GPT2_SMALL)
        version, plaintext = served_licence(model_dir)
        run_comparison(version, plaintext, args.prompt_tokens, new_tokens, reps, time.perf_counter() - started)


def run_comparison(version, plaintext, prompt_tokens: int, new_tokens: int, reps: int, setup_s: float) -> None:
    import torch
    from django.test import Client

    from inference.engine import GenerationRequest
    from inference.modelstore import engine_instance, model_folder_fetch
    from inference.selectors import grant_watermark_key
    from licensing.models import Grant

    folder = model_folder_fetch(version)
    engine = engine_instance()
    loaded = engine.load(version.digest, folder)
    tokenizer, model = loaded.tokenizer, loaded.model
    prompt = " ".join((PROMPT_WORDS * 8)[:prompt_tokens])
    prompt_ids = tokenizer(prompt, return_tensors="pt").input_ids
    watermark = grant_watermark_key(Grant.objects.get(model_version=version))
    client = Client()
    served_at = {}

    def imprint() -> float:
        t = time.perf_counter()
        body = api_generate(client, version, plaintext, prompt, new_tokens)
        elapsed = time.perf_counter() - t
        assert body["usage"]["completion_tokens"] == new_tokens
        served_at["precision"] = body.get("precision", "fp32")
        return elapsed

    def engine_alone() -> float:
        request = GenerationRequest(model_digest=version.digest, model_dir=folder, prompt=prompt,
                                    max_new_tokens=new_tokens, temperature=0, stop_at_eos=False,
                                    watermark=watermark, precision=served_at["precision"])
        t = time.perf_counter()
        result = engine.generate(request)
        elapsed = time.perf_counter() - t
        assert result.completion_tokens == new_tokens
        return elapsed

    def bare_generate() -> float:
        t = time.perf_counter()
        with torch.inference_mode():
            model.generate(prompt_ids, attention_mask=torch.ones_like(prompt_ids), max_new_tokens=new_tokens,
                           min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
        return time.perf_counter() - t

    for _ in range(2):  # warm-up: first-call allocations, the tokenizer, the signing key
        imprint(), engine_alone()
    times = {"engine_alone": [], "imprint": []}
    pair_ratios = []
    for i in range(reps):
        order = (engine_alone, imprint) if i % 2 == 0 else (imprint, engine_alone)
        for fn in order:
            times[fn.__name__].append(fn())
        pair_ratios.append(times["imprint"][-1] / times["engine_alone"][-1])
    generate_s = bare_generate()
    engine_s, imprint_s = statistics.median(times["engine_alone"]), statistics.median(times["imprint"])
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"device {loaded.device}")
    print(f"model: GPT-2-small config, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters; "
          f"prompt {prompt_ids.shape[1]} tokens, {new_tokens} new tokens, greedy, watermarked, precision "
          f"{served_at['precision']}, {reps} runs each (setup {setup_s:.1f} s)")
    print(f"engine alone        : median {engine_s:.3f} s  ({new_tokens / engine_s:.1f} tok/s)  "
          f"runs {fmt(times['engine_alone'])}")
    print(f"Imprint full path   : median {imprint_s:.3f} s  ({new_tokens / imprint_s:.1f} tok/s)  "
          f"runs {fmt(times['imprint'])}")
    print(f"model.generate once : {generate_s:.3f} s  ({new_tokens / generate_s:.1f} tok/s, no watermark)")
    print(f"metering cost per request: {1000 * (imprint_s - engine_s):.1f} ms (median difference)")
    print(f"per-pair ratios (back-to-back runs, alternating order): {fmt(pair_ratios)}; "
          f"ratio of medians {imprint_s / engine_s:.3f}, of minima {min(times['imprint']) / min(times['engine_alone']):.3f}")
    # The median of back-to-back pairs: each pair shares the machine's state of the moment, which on
    # a shared 2-core machine moves more than the overhead being measured.
    print(f"ratio: {statistics.median(pair_ratios):.3f}")


def fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in values) + "]"


if __name__ == "__main__":
    main()
