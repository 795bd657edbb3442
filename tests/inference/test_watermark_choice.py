"""Promises of the distortion-free watermark and of choosing a version's watermark at publish time,
on a model that was actually trained: the candidates are measured on the version's own samples, new
grants get the one that meets the recall goal at the least cost (unless a setting pins one), the
card shows it beside the others, its text names its grant from the text alone through the API,
clean text and other grants' texts accuse no one, and identical requests still get different texts."""

from __future__ import annotations

import pytest

from inference.engine import GenerationRequest
from inference.modelstore import engine_instance, model_folder_fetch
from inference.verification import verification_run
from inference.watermark import GUMBEL, SWEET, WatermarkKey, watermark_key_derive
from inference.watermark.choice import Measured, watermark_pick

from .test_generation_api import post

TOKENS = 200


def _api_text(client, licence, seed: int | None = None, **extra) -> str:
    body = {"max_new_tokens": TOKENS, "temperature": 1.0, "ignore_eos": True, **extra}
    if seed is not None:
        body["seed"] = seed
    response = post(client, licence, **body)
    assert response.status_code == 200, response.content
    return response.json()["outputs"][0]["text"]


@pytest.fixture
def chosen(make_trained_licence, settings):
    """A trained version whose candidate watermarks were measured (8 samples each)."""
    from inference.power import watermark_power_measure

    settings.WATERMARK_POWER_SAMPLES = 8
    first = make_trained_licence()  # a grant made before the choice keeps the settings' scheme
    power = watermark_power_measure(version_id=first.version.pk)
    first.version.refresh_from_db()
    return first, power


def test_the_rule_takes_the_cheapest_scheme_that_meets_the_goal_else_the_most_found():
    cheap_weak, dear_strong, free_strong = Measured("a", 0.80, 0.0), Measured("b", 0.99, 0.25), Measured("c", 0.97, 0.01)
    assert watermark_pick([cheap_weak, dear_strong, free_strong]) is free_strong
    assert watermark_pick([cheap_weak, dear_strong]) is dear_strong
    assert watermark_pick([cheap_weak, Measured("d", 0.80, 0.3)]) is cheap_weak
    assert watermark_pick([Measured("e", None, None)]) is None


def test_publishing_measures_every_candidate_and_new_grants_get_the_cheapest_that_finds_its_text(
        client, chosen, make_trained_licence):
    from inference.models import WatermarkPower

    first, power = chosen
    version = first.version
    rows = WatermarkPower.objects.filter(model_version=version)
    assert rows.count() == 3 and all(r.state == "done" and r.samples == 8 for r in rows)
    assert rows.filter(chosen=True).count() == 1 and power.chosen
    for row in rows:
        print(f"\n{row.scheme} {row.params}: recall {row.recall}; perplexity cost {row.perplexity_cost:+.1%}")
    # On this model the distortion-free scheme finds every text at no measured cost.
    assert power.scheme == GUMBEL and power.recall["200"] >= 0.95 and power.perplexity_cost <= 0.05
    assert (version.watermark_scheme, version.watermark_params) == (power.scheme, power.params)
    from audit.models import AuditEntry

    assert AuditEntry.objects.filter(event="version.watermark_chosen").count() == 1
    assert first.grant.watermark_scheme == GUMBEL  # unmeasured versions: the settings' default
    later = make_trained_licence()
    assert later.grant.watermark_scheme == power.scheme and later.grant.watermark_params == power.params
    html = client.get(f"/models/{version.listing.pk}/").content.decode()
    assert f'<code class="chosen-scheme">{power.scheme}</code>' in html and "distortion-free" in html
    assert html.count('class="alternative"') == 2 and "temperature 0.7" in html
    # The chosen scheme names its grant among many from the text alone, through the API.
    licences = [later, *(make_trained_licence() for _ in range(5))]
    for i, licence in enumerate(licences[:3]):
        text = _api_text(client, licence, seed=300 + i)
        response = client.post("/api/v1/verifications", {"text": text}, content_type="application/json")
        mark = response.json()["watermark"]
        assert mark["detected"] and mark["grant_id"] == str(licence.grant.pk), mark
        assert mark["scheme"] == power.scheme and mark["adjusted_p_value"] < 1e-6 and mark["candidates"] == 7


def test_a_pinned_setting_gives_every_new_grant_its_scheme_whatever_was_chosen(make_trained_licence, settings):
    from training.models import ModelVersion

    version = make_trained_licence().version
    chosen = {"context_width": 2, "entropy_threshold": 0.5, "free_share": 0.1}
    ModelVersion.objects.filter(pk=version.pk).update(watermark_scheme=GUMBEL, watermark_params=chosen)
    version.refresh_from_db()
    later = make_trained_licence()
    assert (later.grant.watermark_scheme, later.grant.watermark_params) == (GUMBEL, chosen)
    settings.WATERMARK_SCHEME, settings.WATERMARK_SCHEME_PINNED = SWEET, True
    assert make_trained_licence().grant.watermark_scheme == SWEET


def test_clean_text_and_text_under_a_key_of_no_grant_accuse_no_one(make_trained_licence):
    version = [make_trained_licence() for _ in range(4)][0].version
    outsider = WatermarkKey(watermark_key_derive(secret=b"not ours", grant_id="nobody"), GUMBEL)
    for seed in range(4):
        for watermark in (None, outsider):
            text = engine_instance().generate(GenerationRequest(
                model_digest=version.digest, model_dir=model_folder_fetch(version), prompt="the quick brown",
                max_new_tokens=TOKENS, stop_at_eos=False, seed=seed, watermark=watermark)).completions[0].text
            mark = verification_run(text=text)["watermark"]
            assert not mark["detected"], mark


def test_another_grants_text_never_names_this_grant(client, make_trained_licence):
    mine, theirs = make_trained_licence(), make_trained_licence()
    for seed in range(3):
        mark = verification_run(text=_api_text(client, theirs, seed=seed))["watermark"]
        assert mark.get("grant_id") != str(mine.grant.pk)
        assert mark["detected"] and mark["grant_id"] == str(theirs.grant.pk)


def test_identical_requests_get_different_texts_and_a_seed_still_repeats_one(make_trained_licence):
    version = make_trained_licence().version
    key = WatermarkKey(watermark_key_derive(secret=b"s", grant_id="g"), GUMBEL)

    def text(seed=None):
        return engine_instance().generate(GenerationRequest(
            model_digest=version.digest, model_dir=model_folder_fetch(version), prompt="the quick brown",
            max_new_tokens=60, stop_at_eos=False, seed=seed, watermark=key)).completions[0].text

    assert len({text() for _ in range(20)}) >= 18
    assert text(seed=5) == text(seed=5)


def test_a_passage_inside_longer_human_text_still_names_its_grant(client, make_trained_licence):
    from tests.support.corpus import corpus_documents

    licence = make_trained_licence()
    human = corpus_documents(count=6, length=60, seed=99)
    text = " ".join(human[:2]) + " " + _api_text(client, licence, seed=11) + " " + " ".join(human[2:4])
    mark = verification_run(text=text)["watermark"]
    assert mark["detected"] and mark["grant_id"] == str(licence.grant.pk)
