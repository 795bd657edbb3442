"""Licensing reads."""

from django.db.models import QuerySet

from .models import ApiKey, Grant


def apikey_grants(key: ApiKey) -> QuerySet[Grant]:
    """The grants a key may use: all of its owner's, or the ones it is scoped to."""
    if key.all_grants:
        return Grant.objects.filter(customer_id=key.owner_id)
    return key.grants.filter(customer_id=key.owner_id)


def grants_for_customer(user) -> QuerySet[Grant]:
    return (Grant.objects.filter(customer=user)
            .select_related("terms", "model_version", "order", "order__offer__listing")
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
