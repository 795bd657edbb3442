"""Concurrent generation: 1 client against 8 concurrent clients through Imprint's full metered path.

The same GPT-2-small-sized model (random weights) and setup as bench/generation_overhead.py, at the
deployment's default precision (INFERENCE_PRECISION, fp32 unless set). Each
client sends greedy requests for exactly N new tokens to `POST /api/v1/generations` (auth, checks,
reservation, the in-process engine, settle, ledger, receipt, watermark) from its own thread, with
its own database connection, as threads of a web server would. Reported per level: aggregate
generated tokens/s over the wall time, and p50/p95 request latency.

The engine batches continuously: the 8 concurrent requests join one running batch
(INFERENCE_MAX_BATCH, default 8) and share each decode step's weight reads, so the aggregate should
grow well past 1x (goal >= 4x) while a request's latency stays near a lone one's (goal: p95 at 8
clients <= 2x the lone request's p50).

    .venv/bin/python bench/concurrent_generation.py --quick    # under a minute on 2 cores
    .venv/bin/python bench/concurrent_generation.py            # the full run

Each round sends the same 8 requests one after another, then from 8 concurrent clients, back to back;
the last line is `ratio: X` with X = the median over rounds of aggregate tok/s at 8 clients /
aggregate tok/s at 1 client.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generation_overhead import (
    GPT2_SMALL,
    PROMPT_WORDS,
    api_generate,
    build_model,
    decode_arguments,
    django_setup,
    served_licence,
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def run_level(version, plaintext: str, *, clients: int, requests_per_client: int, prompt: str,
              new_tokens: int) -> dict:
    """`clients` threads, each sending `requests_per_client` requests back to back."""
    from django.db import connections
    from django.test import Client

    latencies: list[float] = []
    lock = threading.Lock()

    def client_loop():
        http = Client()
        try:
            for _ in range(requests_per_client):
                t = time.perf_counter()
                body = api_generate(http, version, plaintext, prompt, new_tokens)
                elapsed = time.perf_counter() - t
                assert body["usage"]["completion_tokens"] == new_tokens
                with lock:
                    latencies.append(elapsed)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    tokens = new_tokens * len(latencies)
    return {"clients": clients, "requests": len(latencies), "wall": wall, "tok_s": tokens / wall,
            "p50": statistics.median(latencies), "p95": percentile(latencies, 0.95)}


def main() -> None:
    args, new_tokens, rounds = decode_arguments(__doc__, quick=(32, 1), full=(64, 3))

    with tempfile.TemporaryDirectory(prefix="imprint-bench-") as tmp:
        var_dir = Path(tmp)
        django_setup(var_dir)
        version, plaintext = served_licence(build_model(var_dir / "model-src", GPT2_SMALL))
        import torch
        from django.conf import settings

        from inference.modelstore import engine_instance, model_folder_fetch

        loaded = engine_instance().load(version.digest, model_folder_fetch(version))
        prompt = " ".join((PROMPT_WORDS * 8)[:args.prompt_tokens])
        # Warm-up at full length: first-call allocations and kernel choices must not land in a level.
        run_level(version, plaintext, clients=2, requests_per_client=1, prompt=prompt, new_tokens=new_tokens)
        print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, threads {torch.get_num_threads()}, "
              f"device {loaded.device}; GPT-2-small config, {new_tokens} new tokens per request, greedy, "
              f"precision {settings.INFERENCE_PRECISION} (the deployment's default, INFERENCE_PRECISION)")
        ratios, latency_ratios = [], []
        for _ in range(rounds):
            # The same 8 requests one after another, then from 8 concurrent clients: back to back, so
            # both levels of a round see the same state of a shared machine.
            solo = run_level(version, plaintext, clients=1, requests_per_client=8, prompt=prompt,
                             new_tokens=new_tokens)
            eight = run_level(version, plaintext, clients=8, requests_per_client=1, prompt=prompt,
                              new_tokens=new_tokens)
            for level in (solo, eight):
                print(f"{level['clients']} client(s): {level['requests']} requests in {level['wall']:.2f} s, "
                      f"aggregate {level['tok_s']:.1f} tok/s, latency p50 {level['p50']:.2f} s, "
                      f"p95 {level['p95']:.2f} s")
            ratios.append(eight["tok_s"] / solo["tok_s"])
            latency_ratios.append(eight["p95"] / solo["p50"])
        from inference.modelstore import engine_instance as _engine

        print(f"engine: largest batch {_engine().stats['max_rows']} rows, {_engine().stats['steps']} decode steps")
        print(f"p95 latency at 8 clients / lone request p50, per round: {fmt(latency_ratios)} (goal <= 2)")
        print(f"aggregate tok/s at 8 clients / 1 client, per round: {fmt(ratios)} (goal >= 4)")
        print(f"ratio: {statistics.median(ratios):.3f}")


def fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


if __name__ == "__main__":
    main()
