"""Continuous batching: requests that share a running batch get exactly what they would
get alone, and one request's end (finished, cancelled, failed, refused) never harms the others.

How a batch is forced: a "gate" request blocks the serving thread in its first token callback while
the other requests are queued; on release they are all admitted between two decode steps and run
together (`Engine.stats["max_rows"]` proves it).

Exactness: greedy and sampled tokens are compared for equality. Rows never share attention (each row
has its own KV cache), only the matmuls run on all rows at once; a batched matmul may round
differently from a batch-1 one (~1e-6 in the logits), which could flip a near-tie — none does here.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from inference.engine import Engine, EngineBusy, GenerationRequest
from inference.watermark import WatermarkKey, detect

from .conftest import TINY_DIGEST


def request(tiny_dir: Path, **kwargs) -> GenerationRequest:
    kwargs.setdefault("prompt", "the quick brown")
    kwargs.setdefault("max_new_tokens", 16)
    return GenerationRequest(model_digest=TINY_DIGEST, model_dir=tiny_dir, **kwargs)


VARIED = [
    {"temperature": 0, "stop_at_eos": False, "max_new_tokens": 24},
    {"prompt": "a lazy dog while rivers run", "temperature": 0, "max_new_tokens": 9},
    {"prompt": "old stone", "temperature": 1.0, "seed": 5, "n": 2, "stop_at_eos": False, "max_new_tokens": 20},
    {"prompt": "quiet towns sleep under", "temperature": 0.7, "top_k": 20, "seed": 9, "max_new_tokens": 14},
    {"prompt": "pale winter", "temperature": 1.3, "top_p": 0.8, "seed": 13, "max_new_tokens": 30, "stop_at_eos": False},
    {"prompt": "the fox", "temperature": 1.0, "seed": 17, "max_new_tokens": 5},
]


class Gate:
    """A request whose first token callback blocks the serving thread until `open()`."""

    def __init__(self):
        self.started, self.release = threading.Event(), threading.Event()

    def hold(self, _event):
        self.started.set()
        assert self.release.wait(30)

    def submit(self, engine, tiny_dir, **kwargs):
        kwargs.setdefault("max_new_tokens", 30)
        future = engine.submit(request(tiny_dir, on_token=self.hold, stop_at_eos=False, temperature=0, **kwargs))
        assert self.started.wait(30)
        return future

    def open(self):
        self.release.set()


def tokens(result):
    return [c.token_ids for c in result.completions]


def run_batched(engine, tiny_dir, specs, **gate_kwargs):
    """Submit every spec while the gate holds the serving thread, then let them run as one batch."""
    gate = Gate()
    gated = gate.submit(engine, tiny_dir, **gate_kwargs)
    futures = [engine.submit(request(tiny_dir, **spec)) for spec in specs]
    gate.open()
    return gated, futures


def test_batched_outputs_equal_unbatched_ones_greedy_and_sampled(fresh_engine, tiny_dir):
    alone = [tokens(fresh_engine.generate(request(tiny_dir, **spec))) for spec in VARIED]
    assert fresh_engine.stats["max_rows"] <= 2  # alone: at most the n=2 request's own rows
    gated, futures = run_batched(fresh_engine, tiny_dir, VARIED)
    batched = [tokens(f.result(30)) for f in futures]
    assert fresh_engine.stats["max_rows"] >= 1 + sum(spec.get("n", 1) for spec in VARIED)
    assert batched == alone
    assert gated.result(30).completion_tokens == 30


def test_rows_under_the_sampling_watermark_are_the_same_batched_or_alone(fresh_engine, tiny_dir):
    # The Gumbel-max sampler reads each row's own history and generator: batching changes nothing.
    marked = [{**spec, "watermark": WatermarkKey(0xD1CE + i, scheme="gumbel")} for i, spec in enumerate(VARIED)]
    alone = [tokens(fresh_engine.generate(request(tiny_dir, **spec))) for spec in marked]
    _gated, futures = run_batched(fresh_engine, tiny_dir, marked)
    assert [tokens(f.result(30)) for f in futures] == alone
    plain = [tokens(fresh_engine.generate(request(tiny_dir, **spec))) for spec in VARIED]
    assert plain[0] == alone[0]  # greedy decoding is left alone
    assert plain[2] != alone[2]  # sampled rows are the watermark's picks


def test_watermark_detection_works_per_grant_for_outputs_made_in_one_batch(fresh_engine, tiny_dir):
    keys = [0xA11CE, 0xB0B, 0xCAFE]
    specs = [{"temperature": 1.0, "seed": 40 + i, "max_new_tokens": 100, "stop_at_eos": False, "watermark": WatermarkKey(k)}
             for i, k in enumerate(keys)]
    _gated, futures = run_batched(fresh_engine, tiny_dir, specs)
    results = [future.result(30) for future in futures]
    assert fresh_engine.stats["max_rows"] >= 4
    for key, result in zip(keys, results):
        ids = result.prompt_token_ids[-1:] + result.completions[0].token_ids
        assert detect(ids, key=key).z_score > 4
        for other in keys:
            if other != key:
                assert detect(ids, key=other).z_score < 3


def test_per_request_usage_sums_exactly_to_the_tokens_the_batch_made(fresh_engine, tiny_dir):
    before = fresh_engine.stats["tokens"]
    cancel_after = []
    specs = VARIED + [{"max_new_tokens": 30, "stop_at_eos": False, "on_token": cancel_after.append,
                           "should_cancel": lambda: len(cancel_after) >= 4}]
    gated, futures = run_batched(fresh_engine, tiny_dir, specs)
    results = [gated.result(30)] + [f.result(30) for f in futures]
    made = fresh_engine.stats["tokens"] - before
    assert made == sum(r.completion_tokens for r in results)
    assert results[-1].completion_tokens == 4 and results[-1].cancelled
    for spec, result in zip(specs, results[1:]):
        assert all(len(c.token_ids) <= spec["max_new_tokens"] for c in result.completions)
        assert result.completion_tokens == sum(len(c.token_ids) for c in result.completions)


def test_a_full_queue_refuses_with_engine_busy_while_the_batch_finishes_unharmed(tiny_dir):
    engine = Engine(cache_bytes=64 * 1024 * 1024, max_queue=2, max_batch=2)
    try:
        specs = VARIED[:2]
        alone = [tokens(engine.generate(request(tiny_dir, **spec))) for spec in specs]
        gate = Gate()
        gated = gate.submit(engine, tiny_dir)
        futures = [engine.submit(request(tiny_dir, **spec)) for spec in specs]
        with pytest.raises(EngineBusy):
            engine.submit(request(tiny_dir))
        gate.open()
        assert [tokens(f.result(30)) for f in futures] == alone
        assert gated.result(30).completion_tokens == 30
        assert engine.stats["max_rows"] == 2  # the batch never grew past max_batch
        assert tokens(engine.generate(request(tiny_dir, **specs[0]))) == alone[0]  # room again
    finally:
        engine.close()


def test_a_client_disconnect_mid_stream_leaves_the_others_in_the_batch_unharmed(fresh_engine, tiny_dir):
    alone = [tokens(fresh_engine.generate(request(tiny_dir, **spec))) for spec in VARIED]
    streamed, gone = [], threading.Event()

    def on_token(event):
        streamed.append(event.token_id)
        if len(streamed) == 3:
            gone.set()  # the client disconnects after its third token

    leaver = {"temperature": 1.0, "seed": 3, "max_new_tokens": 40, "stop_at_eos": False, "on_token": on_token,
                  "should_cancel": gone.is_set}
    gated, futures = run_batched(fresh_engine, tiny_dir, [leaver] + VARIED)
    left = futures[0].result(30)
    assert left.cancelled and left.completion_tokens == 3 and left.completions[0].token_ids == streamed
    assert [tokens(f.result(30)) for f in futures[1:]] == alone
    assert gated.result(30).completion_tokens == 30


def test_a_request_that_fails_inside_a_batch_leaves_the_others_unharmed(fresh_engine, tiny_dir):
    alone = [tokens(fresh_engine.generate(request(tiny_dir, **spec))) for spec in VARIED]
    seen = []

    def broken_callback(event):
        seen.append(event)
        if len(seen) == 5:
            raise RuntimeError("the stream's consumer broke")

    failing = [
        {"max_new_tokens": 30, "stop_at_eos": False, "on_token": broken_callback},  # fails at its 5th token
        {"temperature": 1.0, "seed": 1, "watermark": WatermarkKey(key="not an int")},  # fails at decode time
    ]
    gated, futures = run_batched(fresh_engine, tiny_dir, failing + VARIED)
    with pytest.raises(RuntimeError, match="consumer broke"):
        futures[0].result(30)
    with pytest.raises(TypeError):
        futures[1].result(30)
    assert [tokens(f.result(30)) for f in futures[2:]] == alone
    assert gated.result(30).completion_tokens == 30
    assert len(seen) == 5


def test_concurrent_api_requests_in_one_batch_are_each_charged_exactly_their_own_tokens(transactional_db,
                                                                                     make_licence):
    """Through the full metered path (key, reservation, engine, settle, ledger): requests of three
    grants share one batch; each ledger row holds its own tokens, and they add up to the batch's."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections
    from django.test import Client

    from inference.models import UsageEntry
    from inference.modelstore import engine_instance, model_folder_fetch
    from licensing.models import Grant

    from .test_generation_api import URL

    licences = [make_licence() for _ in range(3)]
    engine = engine_instance()
    bodies = [(licences[i % 3], {"model": str(licences[0].version.pk), "prompt": "the quick brown fox",
                                 "max_new_tokens": 6 + 3 * i, "temperature": 0.9, "seed": i,
                                 "ignore_eos": i % 2 == 0}) for i in range(6)]

    def post(item):
        licence, body = item
        try:
            response = Client().post(URL, data=json.dumps(body), content_type="application/json",
                                     headers={"Authorization": f"Bearer {licence.plaintext}"})
            return response.status_code, response.json()
        finally:
            connections.close_all()

    gate = Gate()
    gated = engine.submit(GenerationRequest(
        model_digest=licences[0].version.digest, model_dir=model_folder_fetch(licences[0].version),
        prompt="the quick brown", max_new_tokens=20, temperature=0, stop_at_eos=False, on_token=gate.hold))
    assert gate.started.wait(30)
    before = dict(engine.stats)
    with ThreadPoolExecutor(max_workers=6) as pool:
        pending = pool.map(post, bodies)
        deadline = threading.Event()
        for _ in range(300):  # every request reserved its tokens and waits in the engine's queue
            if engine._queue.qsize() >= 6:
                break
            deadline.wait(0.1)
        gate.open()
        results = list(pending)
    gate_tokens = gated.result(30).completion_tokens  # all counted after the hold released its first token
    assert [status for status, _ in results] == [200] * 6, results
    assert engine.stats["max_rows"] >= 6
    made = engine.stats["tokens"] - before["tokens"] - gate_tokens
    assert made == sum(body["usage"]["completion_tokens"] for _, body in results)
    for (_licence, sent), (_, body) in zip(bodies, results):
        assert body["usage"]["completion_tokens"] == sum(o["tokens"] for o in body["outputs"])
        assert body["usage"]["completion_tokens"] <= sent["max_new_tokens"]
        if sent["ignore_eos"]:
            assert body["usage"]["completion_tokens"] == sent["max_new_tokens"]
    for licence in licences:
        grant = Grant.objects.get(pk=licence.grant.pk)
        entries = UsageEntry.objects.filter(grant=grant)
        assert entries.count() == 2 and grant.reserved_tokens == 0
        assert grant.used_tokens == sum(e.total_tokens for e in entries)


def test_models_without_the_lean_forward_run_on_the_generic_loop_with_the_same_output(tiny_dir, monkeypatch):
    from inference.engine.lean import LeanGPT2

    lean = Engine(cache_bytes=64 * 1024 * 1024)
    generic = Engine(cache_bytes=64 * 1024 * 1024)
    try:
        specs = VARIED[:3]
        expected = [tokens(lean.generate(request(tiny_dir, **spec))) for spec in specs]
        monkeypatch.setattr(LeanGPT2, "supports", staticmethod(lambda model: False))
        assert [tokens(generic.generate(request(tiny_dir, **spec))) for spec in specs] == expected
        assert generic.stats["steps"] == 0 and generic.load(TINY_DIGEST, tiny_dir).lean == {"fp32": False}
    finally:
        lean.close()
        generic.close()
