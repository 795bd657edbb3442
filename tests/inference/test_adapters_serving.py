"""Many LoRA adapters served on one resident base: mixed batches (rows of different adapters, rows of
the bare base, and a whole model beside them) give every row the greedy tokens of its own merged
model, at fp32 and at int8; adapters live in their own LRU and are evicted before bases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from inference.engine import Engine, GenerationRequest, ModelTooLarge
from tests.support.adapters import merged_model, random_adapter

ADAPTERS = 52
TOKENS = 64  # token rows of an adapter that has them
PROMPTS = ["The", "In the beginning", "And it came", "We hold", "Of the"]
NEW = 8
BASE = "b" * 64
WHOLE = "w" * 64


def digest(i: int) -> str:
    return f"{i:064x}"


@pytest.fixture(scope="module")
def adapters(tiny_dir: Path, tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("adapters")
    # Every third adapter also replaces token embedding rows (peft's trainable tokens), which GPT-2's
    # tied output layer shares: those rows change both what a row reads and what it may write.
    return [random_adapter(root / f"a{i}", tiny_dir, seed=i, r=4 + i % 5,
                           targets=("attn.c_attn", "mlp.c_fc") if i % 7 == 0 else
                           ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"),
                           tokens=TOKENS if i % 3 == 1 else 0)
            for i in range(ADAPTERS)]


def _token_ids(adapter: Path) -> set[int]:
    return set(json.loads((adapter / "adapter_config.json").read_text())["trainable_token_indices"]["wte"])


def greedy_reference(folder: Path, prompt: str) -> list[int]:
    """`model.generate`'s greedy tokens (the engine's fp32 output equals them)."""
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = AutoTokenizer.from_pretrained(folder)(prompt, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=NEW,
                             min_new_tokens=NEW, pad_token_id=0)
    return out[0, ids.shape[1]:].tolist()


def request(i: int | None, folder: Path, base: Path, prompt: str, precision: str = "fp32") -> GenerationRequest:
    if i is None:
        return GenerationRequest(model_digest=BASE, model_dir=base, prompt=prompt, max_new_tokens=NEW,
                                 temperature=0, stop_at_eos=False, precision=precision)
    return GenerationRequest(model_digest=digest(i), model_dir=folder, base_digest=BASE, base_dir=base,
                             prompt=prompt, max_new_tokens=NEW, temperature=0, stop_at_eos=False,
                             precision=precision)


def test_fifty_adapters_and_a_whole_model_in_mixed_batches_match_their_merged_models(
        tiny_dir, adapters, tmp_path):
    whole = merged_model(adapters[0], tiny_dir, tmp_path / "whole")  # a separate whole model, its own batch
    engine = Engine(cache_bytes=256 * 1024 * 1024, max_batch=8)
    try:
        jobs = [(i, PROMPTS[i % len(PROMPTS)]) for i in range(ADAPTERS)] + [(None, p) for p in PROMPTS[:3]]
        futures = [(i, p, engine.submit(request(i, adapters[i] if i is not None else None, tiny_dir, p)))
                   for i, p in jobs]
        whole_future = engine.submit(GenerationRequest(model_digest=WHOLE, model_dir=whole, prompt="The",
                                                       max_new_tokens=NEW, temperature=0, stop_at_eos=False))
        results = [(i, p, f.result(timeout=300)) for i, p, f in futures]
        assert engine.stats["max_rows"] == 8  # rows of different adapters (and none) shared decode steps
        for i, prompt, result in results:
            folder = merged_model(adapters[i], tiny_dir, tmp_path / f"m{i}") if i is not None else tiny_dir
            assert result.completions[0].token_ids == greedy_reference(folder, prompt), f"adapter {i}"
            assert result.model_digest == (digest(i) if i is not None else BASE)
        assert whole_future.result(timeout=60).completions[0].token_ids == greedy_reference(whole, "The")
        # the base is resident once, beside the whole model; the adapters are in their own LRU
        assert sorted(engine.cache.digests()) == sorted([BASE, WHOLE])
        assert len(engine.cache.adapter_digests()) == ADAPTERS
        distinct = {tuple(r.completions[0].token_ids) for i, p, r in results if p == "The"}
        assert len(distinct) >= 4  # the adapters really change what is written
        # ... and so do their token rows: adapters with them write tokens of those rows
        with_rows = [r for i, p, r in results if i is not None and i % 3 == 1]
        chose_rows = sum(any(t in _token_ids(adapters[i]) for t in r.completions[0].token_ids)
                         for i, p, r in results if i is not None and i % 3 == 1)
        assert chose_rows >= len(with_rows) // 2
    finally:
        engine.close()


def test_int8_rows_match_their_merged_int8_models(tiny_dir, adapters, tmp_path):
    chosen = list(range(0, ADAPTERS, 5))
    engine = Engine(cache_bytes=256 * 1024 * 1024, max_batch=8)
    merged = Engine(cache_bytes=256 * 1024 * 1024, max_batch=8)
    try:
        futures = [(i, engine.submit(request(i, adapters[i], tiny_dir, PROMPTS[i % 5], "int8"))) for i in chosen]
        for i, future in futures:
            result = future.result(timeout=300)
            assert result.precision == "int8"
            folder = merged_model(adapters[i], tiny_dir, tmp_path / f"m{i}")
            alone = merged.generate(GenerationRequest(model_digest=digest(1000 + i), model_dir=folder,
                                                      prompt=PROMPTS[i % 5], max_new_tokens=NEW, temperature=0,
                                                      stop_at_eos=False, precision="int8"), timeout=60)
            assert result.completions[0].token_ids == alone.completions[0].token_ids, f"adapter {i}"
    finally:
        engine.close()
        merged.close()


def test_a_row_is_the_same_alone_or_batched_with_other_adapters(tiny_dir, adapters):
    engine = Engine(cache_bytes=256 * 1024 * 1024, max_batch=8)
    try:
        alone = engine.generate(request(3, adapters[3], tiny_dir, "We hold"), timeout=60)
        crowd = [engine.submit(request(i, adapters[i], tiny_dir, "We hold")) for i in range(8)]
        assert crowd[3].result(timeout=60).completions[0].token_ids == alone.completions[0].token_ids
    finally:
        engine.close()


def test_adapters_are_evicted_before_bases_within_their_own_budget(tiny_dir, adapters):
    one = Engine(cache_bytes=256 * 1024 * 1024).cache.adapter(digest(1), adapters[1], base_digest=BASE).nbytes
    engine = Engine(cache_bytes=64 * 1024 * 1024, adapter_bytes=3 * one + one // 2)
    try:
        for i in (1, 16, 31, 46):  # same shapes (r 5, all four targets, token rows): three fit the budget
            engine.generate(request(i, adapters[i], tiny_dir, "The"), timeout=60)
        assert engine.cache.adapter_digests() == [digest(16), digest(31), digest(46)]
        assert engine.cache.digests() == [BASE]
        assert engine.cache.adapter_loads == 4
        engine.generate(request(46, adapters[46], tiny_dir, "Of the"), timeout=60)  # warm: no load
        assert engine.cache.adapter_loads == 4
        with pytest.raises(ModelTooLarge):
            Engine(cache_bytes=64 * 1024 * 1024, adapter_bytes=10).cache.adapter(
                digest(1), adapters[1], base_digest=BASE)
    finally:
        engine.close()


def test_measurements_read_an_adapter_as_served_not_its_bare_base(tiny_dir, adapters, tmp_path):
    """Perplexity and entropies (the watermark's power figures, the verifier's entropy pass) are
    computed on the model as served: the adapter, token rows included, applied to its base."""
    from inference.watermark import text_entropies

    engine = Engine(cache_bytes=256 * 1024 * 1024)
    try:
        _, served = engine.served_model(digest(1), adapters[1], base_digest=BASE, base_dir=tiny_dir)
        merged = AutoModelForCausalLM.from_pretrained(merged_model(adapters[1], tiny_dir, tmp_path / "m1")).eval()
        bare = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
        ids = torch.tensor([sorted(_token_ids(adapters[1]))[:6] + [1, 2, 3]] * 2)
        with torch.inference_mode():
            logits = served(input_ids=ids).logits
            assert torch.allclose(logits, merged(input_ids=ids).logits, atol=1e-4)
            assert not torch.allclose(logits, bare(input_ids=ids).logits, atol=1e-2)
        text = ids[0].tolist()
        assert text_entropies(served, text, n_positions=64) == pytest.approx(
            text_entropies(merged, text, n_positions=64), abs=1e-4)
        loaded, whole = engine.served_model(BASE, tiny_dir)
        assert whole is loaded.model is engine.cache.get(BASE, tiny_dir).model  # a whole model as is
    finally:
        engine.close()
