"""Promises of the watermark on a model that was actually trained (a realistic validation
perplexity, not random weights): a 200-token text names its grant among many from the text alone,
clean text and other grants' text accuse no one, texts of the first scheme still verify, and the
measured detection power reaches the model card and the verify page."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from inference.engine import GenerationRequest
from inference.modelstore import engine_instance, model_folder_fetch
from inference.verification import verification_run
from inference.watermark import (
    SWEET,
    WatermarkKey,
    detect_best,
    green_counts,
    is_green,
    watermark_key_derive,
    watermark_logits,
)

from .test_generation_api import post

TOKENS = 200


@pytest.fixture(autouse=True)
def _sweet_grants(settings):
    """These promises are the entropy-selective green-list scheme's (grants made while it was the
    default keep it): pinned here, whatever a version's measurement would choose."""
    settings.WATERMARK_SCHEME, settings.WATERMARK_SCHEME_PINNED = SWEET, True


def _generate(client, licence, seed: int) -> str:
    body = post(client, licence, max_new_tokens=TOKENS, temperature=1.0, ignore_eos=True, seed=seed).json()
    return body["outputs"][0]["text"]


def _plain(version, *, seed: int, watermark=None) -> str:
    return engine_instance().generate(GenerationRequest(
        model_digest=version.digest, model_dir=model_folder_fetch(version), prompt="the quick brown",
        max_new_tokens=TOKENS, stop_at_eos=False, seed=seed, watermark=watermark)).completions[0].text


def test_the_trained_model_has_a_realistic_validation_perplexity(trained_tiny):
    print(f"\ntrained tiny model: validation perplexity {trained_tiny['val_perplexity']:.2f}")
    assert 5 < trained_tiny["val_perplexity"] < 60


@pytest.mark.parametrize("scheme", ["lefthash", SWEET])
def test_many_keys_are_scored_at_once_exactly_as_one_by_one(scheme):
    rng = np.random.default_rng(0)
    previous, tokens = rng.integers(0, 512, 150), rng.integers(0, 512, 150)
    keys = rng.integers(0, 2**63, 3000, dtype=np.int64).astype(np.uint64)
    counts = green_counts(keys, previous=previous, tokens=tokens, gamma=0.25, scheme=scheme)
    for i in (0, 1234, 2999):
        assert counts[i] == is_green(key=int(keys[i]), previous=previous, tokens=tokens, scheme=scheme).sum()
    assert abs(counts.mean() / 150 - 0.25) < 0.01
    # A text made of one key's green pairs: that key, and only it, stands out among 3,000.
    green = is_green(key=int(keys[77]), previous=previous, tokens=tokens, scheme=scheme)
    best = detect_best(previous[green], tokens[green], keys, gamma=0.25, scheme=scheme)
    assert best.key == int(keys[77]) and best.green_tokens == green.sum() and best.p_value < 1e-15


def test_the_bias_goes_only_where_the_model_is_unsure():
    key = WatermarkKey(key=5, delta=4.0, scheme=SWEET, entropy_threshold=0.5)
    sure = torch.full((1, 64), -20.0)
    sure[0, 3] = 20.0  # entropy ~ 0
    unsure = torch.zeros((1, 64))  # entropy log(64) = 4.2 nats
    out = watermark_logits(watermark=key, previous_tokens=[1, 1], logits=torch.cat([sure, unsure]))
    assert torch.equal(out[0], sure[0])
    assert set((out[1] - unsure[0]).unique().tolist()) == {0.0, 4.0}


def test_a_200_token_text_names_its_grant_among_many_from_the_text_alone(client, make_trained_licence):
    licences = [make_trained_licence() for _ in range(12)]
    assert licences[0].grant.watermark_scheme == SWEET
    for seed, licence in ((1, licences[3]), (2, licences[8])):
        mark = verification_run(text=_generate(client, licence, seed))["watermark"]
        assert mark["detected"], mark
        assert mark["grant_id"] == str(licence.grant.pk) and mark["candidates"] == 12
        assert mark["adjusted_p_value"] < 1e-6 and mark["z_score"] > 4


