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
