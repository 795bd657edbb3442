"""Licensing reads."""

from __future__ import annotations

import re
import uuid

from django.conf import settings
from django.db.models import Q, QuerySet
from django.urls import reverse

from .models import ApiKey, Grant

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def apikey_grants(key: ApiKey) -> QuerySet[Grant]:
    """The grants a key may use: all of its owner's, or the ones it is scoped to."""
    if key.all_grants:
        return Grant.objects.filter(customer_id=key.owner_id)
    return key.grants.filter(customer_id=key.owner_id)


def grants_for_customer(user) -> QuerySet[Grant]:
    return (Grant.objects.filter(customer=user)
            .select_related("terms", "model_version")
            .order_by("-created_at"))


def apikeys_for_owner(user) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(owner=user).prefetch_related("grants").order_by("-created_at")


def grant_certificate(grant: Grant) -> dict:
    """The downloadable licence: who may do what with which model, under which terms."""
    return {
        "licence": str(grant.pk), "licensee": f"user:{grant.customer_id}", "state": grant.state,
        "model_version": {"id": str(grant.model_version_id), "digest": grant.model_version.digest,
                          "name": grant.model_version.name},
        "terms_sha256": grant.terms_id, "terms": grant.terms.document,
        "starts_at": grant.starts_at.isoformat() if grant.starts_at else None,
        "expires_at": grant.expires_at.isoformat() if grant.expires_at else None,
        "quota": {"tokens": grant.quota_tokens, "period": grant.quota_period},
    }


def _model_filter(model: str) -> Q | None:
    model = (model or "").strip()
    if _DIGEST.match(model):
        return Q(model_version__digest=model)
    try:
        ident = uuid.UUID(model)
    except ValueError:
        return None
    return Q(model_version_id=ident) | Q(model_version__listing__id=ident)


def grant_for_model(*, api_key: ApiKey | None, model: str, customer=None) -> Grant | None:
    """The grant for `model` (a model version id, its digest, or a listing id) among the key's
    grants (or, without a key, the customer's own: the playground): an active one when there is
    one, else the most recent (so its state can be reported). None when no grant covers it."""
    scope = apikey_grants(api_key) if api_key is not None else Grant.objects.filter(customer=customer)
    condition = _model_filter(model)
    if condition is None:
        return None
    grants = list(scope.filter(condition).select_related("model_version", "terms", "customer").order_by("-created_at"))
    active = [g for g in grants if g.state == Grant.State.ACTIVE]
    return (active or grants or [None])[0]


def grants_active_for_key(*, api_key: ApiKey) -> QuerySet[Grant]:
    """Active grants of the key, with their model versions (ordered by model version)."""
    return (apikey_grants(api_key).filter(state=Grant.State.ACTIVE)
            .select_related("model_version").order_by("model_version_id", "-created_at"))


def grant_licence_stamp(grant: Grant) -> dict:
    """What the output may be used for and how to attribute it (travels with every response)."""
    doc = grant.terms.document
    # The marketplace's listing of the version, when it has one (a reverse relation: licensing
    # imports nothing from the marketplace).
    listing = getattr(grant.model_version, "listing", None)
    return {
        "terms_id": grant.terms_id, "terms_sha256": grant.terms_id, "licence_id": doc.get("licence_id"),
        "url": settings.SITE_URL.rstrip("/") + reverse("licensing:terms_text", args=[grant.terms_id]),
        "attribution": doc.get("attribution", ""), "uses": doc.get("uses", []),
        "samples_publishable": bool(doc.get("samples", {}).get("publish")),
        "samples_resellable": bool(doc.get("samples", {}).get("resell")),
        "restrictions": doc.get("restrictions", []), "grant_id": str(grant.pk),
        "model_version": str(grant.model_version_id), "listing_id": str(listing.pk) if listing else None,
    }
