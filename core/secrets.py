"""Versioned server secrets: receipt signing keys (Ed25519) and watermark secrets.

Production (settings.PRODUCTION) takes both from the environment and refuses to start without them:

    IMPRINT_SIGNING_KEYS='[{"kid": "2026-11", "d": "<base64url 32-byte Ed25519 seed>"}, ...]'
        The first entry signs; the others stay published in the JWKS (rotation: put the new key
        first and keep the old one for a while; a key dropped from the list stays verifiable
        because its public half is kept in the SigningKey table).
    IMPRINT_WATERMARK_SECRETS='{"1": "<secret>", "2": "<secret>"}'
        Versioned; a new grant takes the highest version, and each grant keeps its version so
        rotating never orphans texts generated earlier.

The embedded default generates both into files under var/ on first use (mode 0600).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

SIGNING_KEYS_ENV = "IMPRINT_SIGNING_KEYS"
WATERMARK_SECRETS_ENV = "IMPRINT_WATERMARK_SECRETS"
_lock = threading.Lock()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class PrivateSigningKey:
    kid: str
    private_key: Ed25519PrivateKey

    @property
    def public_b64(self) -> str:
        raw = self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return b64url(raw)


def production_secrets_check() -> None:
    """Raises ImproperlyConfigured when production lacks its signing keys or watermark secrets."""
    if not settings.PRODUCTION:
        return
    for name in (SIGNING_KEYS_ENV, WATERMARK_SECRETS_ENV):
        if not os.environ.get(name, "").strip():
            raise ImproperlyConfigured(f"IMPRINT_ENV=production needs {name} (see core/secrets.py).")
    _parse_signing_keys(os.environ[SIGNING_KEYS_ENV])
    _parse_watermark_secrets(os.environ[WATERMARK_SECRETS_ENV])


def _parse_signing_keys(raw: str) -> list[PrivateSigningKey]:
    try:
        entries = json.loads(raw)
        keys = [PrivateSigningKey(kid=str(e["kid"]), private_key=Ed25519PrivateKey.from_private_bytes(
            b64url_decode(e["d"]))) for e in entries]
    except (ValueError, KeyError, TypeError) as exc:
        raise ImproperlyConfigured(f"{SIGNING_KEYS_ENV} must be a JSON list of {{kid, d}}: {exc}") from exc
    if not keys:
        raise ImproperlyConfigured(f"{SIGNING_KEYS_ENV} holds no key.")
    return keys


def _parse_watermark_secrets(raw: str) -> dict[int, bytes]:
    try:
        parsed = {int(version): str(secret).encode() for version, secret in json.loads(raw).items()}
    except (ValueError, AttributeError, TypeError) as exc:
        raise ImproperlyConfigured(f"{WATERMARK_SECRETS_ENV} must be a JSON object {{version: secret}}.") from exc
    if not parsed or any(len(s) < 16 for s in parsed.values()):
        raise ImproperlyConfigured(f"{WATERMARK_SECRETS_ENV} needs secrets of 16+ characters.")
    return parsed


def _var_file(name: str) -> Path:
    return Path(settings.VAR_DIR) / name


def _write_private(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    os.replace(tmp, path)  # atomic: a concurrent reader sees the old or the new file, never half


def _new_signing_entry() -> dict:
    seed = secrets.token_bytes(32)
    return {"kid": f"k-{secrets.token_hex(6)}", "d": b64url(seed)}


def signing_keys() -> list[PrivateSigningKey]:
    """The signing keyring, active key first. Raises ImproperlyConfigured in production without keys."""
    raw = os.environ.get(SIGNING_KEYS_ENV, "").strip()
    if raw:
        return _parse_signing_keys(raw)
    production_secrets_check()
    path = _var_file("signing-keys.json")
    with _lock:
        if not path.exists():
            _write_private(path, [_new_signing_entry()])
        return _parse_signing_keys(path.read_text())


def signing_key_rotate_local() -> PrivateSigningKey:
    """Embedded default only: make a new active key, keeping the old ones for verification.
    Raises ImproperlyConfigured when keys come from the environment (rotate them there)."""
    if os.environ.get(SIGNING_KEYS_ENV, "").strip() or settings.PRODUCTION:
        raise ImproperlyConfigured(f"Signing keys come from {SIGNING_KEYS_ENV}: rotate them there.")
    signing_keys()  # creates the file on first use
    path = _var_file("signing-keys.json")
    with _lock:
        entries = json.loads(path.read_text())
        _write_private(path, [_new_signing_entry(), *entries])
    return signing_keys()[0]


def watermark_secrets() -> dict[int, bytes]:
    """{version: secret}. Raises ImproperlyConfigured in production without secrets."""
    raw = os.environ.get(WATERMARK_SECRETS_ENV, "").strip()
    if raw:
        return _parse_watermark_secrets(raw)
    production_secrets_check()
    path = _var_file("watermark-secrets.json")
    with _lock:
        if not path.exists():
            _write_private(path, {"1": secrets.token_urlsafe(32)})
        return _parse_watermark_secrets(path.read_text())


def watermark_secret(version: int) -> bytes:
    """The secret of `version`. Raises ImproperlyConfigured when that version is not configured."""
    known = watermark_secrets()
    if version not in known:
        raise ImproperlyConfigured(f"Watermark secret version {version} is not configured.")
    return known[version]