def test_clean_text_and_text_under_a_key_of_no_grant_accuse_no_one(client, make_trained_licence):
    licence = make_trained_licence()
    for _ in range(5):
        make_trained_licence()
    outsider = WatermarkKey(key=watermark_key_derive(secret=b"elsewhere", grant_id="not-a-grant"), delta=4.0,
                            scheme=SWEET, entropy_threshold=0.5)
    for text in (_plain(licence.version, seed=3), _plain(licence.version, seed=4, watermark=outsider)):
        result = verification_run(text=text)
        assert not result["watermark"]["detected"] and result["verdict"] == "no_evidence"
        assert "grant_id" not in result["watermark"]


def test_another_grants_text_never_names_this_grant(client, make_trained_licence):
    mine, theirs = make_trained_licence(), make_trained_licence()
    mark = verification_run(text=_generate(client, theirs, seed=5))["watermark"]
    assert mark["grant_id"] == str(theirs.grant.pk) != str(mine.grant.pk)


def test_texts_of_the_first_scheme_still_verify_after_the_scheme_changed(client, make_trained_licence, settings):
    settings.WATERMARK_SCHEME, settings.WATERMARK_DELTA = "lefthash", 2.0
    old = make_trained_licence()
    assert old.grant.watermark_scheme == "lefthash" and old.grant.watermark_params == {"gamma": 0.25, "delta": 2.0}
    text = _generate(client, old, seed=6)
    settings.WATERMARK_SCHEME, settings.WATERMARK_DELTA = SWEET, 4.0
    new = make_trained_licence()
    assert new.grant.watermark_scheme == SWEET
    mark = verification_run(text=text)["watermark"]
    assert mark["detected"] and mark["grant_id"] == str(old.grant.pk) and mark["scheme"] == "lefthash"
    assert mark["candidates"] == 2


@pytest.fixture
def measured(make_trained_licence, settings):
    """A trained version with a grant and its measured detection power (16 samples)."""
    from inference.power import watermark_power_measure

    settings.WATERMARK_POWER_SAMPLES = 16
    licence = make_trained_licence()
    power = watermark_power_measure(version_id=licence.version.pk)
    licence.version.listing.refresh_from_db()
    return licence, power


def test_power_is_measured_on_demand_on_the_models_own_samples_and_shown_on_the_card(
        client, make_trained_licence, settings):
    from django.core.management import call_command

    from inference.models import WatermarkPower

    settings.WATERMARK_POWER_SAMPLES = 16
    licence = make_trained_licence()
    call_command("watermark_power", str(licence.version.pk))
    power = WatermarkPower.objects.get(model_version=licence.version, scheme=SWEET)
    assert power.state == "done" and power.samples == 16 and set(power.recall) >= {"50", "100", "200"}
    print(f"\npower: recall {power.recall}; perplexity {power.perplexity_plain:.2f} plain, "
          f"{power.perplexity_watermarked:.2f} watermarked; entropy {power.mean_entropy:.2f} nats")
    assert power.recall["200"] >= 0.9 and power.perplexity_plain > 1
    page = client.get(f"/models/{licence.version.listing.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Watermark detection" in html and "200 tokens" in html
    assert f"{round(power.recall['200'] * 100)} %" in html and "perplexity under the model itself" in html
    call_command("watermark_power", str(licence.version.pk))  # measured: kept, not measured again
    assert WatermarkPower.objects.get(pk=power.pk).measured_at == power.measured_at


def test_a_miss_says_how_likely_detection_was_at_that_length(client, measured):
    licence, power = measured
    text = _plain(licence.version, seed=7)
    body = client.post("/api/v1/verifications", data=json.dumps({"text": text}),
                       content_type="application/json").json()
    assert body["verdict"] == "no_evidence"
    [entry] = body["watermark"]["power"]
    assert entry["model_version"] == str(licence.version.pk) and entry["measured_tokens"] <= body["watermark"]["text_tokens"]
    assert entry["recall"] is not None and "of the time" in entry["message"]
    page = client.post("/verify/", {"text": text}).content.decode()
    assert "How likely detection was at this length" in page and f"{round(entry['recall'] * 100)} %" in page
    assert licence.version.listing.title in page
