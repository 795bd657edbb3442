"""Signed provenance receipts: compact JWS (RFC 7515) with EdDSA over Ed25519 (RFC 8037).

A receipt's claims say which model version (digest), listing, licence terms (id = SHA-256 of their
canonical JSON), grant and pseudonymous customer produced an output, with which parameters, and the
SHA-256 of the prompt and of the output text. The public keys are published as a JWKS at
`/.well-known/jwks.json`, so anyone verifies a receipt with a standard JOSE library and the JWKS
alone; `receipt_verify` also says which check failed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from audit.services import audit_append
from core.secrets import (
    PrivateSigningKey,
    b64url,
    b64url_decode,
    signing_key_rotate_local,
    signing_keys,
)

from .errors import SigningKeyNotFound, SigningKeyRevokeInvalid
from .models import SigningKey

RECEIPT_TYPE = "imprint-receipt+jwt"


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def customer_pseudonym(user_id) -> str:
    """A stable pseudonymous customer id: HMAC of the user id under the site's secret key, so a
    receipt names no person, but the platform can map it back when a case needs it."""
    return "cus_" + salted_hmac("imprint.receipts.customer", str(user_id), algorithm="sha256").hexdigest()[:32]


def _json_bytes(data: dict) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def jws_sign(claims: dict, key: PrivateSigningKey) -> str:
    """Compact JWS of `claims`, signed with `key` (header: alg EdDSA, kid, typ)."""
    header = {"alg": "EdDSA", "kid": key.kid, "typ": RECEIPT_TYPE}
    signing_input = b64url(_json_bytes(header)) + "." + b64url(_json_bytes(claims))
    signature = key.private_key.sign(signing_input.encode("ascii"))
    return signing_input + "." + b64url(signature)


def jws_parts(jws: str) -> tuple[dict, dict, bytes, bytes]:
    """(header, claims, signing input, signature) of a compact JWS; raises ValueError if malformed."""
    parts = jws.strip().split(".")
    if len(parts) != 3:
        raise ValueError("A compact JWS has three dot-separated parts.")
    header, claims = json.loads(b64url_decode(parts[0])), json.loads(b64url_decode(parts[1]))
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("The JWS header and payload must be JSON objects.")
    return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), b64url_decode(parts[2])


# --- Keys and the JWKS -----------------------------------------------------------------------

@transaction.atomic
def signing_keys_sync() -> PrivateSigningKey | None:
    """Publish the keyring's public keys (SigningKey rows): the first is active, every other known
    key is retired but kept. Returns the active private key, or None when that key was revoked
    (nothing signs until a new key comes first). Raises ImproperlyConfigured (keyring)."""
    keyring = signing_keys()
    active = keyring[0]
    state = SigningKey.objects.filter(kid=active.kid).values_list("state", flat=True).first()
    if state == SigningKey.State.ACTIVE:
        return active  # already published: the common case costs one indexed read
    for key in keyring:
        SigningKey.objects.get_or_create(kid=key.kid, defaults={"public_key": key.public_b64})
    if state == SigningKey.State.REVOKED:
        return None  # a revoked key is never made active again, even if the keyring still lists it
    SigningKey.objects.filter(kid=active.kid).update(state=SigningKey.State.ACTIVE, retired_at=None)
    SigningKey.objects.exclude(kid=active.kid).filter(state=SigningKey.State.ACTIVE).update(
        state=SigningKey.State.RETIRED, retired_at=timezone.now())
    return active


@transaction.atomic
def signing_key_revoke(*, kid: str, reason: str, actor=None) -> SigningKey:
    """Distrust `kid` for good (its private key leaked): every receipt it signed fails as
    key_revoked, it leaves the JWKS and never signs again. In the embedded default a revoked active
    key is replaced by a new one at once; with keys from IMPRINT_SIGNING_KEYS nothing signs until a
    new key is put first there. Audited. Raises SigningKeyNotFound, SigningKeyRevokeInvalid (no
    reason, or already revoked)."""
    reason = (reason or "").strip()
    if not reason or len(reason) > 300:
        raise SigningKeyRevokeInvalid("Give a reason (at most 300 characters).", param="reason")
    signing_keys_sync()  # a configured key not yet published can be revoked too
    key = SigningKey.objects.select_for_update().filter(kid=kid).first()
    if key is None:
        raise SigningKeyNotFound(f"No signing key {kid!r} was ever published.", param="kid")
    if key.state == SigningKey.State.REVOKED:
        raise SigningKeyRevokeInvalid(f"Signing key {kid!r} is already revoked.", param="kid")
    key.state, key.revoked_at, key.revoked_reason = SigningKey.State.REVOKED, timezone.now(), reason
    key.save(update_fields=["state", "revoked_at", "revoked_reason"])
    audit_append(event="signing_key.revoked", actor=actor, subject=key, data={"kid": kid, "reason": reason})
    if signing_keys()[0].kid == kid:
        _replace_local_key()
    return key


def _replace_local_key() -> None:
    try:
        signing_key_rotate_local()
    except ImproperlyConfigured:
        return  # keys come from the environment: the operator puts a new key first there
    signing_keys_sync()


def jwks() -> dict:
    """The JWK Set of every trusted receipt key, active and retired (RFC 8037 OKP keys); revoked
    keys are left out."""
    signing_keys_sync()
    return {"keys": [
        {"kty": "OKP", "crv": "Ed25519", "x": key.public_key, "kid": key.kid, "alg": "EdDSA", "use": "sig"}
        for key in SigningKey.objects.exclude(state=SigningKey.State.REVOKED).order_by("-created_at")
    ]}


# --- Signing and verifying -------------------------------------------------------------------

def receipt_sign(*, claims: dict) -> tuple[str, str]:
    """(kid, compact JWS) of `claims` under the active key. Raises ImproperlyConfigured (keyring, or
    its first key revoked)."""
    key = signing_keys_sync()
    if key is None:
        raise ImproperlyConfigured(f"The first key of the signing keyring ({signing_keys()[0].kid}) is revoked: "
                                   "put a new key first in IMPRINT_SIGNING_KEYS.")
    return key.kid, jws_sign(claims, key)


@dataclass
class ReceiptCheck:
    """Outcome of `receipt_verify`. `reason`: ok, malformed, unknown_key, key_revoked, signature,
    issued_after_retirement, text_altered or prompt_altered."""

    valid: bool
    reason: str
    message: str
    claims: dict = field(default_factory=dict)
    kid: str | None = None


_MESSAGES = {
    "ok": "The receipt is signed by Imprint and matches the text.",
    "malformed": "This is not a compact JWS receipt.",
    "unknown_key": "The receipt names a signing key Imprint has never published.",
    "key_revoked": "The receipt's signing key was revoked (compromised): Imprint no longer vouches for "
                   "anything it signed.",
    "issued_after_retirement": "The receipt claims a date after its signing key was retired: Imprint did "
                               "not issue it.",
    "signature": "The signature does not match the receipt: it was altered or not signed by Imprint.",
    "text_altered": "The receipt is genuine but the text differs from the text it was issued for.",
    "prompt_altered": "The receipt is genuine but the prompt differs from the one it was issued for.",
}


def _check(reason: str, claims: dict | None = None, kid: str | None = None) -> ReceiptCheck:
    return ReceiptCheck(valid=reason == "ok", reason=reason, message=_MESSAGES[reason], claims=claims or {}, kid=kid)


def _issued_while_trusted(claims: dict, stored: SigningKey) -> bool:
    # A retired key signs nothing new, so a receipt it signed dated after its retirement is forged
    # (its seed leaked after rotation). `iat` is whole seconds, truncated: never after the instant.
    if stored.retired_at is None:
        return True
    iat = claims.get("iat")
    return isinstance(iat, int) and not isinstance(iat, bool) and iat <= stored.retired_at.timestamp()


def receipt_verify(*, jws: str, text: str | None, prompt: str | None = None) -> ReceiptCheck:
    """Check a receipt: well-formed, a known key (active, or retired after the receipt's date; never
    revoked), a valid EdDSA signature, and —
    when given — the SHA-256 of `text` (and `prompt`) equal to the signed ones. Never raises."""
    try:
        header, claims, signing_input, signature = jws_parts(jws)
    except (ValueError, UnicodeDecodeError):
        return _check("malformed")
    kid = header.get("kid")
    if header.get("alg") != "EdDSA" or not isinstance(kid, str):
        return _check("malformed", claims, None)
    signing_keys_sync()  # publishes a freshly configured key before we look it up
    stored = SigningKey.objects.filter(kid=kid).first()
    if stored is None:
        return _check("unknown_key", claims, kid)
    if stored.state == SigningKey.State.REVOKED:
        return _check("key_revoked", claims, kid)
    try:
        Ed25519PublicKey.from_public_bytes(b64url_decode(stored.public_key)).verify(signature, signing_input)
    except (InvalidSignature, ValueError):
        return _check("signature", claims, kid)
    if not _issued_while_trusted(claims, stored):
        return _check("issued_after_retirement", claims, kid)
    if text is not None and sha256_text(text) != claims.get("output_sha256"):
        return _check("text_altered", claims, kid)
    if prompt is not None and sha256_text(prompt) != claims.get("prompt_sha256"):
        return _check("prompt_altered", claims, kid)
    return _check("ok", claims, kid)
