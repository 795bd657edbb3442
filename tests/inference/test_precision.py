"""Serving precision in the engine: int8 serves like fp32 does (generates, streams, batches,
watermarks), each precision gives a request the same tokens alone or in a batch, the receipt can
say which precision made a text, and the perplexity measurement tells a sound int8 quantisation
from a broken one.

int8 is not fp32: its greedy tokens may differ from `model.generate`'s (fp32 stays exact, see
test_engine.py). What int8 promises instead is determinism per row — a row's activations are
quantised by their own range, never by the batch's — so batched == alone holds exactly for it too.
"""

from __future__ import annotations

import pytest
import torch

from inference.engine.lean import LeanGPT2
from inference.engine import (
    GenerationRequest,
    InvalidGenerationRequest,
    serving_precision,
    validate_request,
    windows_perplexity,
)
from inference.watermark import WatermarkKey, detect
from tests.support.corpus import corpus_documents
from tests.support.outliers import add_activation_outlier

from .conftest import TINY_DIGEST
from .test_batching import VARIED, run_batched, tokens
from .test_batching import request as batch_request

PRECISIONS = ["fp32", "int8"]


def request(tiny_dir, precision, **kwargs) -> GenerationRequest:
    kwargs.setdefault("prompt", "the quick brown")
    kwargs.setdefault("max_new_tokens", 16)
    return GenerationRequest(model_digest=TINY_DIGEST, model_dir=tiny_dir, precision=precision, **kwargs)


def with_precision(specs, precision):
    return [{**spec, "precision": precision} for spec in specs]


def validation_windows(tokenizer, length: int = 32, count: int = 24) -> torch.Tensor:
    ids = [t for text in corpus_documents() for t in tokenizer(text)["input_ids"] + [0]]
    windows = [ids[i:i + length] for i in range(0, len(ids) - length, length)][:count]
    return torch.tensor(windows)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_each_precision_generates_greedy_and_sampled_text_and_says_which_it_used(fresh_engine, tiny_dir, precision):
    greedy = fresh_engine.generate(request(tiny_dir, precision, temperature=0, max_new_tokens=20, stop_at_eos=False))
    sampled = fresh_engine.generate(request(tiny_dir, precision, temperature=1.0, seed=7, n=3, max_new_tokens=12))
    assert greedy.precision == sampled.precision == precision
    assert len(greedy.completions[0].token_ids) == 20 and greedy.completions[0].text
    again = fresh_engine.generate(request(tiny_dir, precision, temperature=1.0, seed=7, n=3, max_new_tokens=12))
    assert tokens(again) == tokens(sampled)  # seeded sampling is reproducible at every precision
    assert len({tuple(ids) for ids in tokens(sampled)}) > 1


def test_int8_writes_nearly_what_fp32_writes_on_a_trained_model(fresh_engine, tiny_dir):
    prompts = ["the quick brown", "old stone", "quiet towns sleep under", "pale winter", "a lazy dog"]
    agree = total = 0
    for prompt in prompts:
        exact = fresh_engine.generate(request(tiny_dir, "fp32", prompt=prompt, temperature=0, max_new_tokens=16,
                                              stop_at_eos=False))
        quantised = fresh_engine.generate(request(tiny_dir, "int8", prompt=prompt, temperature=0,
                                                  max_new_tokens=16, stop_at_eos=False))
        a, b = exact.completions[0].token_ids, quantised.completions[0].token_ids
        first_difference = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), len(a))
        agree += first_difference
        total += len(a)
    assert agree / total > 0.5  # greedy paths stay together for most of their length


@pytest.mark.parametrize("precision", PRECISIONS)
def test_streamed_deltas_join_to_the_output_at_each_precision(fresh_engine, tiny_dir, precision):
    deltas = []
    result = fresh_engine.generate(request(tiny_dir, precision, temperature=0.8, seed=3, max_new_tokens=24,
                                           on_token=lambda event: deltas.append(event.text)))
    assert "".join(deltas) == result.completions[0].text


@pytest.mark.parametrize("precision", PRECISIONS)
def test_batched_outputs_equal_alone_ones_at_each_precision(fresh_engine, tiny_dir, precision):
    specs = with_precision(VARIED, precision)
    alone = [tokens(fresh_engine.generate(batch_request(tiny_dir, **spec))) for spec in specs]
    prefills = fresh_engine.stats["prefills"]
    gated, futures = run_batched(fresh_engine, tiny_dir, specs, precision=precision)
    results = [f.result(30) for f in futures]
    assert [tokens(r) for r in results] == alone
    assert all(r.precision == precision for r in results)
    assert fresh_engine.stats["max_rows"] >= 1 + sum(spec.get("n", 1) for spec in VARIED)
    # the six requests that joined together were prefilled in one forward pass, after the gate's own
    assert fresh_engine.stats["prefills"] == prefills + 2 and fresh_engine.stats["max_prefill"] == len(VARIED)
    assert gated.result(30).completion_tokens == 30


