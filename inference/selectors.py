"""Inference reads: which grant serves a request, idempotent replays, watermark keys."""

from __future__ import annotations

import re
import uuid

from core.secrets import watermark_secret
from licensing.models import ApiKey, Grant
from licensing.selectors import grant_for_model

from .errors import ModelNotFound
from .models import UsageEntry
from .watermark import WatermarkKey, watermark_key_build

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def grant_for_request(*, api_key: ApiKey | None, model: str, customer=None) -> Grant:
    """The grant that serves a request for `model` (a model version id, its digest, or a listing
    id): licensing's choice among the key's grants (or, without a key, the signed-in customer's:
    the playground).

    Raises ModelNotFound (404) for a malformed model id or when no grant covers that model."""
    model = (model or "").strip()
    if not _DIGEST.match(model):
        try:
            uuid.UUID(model)
        except ValueError:
            raise ModelNotFound(f"Unknown model {model!r}: use a model id from /v1/models.", param="model") from None
    grant = grant_for_model(api_key=api_key, model=model, customer=customer)
    if grant is None:
        raise ModelNotFound(f"No licence of this key covers model {model!r}.", param="model")
    return grant


def grant_watermark_key(grant: Grant) -> WatermarkKey:
    """The grant's watermark key with the scheme and parameters stored on it. Raises
    WatermarkSchemeUnknown / WatermarkParamsInvalid for a scheme or parameters this server cannot
    use, ImproperlyConfigured when its secret version is missing."""
    return watermark_key_build(scheme=grant.watermark_scheme, params=grant.watermark_params or {},
                               secret=watermark_secret(grant.watermark_secret_version), grant_id=str(grant.pk))


def usage_by_idempotency_key(*, api_key: ApiKey, idempotency_key: str) -> UsageEntry | None:
    if not idempotency_key:
        return None
    return UsageEntry.objects.filter(api_key=api_key, idempotency_key=idempotency_key).first()

