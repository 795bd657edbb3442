"""Inference reads: which grant serves a request, licensed models of a key, ledger totals."""

from __future__ import annotations

import re
import uuid

from django.db.models import Q, QuerySet, Sum

from licensing.models import ApiKey, Grant
from licensing.selectors import apikey_grants

from .errors import ModelNotFound
from .models import MeterOutbox, UsageEntry

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def _model_filter(model: str) -> Q:
    model = (model or "").strip()
    if _DIGEST.match(model):
        return Q(model_version__digest=model)
    try:
        ident = uuid.UUID(model)
    except ValueError:
        raise ModelNotFound(f"Unknown model {model!r}: use a model id from /v1/models.", param="model") from None
    return Q(model_version_id=ident) | Q(model_version__listing__id=ident)


def grant_for_request(*, api_key: ApiKey | None, model: str, customer=None) -> Grant:
    """The grant for `model` (a model version id, its digest, or a listing id) among the key's grants
    (or, without a key, the signed-in customer's: the playground): an active one when there is one,
    else the most recent (so its state can be reported).

    Raises ModelNotFound (404) when no grant covers that model."""
    scope = apikey_grants(api_key) if api_key is not None else Grant.objects.filter(customer=customer)
    grants = (scope.filter(_model_filter(model))
              .select_related("model_version", "terms", "customer").order_by("-created_at"))
    grants = list(grants)
    if not grants:
        raise ModelNotFound(f"No licence of this key covers model {model!r}.", param="model")
    active = [g for g in grants if g.state == Grant.State.ACTIVE]
    return active[0] if active else grants[0]


def licensed_models(*, api_key: ApiKey) -> QuerySet[Grant]:
    """Active grants of the key, with their model versions (one entry per version)."""
    return (apikey_grants(api_key).filter(state=Grant.State.ACTIVE)
            .select_related("model_version").order_by("model_version_id", "-created_at"))


def usage_by_idempotency_key(*, api_key: ApiKey, idempotency_key: str) -> UsageEntry | None:
    if not idempotency_key:
        return None
    return UsageEntry.objects.filter(api_key=api_key, idempotency_key=idempotency_key).first()


def ledger_totals_by_grant() -> list[dict]:
    """Per grant: ledger tokens, tokens reported to the meter (sent outbox rows), and pending ones."""
    ledger = UsageEntry.objects.values("grant_id").annotate(tokens=Sum("total_tokens"))
    sent = dict(MeterOutbox.objects.filter(state=MeterOutbox.State.SENT)
                .values_list("usage_entry__grant_id").annotate(t=Sum("usage_entry__total_tokens")))
    metered = dict(MeterOutbox.objects.values_list("usage_entry__grant_id")
                   .annotate(t=Sum("usage_entry__total_tokens")))
    return [{"grant_id": row["grant_id"], "ledger_tokens": row["tokens"],
             "metered_tokens": metered.get(row["grant_id"], 0), "reported_tokens": sent.get(row["grant_id"], 0)}
            for row in ledger]