def test_fp32_and_int8_requests_running_at_once_each_get_what_they_get_alone(fresh_engine, tiny_dir):
    specs = with_precision(VARIED[:3], "fp32") + with_precision(VARIED[3:], "int8") + with_precision(VARIED[:2], "int8")
    alone = [tokens(fresh_engine.generate(batch_request(tiny_dir, **spec))) for spec in specs]
    _gated, futures = run_batched(fresh_engine, tiny_dir, specs)
    results = [f.result(30) for f in futures]
    assert [tokens(r) for r in results] == alone
    assert [r.precision for r in results] == [spec["precision"] for spec in specs]


def test_int8_watermarks_each_grant_in_a_shared_batch(fresh_engine, tiny_dir):
    keys = [0xA11CE, 0xB0B, 0xCAFE]
    specs = [{"temperature": 1.0, "seed": 40 + i, "max_new_tokens": 100, "stop_at_eos": False,
              "watermark": WatermarkKey(k), "precision": "int8"} for i, k in enumerate(keys)]
    _gated, futures = run_batched(fresh_engine, tiny_dir, specs, precision="int8")
    for key, future in zip(keys, futures):
        result = future.result(30)
        assert result.precision == "int8"
        ids = result.prompt_token_ids[-1:] + result.completions[0].token_ids
        assert detect(ids, key=key).z_score > 4
        assert all(detect(ids, key=other).z_score < 3 for other in keys if other != key)


def test_a_device_serves_what_it_can_and_an_unknown_precision_is_refused():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert [serving_precision(p, cpu) for p in ("fp32", "int8", "bf16")] == ["fp32", "int8", "fp32"]
    assert [serving_precision(p, cuda) for p in ("fp32", "int8", "bf16")] == ["fp32", "bf16", "bf16"]
    with pytest.raises(InvalidGenerationRequest) as refused:
        validate_request(GenerationRequest(model_digest="x", model_dir=None, prompt="hi", precision="int4"))
    assert refused.value.param == "precision"


def test_bf16_asked_on_a_cpu_engine_is_served_and_recorded_as_fp32(fresh_engine, tiny_dir):
    asked = fresh_engine.generate(request(tiny_dir, "bf16", temperature=0, max_new_tokens=10, stop_at_eos=False))
    exact = fresh_engine.generate(request(tiny_dir, "fp32", temperature=0, max_new_tokens=10, stop_at_eos=False))
    assert asked.precision == "fp32" and tokens(asked) == tokens(exact)


def test_an_unknown_precision_fails_only_its_own_request(fresh_engine, tiny_dir):
    future = fresh_engine.submit(request(tiny_dir, "int3", temperature=0))
    with pytest.raises(InvalidGenerationRequest):
        future.result(30)
    assert fresh_engine.generate(request(tiny_dir, "int8", temperature=0)).precision == "int8"


def test_int8_keeps_a_trained_models_perplexity_within_two_percent(fresh_engine, tiny_dir):
    loaded = fresh_engine.load(TINY_DIGEST, tiny_dir)
    windows = validation_windows(loaded.tokenizer)
    exact = windows_perplexity(loaded, windows, precision="fp32")
    quantised = windows_perplexity(loaded, windows, precision="int8")
    assert exact < 100  # a trained model: far below the ~300 of a uniform guess over its vocabulary
    assert abs(quantised / exact - 1) < 0.02


def test_fp32_perplexity_is_the_models_own_loss(fresh_engine, tiny_dir):
    loaded = fresh_engine.load(TINY_DIGEST, tiny_dir)
    windows = validation_windows(loaded.tokenizer, count=4)
    with torch.inference_mode():
        loss = loaded.model(input_ids=windows, labels=windows).loss
    assert windows_perplexity(loaded, windows, precision="fp32") == pytest.approx(float(torch.exp(loss)), rel=1e-4)


def outlier_model(folder, tmp_path):
    """The tiny model with an activation outlier before every matrix, the lm_head included."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder)
    add_activation_outlier(model, before_lm_head=True)
    out = tmp_path / "outlier"
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(folder).save_pretrained(out)
    return out


def test_perplexity_exposes_a_badly_quantised_model(fresh_engine, tiny_dir, tmp_path):
    broken = outlier_model(tiny_dir, tmp_path)
    loaded = fresh_engine.load("f" * 64, broken)
    windows = validation_windows(loaded.tokenizer)
    exact = windows_perplexity(loaded, windows, precision="fp32")
    quantised = windows_perplexity(loaded, windows, precision="int8")
    sound = fresh_engine.load(TINY_DIGEST, tiny_dir)
    assert exact == pytest.approx(windows_perplexity(sound, windows, precision="fp32"), rel=1e-3)  # same model
    assert quantised / exact - 1 > 0.10


def test_the_int8_forward_holds_a_quarter_of_the_fp32_weight_bytes(tiny_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    matrices = sum(p.numel() for name, p in model.named_parameters() if name.endswith(".weight") and p.dim() == 2
                   and "wpe" not in name and "wte" not in name) + model.lm_head.weight.numel()
    int8 = LeanGPT2(model, "int8")
    assert int8.extra_bytes < 1.2 * matrices  # ~1 byte per weight (+ scales, two pad columns)
    with pytest.raises(ValueError, match="CUDA"):
        LeanGPT2(model, "bf16")  # bf16 serving is for CUDA devices
