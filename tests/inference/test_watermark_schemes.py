"""Promises of the watermark scheme registry: every registered scheme finds its own key's text and
no other key's; unknown schemes and bad parameters are refused with a message naming them; and a
new scheme needs only its class and its settings entry to be granted, generated and verified."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch

from inference.checks import watermark_settings_check
from inference.receipts import jws_parts
from inference.verification import verification_run
from inference.watermark import (
    SCHEMES,
    WatermarkKey,
    WatermarkParamsInvalid,
    WatermarkScheme,
    WatermarkSchemeUnknown,
    next_token_entropy,
    register_scheme,
    scheme_build,
    scored_pairs,
    watermark_key_build,
    watermark_key_derive,
    watermark_choose,
    watermark_logits,
)
from inference.watermark.mixing import splitmix64

from .test_generation_api import post

SECRET = b"scheme-tests-secret"


def _biased_text(watermark: WatermarkKey, *, steps: int = 80, vocab: int = 1000, seed: int = 0):
    """Tokens picked from random logits as the engine picks them under the watermark (greedily after
    a logits processor; sampled by a scheme that samples), and the entropy the detector would see
    before each token."""
    rng = np.random.default_rng(seed)
    generator, memory = torch.Generator().manual_seed(seed), set()
    ids, entropies = [7, 8, 9], [0.0, 0.0, 0.0]
    for _ in range(steps):
        logits = torch.from_numpy(rng.normal(0, 1.5, (1, vocab)).astype(np.float32))
        entropies.append(float(next_token_entropy(logits)[0]))
        if watermark.scheme.acts_at == "sampling":
            picked = watermark_choose(watermark=watermark, histories=[ids], probs=logits.softmax(-1),
                                      generators=[generator], memories=[memory])
            ids.append(int(picked[0]))
        else:
            ids.append(int(watermark_logits(watermark=watermark, previous_tokens=[ids[-1]], logits=logits).argmax()))
    return ids, np.array(entropies)


GREEN_LIST = sorted(name for name, cls in SCHEMES.items() if issubclass(cls, WatermarkScheme))
CASES = [(name, {"delta": 4.0}) for name in GREEN_LIST] + [
    ("sweet", {"delta": 4.0, "entropy_threshold": 1.0}), ("sweet", {"delta": 4.0, "context_width": 0}),
    ("gumbel", {}), ("gumbel", {"context_width": 1, "entropy_threshold": 0.0})]


@pytest.mark.parametrize(("name", "params"), CASES)
def test_every_registered_scheme_detects_its_own_key_and_not_another(name, params):
    scheme = scheme_build(name, params)
    mine, other = (watermark_key_derive(secret=SECRET, grant_id=g) for g in ("grant-a", "grant-b"))
    ids, entropies = _biased_text(WatermarkKey(mine, scheme))
    entropies = entropies if scheme.needs_entropies else None
    assert scheme.detect(ids, key=mine, entropies=entropies).z_score > 4
    assert scheme.detect(ids, key=other, entropies=entropies).z_score < 3
    found = scheme.detect_any(ids, [other, mine, *range(1, 99)], entropies=entropies)
    assert found.is_watermarked() and found.best.key == mine and found.candidates == 100


def test_every_registered_scheme_is_covered_here():
    assert {name for name, _ in CASES} == set(SCHEMES) - {"salted"}


@pytest.mark.parametrize(("name", "params"), CASES)
def test_many_keys_count_exactly_as_one_by_one(name, params):
    scheme = scheme_build(name, params)
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 512, 90)
    previous, tokens = scheme.scored_pairs(ids)
    keys = rng.integers(0, 2**63, 1100, dtype=np.int64).astype(np.uint64)  # more than one block
    scores = scheme.scores(keys, previous=previous, tokens=tokens)
    for i in (0, 600, 1099):
        assert scores[i] == pytest.approx(scheme.detect(ids, key=int(keys[i])).score, rel=1e-12)


def test_a_key_travels_as_a_dict_and_comes_back_the_same():
    key = WatermarkKey(5, scheme="sweet", delta=3.0, entropy_threshold=1.0)
    assert WatermarkKey(**key.to_dict()) == key
    assert key.to_dict() == {"key": 5, "scheme": "sweet", "gamma": 0.25, "delta": 3.0, "entropy_threshold": 1.0,
                             "context_width": 1}
    assert WatermarkKey(5).scheme == scheme_build("lefthash")  # a bare key is the first scheme's


def test_unknown_schemes_are_refused_with_the_known_ones_named():
    with pytest.raises(WatermarkSchemeUnknown, match=r"'nope'.*lefthash, sweet"):
        scheme_build("nope", {})
    with pytest.raises(WatermarkSchemeUnknown):
        WatermarkKey(1, scheme="nope")


@pytest.mark.parametrize(("name", "params", "message"), [
    ("sweet", {"gamma": 1.5}, "gamma must be between 0 and 1"),
    ("lefthash", {"gamma": 0}, "gamma must be between 0 and 1"),
    ("lefthash", {"delta": -1.0}, "delta must be 0 or more"),
    ("lefthash", {"delta": "big"}, "delta must be a number"),
    ("lefthash", {"delta": float("inf")}, "delta must be finite"),
    ("sweet", {"gamma": True}, "gamma must be a number"),
    ("sweet", {"context_width": 2}, "context_width must be 0 or 1"),
    ("sweet", {"context_width": 0.5}, "context_width must be a whole number"),
    ("sweet", {"entropy_threshold": -0.1}, "entropy_threshold must be 0 or more"),
    ("lefthash", {"entropy_threshold": 1.0}, "has no parameter entropy_threshold"),
    ("sweet", ["gamma"], "must be a mapping"),
    ("gumbel", {"context_width": 0}, "context_width must be between 1 and 8"),
    ("gumbel", {"free_share": 1.0}, "free_share must be at least 0 and below 1"),
    ("gumbel", {"delta": 2.0}, "has no parameter delta"),
])
def test_invalid_parameters_are_refused_with_the_parameter_named(name, params, message):
    with pytest.raises(WatermarkParamsInvalid, match=message):
        scheme_build(name, params)


def test_parameters_are_normalised_and_missing_ones_take_the_defaults_grants_always_had():
    assert scheme_build("sweet", {"context_width": 1.0, "delta": 3}).params() == {
        "gamma": 0.25, "delta": 3.0, "entropy_threshold": 0.0, "context_width": 1}
    assert scheme_build("lefthash", {}).params() == {"gamma": 0.25, "delta": 2.0}
    # delta changes generation only: keys differing in it are scored together
    assert scheme_build("sweet", {"delta": 3.0}).family == scheme_build("sweet", {"delta": 4.0}).family
    assert scheme_build("sweet", {}).family != scheme_build("lefthash", {}).family


def test_settings_a_server_cannot_build_fail_its_system_check(settings):
    assert watermark_settings_check() == []
    settings.WATERMARK_SCHEME, settings.WATERMARK_GAMMA = "sweet", 1.5
    [error] = watermark_settings_check()
    assert error.id == "inference.E001" and "gamma" in error.msg
    settings.WATERMARK_GAMMA, settings.WATERMARK_SCHEME = 0.25, "nope"
    [error] = watermark_settings_check()
    assert "'nope' has no entry in WATERMARK_SCHEMES" in error.msg


# --- A new scheme: its class and its settings entry, nothing else ------------------------------

@pytest.fixture
def toy_scheme(settings):
    """A scheme whose pair hash takes a salt parameter, registered as a new scheme module would
    register it, and made the scheme new grants get through settings alone."""

    @register_scheme
    @dataclass(frozen=True)
    class Salted(WatermarkScheme):
        name: ClassVar[str] = "salted"
        salt: int = 0

        def _pairs(self, previous, tokens):
            pairs = (np.asarray(previous, dtype=np.uint64) << np.uint64(32)) | np.asarray(tokens, dtype=np.uint64)
            return splitmix64(pairs ^ np.uint64(self.salt))

        def _mix_keys(self, mixed_keys, pairs, out, scratch):
            np.bitwise_xor(mixed_keys[:, None], pairs[None, :], out=out)

        def scored_pairs(self, token_ids, *, entropies=None):
            return scored_pairs(token_ids)

    settings.WATERMARK_SCHEMES = {**settings.WATERMARK_SCHEMES, Salted.name: ("gamma", "delta", "salt")}
    settings.WATERMARK_SCHEME, settings.WATERMARK_SALT, settings.WATERMARK_DELTA = Salted.name, 1234, 4.0
    yield Salted
    del SCHEMES[Salted.name]


def test_a_new_scheme_is_granted_generated_receipted_and_verified_from_its_class_and_settings(
        client, make_licence, toy_scheme):
    licence, other = make_licence(), make_licence()
    assert licence.grant.watermark_scheme == toy_scheme.name
    assert licence.grant.watermark_params == {"gamma": 0.25, "delta": 4.0, "salt": 1234}
    output = post(client, licence, max_new_tokens=120, temperature=1.0, ignore_eos=True).json()["outputs"][0]
    claims = jws_parts(output["receipt"]["jws"])[1]["watermark"]
    assert claims == {"scheme": toy_scheme.name, "gamma": 0.25, "delta": 4.0, "salt": 1234, "secret_version": 1}
    scan = verification_run(text=output["text"])["watermark"]
    assert scan["detected"] and scan["grant_id"] == str(licence.grant.pk) != str(other.grant.pk)
    assert scan["scheme"] == toy_scheme.name and scan["candidates"] == 2


def test_a_grants_stored_parameters_are_validated_each_time_whatever_was_built_before():
    build = {"scheme": "sweet", "secret": SECRET, "grant_id": "g"}
    assert watermark_key_build(params={"context_width": 1}, **build).scheme.context_width == 1
    with pytest.raises(WatermarkParamsInvalid, match="context_width must be a number"):
        watermark_key_build(params={"context_width": True}, **build)
    with pytest.raises(WatermarkParamsInvalid, match="must be a mapping"):
        watermark_key_build(params=["gamma"], **build)
