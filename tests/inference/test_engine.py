"""Promises of the generation engine (plain module, no Django)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from inference.engine import (
    ContextTooLong,
    Engine,
    EngineBusy,
    GenerationRequest,
    InvalidGenerationRequest,
    LoadedModel,
    ModelCache,
)

from .conftest import TINY_DIGEST


def request(tiny_dir: Path, **kwargs) -> GenerationRequest:
    kwargs.setdefault("prompt", "the quick brown")
    kwargs.setdefault("max_new_tokens", 12)
    return GenerationRequest(model_digest=TINY_DIGEST, model_dir=tiny_dir, **kwargs)


def test_greedy_output_equals_model_generate(engine, tiny_dir):
    result = engine.generate(request(tiny_dir, temperature=0, max_new_tokens=30, stop_at_eos=False))
    loaded = engine.load(TINY_DIGEST, tiny_dir)
    prompt = torch.tensor([result.prompt_token_ids])
    expected = loaded.model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=30,
                                     do_sample=False, eos_token_id=None, pad_token_id=0)
    assert result.completions[0].token_ids == expected[0, prompt.shape[1]:].tolist()
    assert result.completion_tokens == 30


def test_same_seed_gives_same_samples_and_no_seed_gives_different_ones(engine, tiny_dir):
    first = engine.generate(request(tiny_dir, seed=7, n=2))
    again = engine.generate(request(tiny_dir, seed=7, n=2))
    assert [c.token_ids for c in first.completions] == [c.token_ids for c in again.completions]
    assert first.completions[0].token_ids != first.completions[1].token_ids  # each sample its own stream
    unseeded = [engine.generate(request(tiny_dir)) for _ in range(3)]
    assert len({tuple(r.completions[0].token_ids) for r in unseeded}) == 3
    assert len({r.seed for r in unseeded}) == 3


def test_prompt_plus_max_new_tokens_past_the_context_is_refused_with_both_numbers(engine, tiny_dir):
    with pytest.raises(ContextTooLong) as refused:
        engine.generate(request(tiny_dir, prompt="the quick brown", max_new_tokens=127))
    assert refused.value.max_new_tokens == 127 and refused.value.n_positions == 128
    assert str(refused.value.prompt_tokens) in str(refused.value) and "127" in str(refused.value)


@pytest.mark.parametrize(("field", "value"), [("prompt", ""), ("temperature", 50.0), ("top_p", 0.0),
                                              ("n", 99), ("max_new_tokens", 0), ("top_k", -1)])
def test_absurd_parameters_are_refused_naming_the_parameter(engine, tiny_dir, field, value):
    with pytest.raises(InvalidGenerationRequest) as refused:
        engine.generate(request(tiny_dir, **{field: value}))
    assert refused.value.param == field


def test_cancel_stops_between_steps_and_keeps_the_tokens_made(engine, tiny_dir):
    made = []
    result = engine.generate(request(tiny_dir, max_new_tokens=40, stop_at_eos=False,
                                     on_token=lambda event: made.append(event.token_id),
                                     should_cancel=lambda: len(made) >= 5))
    assert result.completions[0].finish_reason == "cancelled"
    assert result.completions[0].token_ids == made and len(made) == 5


def test_token_callback_streams_text_that_joins_to_the_output(engine, tiny_dir):
    events = []
    result = engine.generate(request(tiny_dir, max_new_tokens=20, seed=3, on_token=events.append))
    assert "".join(e.text for e in events) == result.completions[0].text
    assert [e.token_id for e in events if e.token_id >= 0] == result.completions[0].token_ids


def test_top_k_one_is_greedy(engine, tiny_dir):
    greedy = engine.generate(request(tiny_dir, temperature=0, stop_at_eos=False))
    top1 = engine.generate(request(tiny_dir, temperature=1.0, top_k=1, seed=5, stop_at_eos=False))
    assert top1.completions[0].token_ids == greedy.completions[0].token_ids


def _fake_loader(sizes: dict[str, int], loads: list[str]):
    def load(folder, *, digest, device):
        loads.append(digest)
        return LoadedModel(digest=digest, model=torch.nn.Identity(), tokenizer=None, device=device,
                           n_positions=8, vocab_size=8, eos_token_id=0, nbytes=sizes[digest])
    return load


def test_model_cache_evicts_the_least_recently_used_model_to_stay_under_its_byte_limit():
    loads: list[str] = []
    cache = ModelCache(max_bytes=100, device=torch.device("cpu"),
                       loader=_fake_loader({"a": 40, "b": 40, "c": 40}, loads))
    cache.get("a", Path("."))
    cache.get("b", Path("."))
    cache.get("a", Path("."))  # a is now more recent than b
    cache.get("c", Path("."))  # 120 > 100: evict b
    assert cache.digests() == ["a", "c"] and cache.used_bytes == 80
    cache.get("a", Path("."))
    assert loads == ["a", "b", "c"]


def test_a_model_that_grows_by_its_serving_copies_evicts_older_ones_to_stay_under_the_limit(tiny_dir):
    from inference.engine import lean_for

    engine = Engine(cache_bytes=64 * 1024 * 1024)
    try:
        first = engine.load("a" * 64, tiny_dir)
        second = engine.load("b" * 64, tiny_dir)
        engine.cache.max_bytes = first.nbytes + second.nbytes + 1  # both fit as loaded
        assert engine.generate(GenerationRequest(model_digest="b" * 64, model_dir=tiny_dir, prompt="the",
                                                 max_new_tokens=2, precision="int8")).precision == "int8"
        assert lean_for(second, "int8").extra_bytes > 0
        assert engine.cache.digests() == ["b" * 64]  # the int8 copies pushed it over: "a" went
        assert engine.cache.used_bytes == second.nbytes
    finally:
        engine.close()


def test_a_full_queue_is_refused_with_engine_busy(tiny_dir):
    engine = Engine(cache_bytes=64 * 1024 * 1024, max_queue=1)
    release = threading.Event()
    started = threading.Event()

    def hold(_event):
        started.set()
        release.wait(10)

    try:
        running = engine.submit(request(tiny_dir, max_new_tokens=2, on_token=hold))
        assert started.wait(30)
        queued = engine.submit(request(tiny_dir, max_new_tokens=2))
        with pytest.raises(EngineBusy):
            engine.submit(request(tiny_dir, max_new_tokens=2))
        release.set()
        assert running.result(30).completion_tokens >= 1 and queued.result(30).completion_tokens >= 1
    finally:
        release.set()
        engine.close()


def test_a_request_cancelled_while_queued_generates_nothing(engine, tiny_dir):
    result = engine.generate(request(tiny_dir, should_cancel=lambda: True))
    assert result.completion_tokens == 0 and result.completions[0].finish_reason == "cancelled"


def test_generated_text_never_holds_nul_characters(engine, tiny_dir):
    from inference.engine import decode_text

    loaded = engine.load(TINY_DIGEST, tiny_dir)
    nul = loaded.tokenizer.convert_tokens_to_ids("Ā")  # byte-level BPE's symbol for the 0x00 byte
    assert "\x00" in loaded.tokenizer.decode([nul]) and decode_text(loaded.tokenizer, [nul]) == ""
