"""What Imprint's two kinds of credential (API keys, personal access tokens) do alike: they are
stored as a digest of the plaintext, and they remember when they were last used."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.utils import timezone

# "Last used" is for people reading a list, not an access log: at most one write per interval.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def credential_hash(plaintext: str) -> str:
    # The plaintext is 256 random bits: a plain SHA-256 is enough (no password stretching needed).
    return hashlib.sha256(plaintext.encode()).hexdigest()


def credential_touch(credential) -> None:
    """Set `credential.last_used_at` to now, writing the row at most once per LAST_USED_RESOLUTION."""
    now = timezone.now()
    if credential.last_used_at is None or now - credential.last_used_at > LAST_USED_RESOLUTION:
        credential.last_used_at = now
        type(credential).objects.filter(pk=credential.pk).update(last_used_at=now)
