"""A compromised receipt-signing key can be distrusted: revoking its kid (command or admin action)
makes every receipt it signed fail as key_revoked and takes it out of the JWKS, and a retired key
cannot vouch for a receipt claiming to be issued after its retirement."""

from __future__ import annotations

import json
import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from core import secrets as keyring
from inference.models import SigningKey
from inference.receipts import jwks, jws_sign, receipt_sign, receipt_verify
from tests import factories

from .test_receipts import TEXT, claims, own_keyring  # noqa: F401 - the autouse keyring fixture

pytestmark = pytest.mark.django_db


def test_a_receipt_signed_by_a_revoked_key_fails_as_key_revoked_and_leaves_the_jwks():
    kid, token = receipt_sign(claims=claims())
    call_command("signing_key_revoke", kid, reason="seed found in a public paste")
    check = receipt_verify(jws=token, text=TEXT)
    assert not check.valid and check.reason == "key_revoked" and "revoked" in check.message
    assert kid not in {k["kid"] for k in jwks()["keys"]}
    stored = SigningKey.objects.get(kid=kid)
    assert stored.state == "revoked" and stored.revoked_reason == "seed found in a public paste"
    # An attacker holding the seed forges a fresh receipt: it fails the same way.
    stolen = next(k for k in keyring.signing_keys() if k.kid == kid)
    assert receipt_verify(jws=jws_sign(claims(), stolen), text=TEXT).reason == "key_revoked"
    # Signing goes on under a new key, which verifies.
    new_kid, new_token = receipt_sign(claims=claims())
    assert new_kid != kid and receipt_verify(jws=new_token, text=TEXT).valid


def test_a_receipt_dated_after_its_key_was_retired_fails():
    kid, genuine = receipt_sign(claims=claims())
    old = keyring.signing_keys()[0]
    keyring.signing_key_rotate_local()
    receipt_sign(claims=claims())  # publishes the new key and retires the old one
    forged = jws_sign({**claims(), "iat": int(time.time()) + 60}, old)
    check = receipt_verify(jws=forged, text=TEXT)
    assert not check.valid and check.reason == "issued_after_retirement" and check.kid == kid
    assert receipt_verify(jws=genuine, text=TEXT).valid  # what it signed while active still holds


def test_a_revoked_key_from_the_environment_never_signs_and_is_never_republished(monkeypatch):
    monkeypatch.setenv(keyring.SIGNING_KEYS_ENV, json.dumps([{"kid": "env-1", "d": keyring.b64url(b"\x01" * 32)}]))
    _, token = receipt_sign(claims=claims())
    call_command("signing_key_revoke", "env-1", reason="leaked")
    with pytest.raises(ImproperlyConfigured, match="revoked"):
        receipt_sign(claims=claims())
    assert receipt_verify(jws=token, text=TEXT).reason == "key_revoked"
    assert SigningKey.objects.get(kid="env-1").state == "revoked" and jwks()["keys"] == []


def test_the_revoke_command_refuses_an_unknown_kid_or_a_missing_reason():
    kid, _ = receipt_sign(claims=claims())
    with pytest.raises(CommandError, match="no-such-kid"):
        call_command("signing_key_revoke", "no-such-kid", reason="x")
    with pytest.raises(CommandError, match="reason"):
        call_command("signing_key_revoke", kid, reason="  ")
    assert SigningKey.objects.get(kid=kid).state == "active"


def test_staff_revoke_a_key_with_the_admin_action(client):
    kid, token = receipt_sign(claims=claims())
    admin = factories.user(staff=True)
    admin.is_superuser = True
    admin.save()
    client.force_login(admin)
    response = client.post("/admin/inference/signingkey/", {"action": "revoke_keys", "_selected_action": [kid]})
    assert response.status_code == 302
    assert SigningKey.objects.get(kid=kid).state == "revoked"
    assert receipt_verify(jws=token, text=TEXT).reason == "key_revoked"
