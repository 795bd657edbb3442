"""Promises of the per-grant green-list watermark, measured on the tiny model at temperature 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inference.engine import GenerationRequest
from inference.verification import MIN_TOKENS
from inference.watermark import (
    WatermarkKey,
    detect,
    detect_any,
    green_mask,
    is_green,
    watermark_key_derive,
)

from .conftest import TINY_DIGEST

SECRET = b"server-secret-v1"


def generate(engine, tiny_dir: Path, *, key: int | None, seed: int, tokens: int = 120, n: int = 4):
    result = engine.generate(GenerationRequest(
        model_digest=TINY_DIGEST, model_dir=tiny_dir, prompt="the quick brown", max_new_tokens=tokens,
        temperature=1.0, n=n, seed=seed, stop_at_eos=False,
        watermark=WatermarkKey(key) if key is not None else None))
    # Detection sees what a verifier sees: the last prompt token is the first token's context.
    return [result.prompt_token_ids[-1:] + c.token_ids for c in result.completions]


def test_keys_differ_per_grant_and_per_secret_version():
    assert watermark_key_derive(secret=SECRET, grant_id="g1") == watermark_key_derive(secret=SECRET, grant_id="g1")
    assert watermark_key_derive(secret=SECRET, grant_id="g1") != watermark_key_derive(secret=SECRET, grant_id="g2")
    assert watermark_key_derive(secret=b"v2", grant_id="g1") != watermark_key_derive(secret=SECRET, grant_id="g1")


def test_green_list_is_a_gamma_share_of_the_vocabulary_and_matches_the_detector():
    mask = green_mask(key=123, previous_token=0, vocab_size=50257)
    assert abs(mask.mean() - 0.25) < 0.01
    assert not np.array_equal(mask, green_mask(key=124, previous_token=0, vocab_size=50257))
    tokens = np.arange(50257)
    assert np.array_equal(mask, is_green(key=123, previous=np.zeros_like(tokens), tokens=tokens))


def test_watermarked_output_is_detected_for_its_grant_and_not_for_another(engine, tiny_dir):
    grant_key = watermark_key_derive(secret=SECRET, grant_id="grant-a")
    other_key = watermark_key_derive(secret=SECRET, grant_id="grant-b")
    for ids in generate(engine, tiny_dir, key=grant_key, seed=11):
        assert detect(ids, key=grant_key).z_score > 4
        assert abs(detect(ids, key=other_key).z_score) < 3
        found = detect_any(ids, [other_key, grant_key] + list(range(1, 99)))
        assert found.is_watermarked() and found.best.key == grant_key and found.candidates == 100


def test_unwatermarked_text_stays_near_zero_and_is_not_flagged(engine, tiny_dir):
    keys = [watermark_key_derive(secret=SECRET, grant_id=f"grant-{i}") for i in range(50)]
    z_scores = []
    for ids in generate(engine, tiny_dir, key=None, seed=21, n=8):
        z_scores += [detect(ids, key=k).z_score for k in keys]
        assert not detect_any(ids, keys).is_watermarked()
    print(f"\nunwatermarked: mean z {np.mean(z_scores):.3f}, sd {np.std(z_scores):.3f}, max {max(z_scores):.2f} "
          f"over {len(z_scores)} (text, key) pairs")
    assert abs(float(np.mean(z_scores))) < 0.5 and max(z_scores) < 4


def test_confident_detection_needs_at_most_the_stated_token_count(engine, tiny_dir):
    key = watermark_key_derive(secret=SECRET, grant_id="grant-a")
    samples = generate(engine, tiny_dir, key=key, seed=31, tokens=100, n=8)
    samples += generate(engine, tiny_dir, key=key, seed=32, tokens=100, n=8)
    needed = []
    for ids in samples:
        confident = [t for t in range(2, len(ids) + 1) if detect(ids[:t], key=key).z_score > 4]
        # the first length from which every longer prefix stays above z = 4
        last_miss = max((t for t in range(2, len(ids) + 1) if t not in confident), default=1)
        needed.append(last_miss)  # tokens generated = prefix length - 1 context token
    print(f"\nwatermark: tokens for z>4 per sample {sorted(needed)}, worst {max(needed)}")
    assert max(needed) <= MIN_TOKENS  # the length the verify page asks for
