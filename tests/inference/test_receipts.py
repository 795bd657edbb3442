"""Promises of signed receipts: any JOSE library verifies them with the JWKS alone, and each kind of
tampering fails with its own reason."""

from __future__ import annotations

import json
import warnings

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.exceptions import ImproperlyConfigured

from core import secrets as keyring
from inference.receipts import jwks, jws_sign, receipt_sign, receipt_verify, sha256_text

TEXT = "The river ran past the old stone bridge."


@pytest.fixture(autouse=True)
def own_keyring(settings, tmp_path, monkeypatch):
    """Each test gets its own var/ (embedded keyring files) and no keys from the environment."""
    settings.VAR_DIR = tmp_path
    monkeypatch.delenv(keyring.SIGNING_KEYS_ENV, raising=False)
    monkeypatch.delenv(keyring.WATERMARK_SECRETS_ENV, raising=False)


def claims(text: str = TEXT) -> dict:
    return {"jti": "r-1", "iat": 1_700_000_000, "model": {"digest": "ab" * 32}, "grant": "g-1",
            "prompt_sha256": sha256_text("The river"), "output_sha256": sha256_text(text)}


def joserfc_verify(token: str, key_set: dict) -> dict:
    from joserfc import jws
    from joserfc.jwk import KeySet

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc prefers RFC 9864's "Ed25519" name over "EdDSA"
        verified = jws.deserialize_compact(token, KeySet.import_key_set(key_set), algorithms=["EdDSA"])
    return json.loads(verified.payload)


@pytest.mark.django_db
def test_a_receipt_verifies_with_a_jose_library_and_the_jwks_alone():
    _kid, token = receipt_sign(claims=claims())
    published = json.loads(json.dumps(jwks()))  # exactly what /.well-known/jwks.json serves
    assert joserfc_verify(token, published)["output_sha256"] == sha256_text(TEXT)
    assert all("d" not in key for key in published["keys"])  # never a private part


@pytest.mark.django_db
def test_a_genuine_receipt_with_its_text_is_valid():
    _kid, token = receipt_sign(claims=claims())
    check = receipt_verify(jws=token, text=TEXT, prompt="The river")
    assert check.valid and check.reason == "ok" and check.claims["grant"] == "g-1"


@pytest.mark.django_db
def test_one_changed_character_of_the_text_fails_as_text_altered():
    _kid, token = receipt_sign(claims=claims())
    check = receipt_verify(jws=token, text=TEXT.replace("river", "rivet"))
    assert not check.valid and check.reason == "text_altered"


@pytest.mark.django_db
def test_one_changed_character_of_the_receipt_fails_as_signature():
    _kid, token = receipt_sign(claims=claims())
    header, payload, signature = token.split(".")
    position = len(payload) // 2
    swapped = "A" if payload[position] != "A" else "B"
    tampered = f"{header}.{payload[:position]}{swapped}{payload[position + 1:]}.{signature}"
    check = receipt_verify(jws=tampered, text=TEXT)
    assert not check.valid and check.reason in ("signature", "malformed")
    # a changed signature character is always a signature failure
    sig_swapped = ("A" if signature[5] != "A" else "B")
    tampered_sig = f"{header}.{payload}.{signature[:5]}{sig_swapped}{signature[6:]}"
    assert receipt_verify(jws=tampered_sig, text=TEXT).reason == "signature"


@pytest.mark.django_db
def test_a_receipt_from_an_unknown_key_fails_as_unknown_key():
    stranger = keyring.PrivateSigningKey(kid="k-stranger", private_key=Ed25519PrivateKey.generate())
    check = receipt_verify(jws=jws_sign(claims(), stranger), text=TEXT)
    assert not check.valid and check.reason == "unknown_key"


@pytest.mark.django_db
def test_a_receipt_signed_with_a_known_kid_but_another_key_fails_as_signature():
    kid, _token = receipt_sign(claims=claims())
    forger = keyring.PrivateSigningKey(kid=kid, private_key=Ed25519PrivateKey.generate())
    assert receipt_verify(jws=jws_sign(claims(), forger), text=TEXT).reason == "signature"


@pytest.mark.django_db
def test_rotating_the_key_keeps_old_receipts_verifiable():
    old_kid, old_token = receipt_sign(claims=claims())
    keyring.signing_key_rotate_local()
    new_kid, new_token = receipt_sign(claims=claims())
    assert new_kid != old_kid
    published = jwks()
    assert {k["kid"] for k in published["keys"]} == {old_kid, new_kid}
    assert receipt_verify(jws=old_token, text=TEXT).valid and receipt_verify(jws=new_token, text=TEXT).valid
    assert joserfc_verify(old_token, published)["jti"] == "r-1"


@pytest.mark.django_db
def test_keys_from_the_environment_sign_and_a_dropped_key_still_verifies(monkeypatch):
    first = [{"kid": "env-1", "d": keyring.b64url(b"\x01" * 32)}]
    monkeypatch.setenv(keyring.SIGNING_KEYS_ENV, json.dumps(first))
    kid, token = receipt_sign(claims=claims())
    assert kid == "env-1"
    monkeypatch.setenv(keyring.SIGNING_KEYS_ENV, json.dumps([{"kid": "env-2", "d": keyring.b64url(b"\x02" * 32)}]))
    assert receipt_sign(claims=claims())[0] == "env-2"
    assert receipt_verify(jws=token, text=TEXT).valid


def test_production_refuses_to_start_without_provided_keys(settings):
    settings.PRODUCTION = True
    with pytest.raises(ImproperlyConfigured, match="IMPRINT_SIGNING_KEYS"):
        keyring.production_secrets_check()
    with pytest.raises(ImproperlyConfigured):
        keyring.signing_keys()


@pytest.mark.django_db
def test_the_rotate_command_makes_a_new_active_key_and_keeps_the_old_one_published():
    from django.core.management import call_command

    from inference.models import SigningKey

    old_kid, _token = receipt_sign(claims=claims())
    call_command("signing_key_rotate")
    states = dict(SigningKey.objects.values_list("kid", "state"))
    assert states[old_kid] == "retired" and list(states.values()).count("active") == 1
