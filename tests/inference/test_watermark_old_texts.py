"""Texts made before the schemes became classes keep their verdicts: every figure below was
computed with the code at commit 49ad3e1 (one module, schemes as strings) and must never change,
or texts already in the world would be scored differently from when they were made."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from inference.watermark import scheme_build, watermark_key_build, watermark_logits

SECRET = b"golden-secret-v1"
LEFTHASH_GRANT = ("lefthash", {"gamma": 0.25, "delta": 2.0})  # what lefthash grants store

# Made by the old code: greedy picks from seeded random logits (vocabulary 1000) after its bias,
# under the key of grant "grant-golden".
LEFTHASH_TEXT = [
    7, 303, 40, 136, 671, 607, 410, 276, 825, 252, 250, 378, 952, 641, 893, 510, 457, 224, 849, 712, 810, 287,
    955, 830, 882, 319, 752, 600, 418, 618, 875, 20, 466, 373, 13, 478, 478, 214, 719, 762, 693, 38, 548, 623,
    852, 85, 342, 1, 594, 554, 297, 903, 218, 959, 232, 836, 722, 89, 790, 738, 686, 798, 219, 701, 65, 133, 258,
    451, 608, 530, 67, 393, 186, 284, 305, 448, 77, 69, 978, 664, 888]
SWEET_TEXT = [
    7, 856, 217, 675, 192, 607, 767, 326, 56, 215, 444, 224, 952, 336, 779, 773, 825, 495, 364, 267, 810, 404,
    704, 100, 210, 319, 752, 76, 562, 516, 875, 825, 466, 78, 211, 728, 191, 323, 512, 965, 744, 354, 548, 903,
    797, 96, 899, 81, 951, 484, 615, 393, 218, 959, 320, 71, 697, 502, 534, 447, 686, 693, 537, 748, 622, 532,
    137, 914, 832, 292, 731, 687, 321, 898, 656, 537, 33, 242, 978, 638, 693]
SWEET_GRANT = ("sweet", {"gamma": 0.25, "delta": 3.0, "entropy_threshold": 1.0, "context_width": 1})


def _key(grant, grant_id="grant-golden"):
    scheme, params = grant
    return watermark_key_build(scheme=scheme, params=params, secret=SECRET, grant_id=grant_id)


@pytest.mark.parametrize(("grant", "text", "entropy_seed", "expected", "other"), [
    (LEFTHASH_GRANT, LEFTHASH_TEXT, None, (80, 79, 15.233734495082507, 1.648988915538471e-46),
     (80, 18, -0.5163977794943222, 0.7364253627019273)),
    (SWEET_GRANT, SWEET_TEXT, 5, (33, 33, 9.9498743710662, 1.3552527156068872e-20),
     (33, 7, -0.502518907629606, 0.7533454761022369)),
])
def test_a_text_made_under_an_old_grant_scores_exactly_as_it_did(grant, text, entropy_seed, expected, other):
    key = _key(grant)
    assert key.key == 16906753589520812074
    entropies = None if entropy_seed is None else np.abs(np.random.default_rng(entropy_seed).normal(1.0, 0.8, len(text)))
    for k, figures in ((key.key, expected), (_key(grant, "grant-other").key, other)):
        found = key.scheme.detect(text, key=k, entropies=entropies)
        assert (found.scored_tokens, found.green_tokens, found.z_score, found.p_value) == figures


@pytest.mark.parametrize(("scheme", "params", "scored", "green", "z", "counts", "logits_sha"), [
    ("lefthash", {"gamma": 0.25, "delta": 2.0}, 119, 25, -1.00558663564743, [30, 37, 34, 33, 31], "3fce907c57306411"),
    ("lefthash", {"gamma": 0.5, "delta": 3.0}, 119, 59, -0.09166984970282113, [66, 67, 69, 62, 63], "7f7d2360e7324021"),
    ("sweet", {"gamma": 0.25, "delta": 3.0, "entropy_threshold": 1.0, "context_width": 1}, 65, 15,
     -0.35805743701971643, [16, 21, 20, 14, 16], "4e931f93d5cbde10"),
    ("sweet", {"gamma": 0.25, "delta": 4.0, "entropy_threshold": 0.5, "context_width": 0}, 97, 24,
     -0.05862103817605492, [31, 19, 20, 18, 29], "2f50b52e8e4468d0"),
])
def test_green_counts_and_the_bias_are_those_of_the_old_code(scheme, params, scored, green, z, counts, logits_sha):
    rng = np.random.default_rng(2024)
    ids = [int(x) for x in rng.integers(0, 50257, 120)]
    entropies = np.abs(rng.normal(1.0, 0.8, 120))
    key = _key((scheme, params))
    chosen = scheme_build(scheme, params)
    entropies = entropies if chosen.needs_entropies else None
    found = chosen.detect(ids, key=key.key, entropies=entropies)
    assert (found.scored_tokens, found.green_tokens, found.z_score) == (scored, green, z)
    previous, tokens = chosen.scored_pairs(ids, entropies=entropies)
    keys = [_key((scheme, params), f"g{i}").key for i in range(5)]
    assert chosen.green_counts(keys, previous=previous, tokens=tokens).tolist() == counts
    logits = torch.from_numpy(np.random.default_rng(7).normal(0, 2, (3, 256)).astype(np.float32))
    out = watermark_logits(watermark=key, previous_tokens=[5, 17, 255], logits=logits)
    assert hashlib.sha256(out.numpy().tobytes()).hexdigest()[:16] == logits_sha
