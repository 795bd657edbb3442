"""A grant keeps the watermark scheme and parameters it was made with: generation and detection use
them, so changing WATERMARK_GAMMA / WATERMARK_DELTA later never makes its earlier texts undetectable."""

from __future__ import annotations

from core.secrets import watermark_secret
from inference.modelstore import tokenizer_for
from inference.receipts import jws_parts
from inference.verification import verification_run
from inference.watermark import detect, watermark_key_derive

from .test_generation_api import post


def _generate(client, licence) -> dict:
    return post(client, licence, max_new_tokens=120, temperature=1.0, ignore_eos=True).json()


def _z_with(licence, text: str, gamma: float) -> float:
    grant = licence.grant
    key = watermark_key_derive(secret=watermark_secret(grant.watermark_secret_version), grant_id=str(grant.pk))
    return round(detect(tokenizer_for(licence.version)(text)["input_ids"], key=key, gamma=gamma).z_score, 3)


def test_a_text_generated_under_another_gamma_is_still_detected_after_the_setting_changes_back(
        client, make_licence, settings):
    settings.WATERMARK_SCHEME, settings.WATERMARK_GAMMA = "lefthash", 0.5
    licence = make_licence()
    text = _generate(client, licence)["outputs"][0]["text"]
    settings.WATERMARK_SCHEME, settings.WATERMARK_GAMMA = "sweet", 0.25
    scan = verification_run(text=text)["watermark"]
    assert scan["detected"] and scan["grant_id"] == str(licence.grant.pk)
    assert scan["gamma"] == 0.5 and scan["z_score"] == _z_with(licence, text, 0.5)


def test_a_grant_generates_with_its_stored_parameters_not_todays_settings(client, make_licence, settings):
    settings.WATERMARK_SCHEME, settings.WATERMARK_GAMMA, settings.WATERMARK_DELTA = "lefthash", 0.5, 3.0
    licence = make_licence()
    assert licence.grant.watermark_scheme == "lefthash"
    assert licence.grant.watermark_params == {"gamma": 0.5, "delta": 3.0}
    settings.WATERMARK_SCHEME, settings.WATERMARK_GAMMA, settings.WATERMARK_DELTA = "sweet", 0.25, 2.0
    output = _generate(client, licence)["outputs"][0]
    claims = jws_parts(output["receipt"]["jws"])[1]
    assert claims["watermark"]["gamma"] == 0.5 and claims["watermark"]["delta"] == 3.0
    scan = verification_run(text=output["text"])["watermark"]
    assert scan["detected"] and scan["grant_id"] == str(licence.grant.pk)
