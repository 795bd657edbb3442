"""Signed anchors of the audit chain: what is signed, with which key, and the published document.

An anchor says "entry #seq of the chain had hash H at time T". It is signed with the site's
receipt signing keyring (core.secrets, IMPRINT_SIGNING_KEYS): that key is already mandatory in
production and its public half is already published in the JWKS, so outsiders who check receipts
can check anchors with the keys they hold. The signed bytes start with a context line that no JWS
signing input can start with (those are base64url and dots), so an anchor signature can never be
passed off as a receipt signature, nor the reverse.

Trust in a public key never comes from the database (someone who can rewrite the chain can also
write a key row): anchors in the database are checked against the keyring; anchors in an exported
copy against the keyring and the keys that copy carries (its keeper vouches for them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.secrets import PrivateSigningKey, b64url, b64url_decode, signing_keys

from .errors import AnchorsFileInvalid

ANCHOR_CONTEXT = b"imprint-audit-anchor/v1\n"
DOCUMENT_FORMAT = "imprint-audit-anchors/v1"
SIGNED_MESSAGE = ("'imprint-audit-anchor/v1\\n' followed by the JSON object {\"at\", \"hash\", \"seq\"} "
                  "with sorted keys and no spaces, signed with Ed25519 (RFC 8032)")


@dataclass(frozen=True)
class SignedHead:
    """An anchor as published: sequence number, entry hash, ISO time, key id, signature."""

    seq: int
    hash: str
    at: str
    kid: str
    sig: str

    def as_dict(self) -> dict:
        return {"seq": self.seq, "hash": self.hash, "at": self.at, "kid": self.kid, "sig": self.sig}


def anchor_message(*, seq: int, entry_hash: str, at: str) -> bytes:
    body = json.dumps({"seq": seq, "hash": entry_hash, "at": at}, sort_keys=True, separators=(",", ":"))
    return ANCHOR_CONTEXT + body.encode()


def head_sign(*, seq: int, entry_hash: str, at: datetime) -> SignedHead:
    """Sign (seq, hash, time) with the active key of the keyring. Raises ImproperlyConfigured
    (the keyring)."""
    key: PrivateSigningKey = signing_keys()[0]
    when = at.isoformat()
    signature = key.private_key.sign(anchor_message(seq=seq, entry_hash=entry_hash, at=when))
    return SignedHead(seq=seq, hash=entry_hash, at=when, kid=key.kid, sig=b64url(signature))


def keyring_public_keys() -> dict[str, str]:
    """{kid: base64url raw public key} of every key in the keyring, active and older."""
    return {key.kid: key.public_b64 for key in signing_keys()}


def signature_problem(head: SignedHead, keys: dict[str, str]) -> str | None:
    """Why `head`'s signature does not hold under `keys` ({kid: public key}), or None when it does."""
    public = keys.get(head.kid)
    if public is None:
        return f"it is signed by key '{head.kid}', which is not a trusted key"
    try:
        Ed25519PublicKey.from_public_bytes(b64url_decode(public)).verify(
            b64url_decode(head.sig), anchor_message(seq=head.seq, entry_hash=head.hash, at=head.at))
    except (InvalidSignature, ValueError):
        return "its signature does not verify"
    return None


def anchors_document(heads: list[SignedHead], *, next_after: int | None = None) -> dict:
    """The published form: how to check, the public keys, the anchors (oldest first)."""
    keys = keyring_public_keys()
    return {
        "format": DOCUMENT_FORMAT, "signed_message": SIGNED_MESSAGE,
        "keys": [{"kid": kid, "kty": "OKP", "crv": "Ed25519", "x": x} for kid, x in keys.items()],
        "anchors": [head.as_dict() for head in heads], "next_after": next_after,
    }


def anchors_document_parse(raw: str) -> tuple[list[SignedHead], dict[str, str]]:
    """(anchors, {kid: public key}) of an exported document. Raises AnchorsFileInvalid."""
    try:
        document = json.loads(raw)
        if document.get("format") != DOCUMENT_FORMAT:
            raise ValueError(f"its format is not {DOCUMENT_FORMAT}")
        keys = {str(k["kid"]): str(k["x"]) for k in document.get("keys", [])}
        heads = [SignedHead(seq=int(a["seq"]), hash=str(a["hash"]), at=str(a["at"]), kid=str(a["kid"]),
                            sig=str(a["sig"])) for a in document["anchors"]]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AnchorsFileInvalid(f"The anchors file is not an exported anchors document: {exc}") from exc
    return heads, keys
