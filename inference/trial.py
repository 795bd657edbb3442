"""The listing's "try it" box: generation under a trial grant owned by the platform.

Each listed model version gets one platform-owned grant (personal use only, samples not publishable),
so a trial runs the same metered path as a customer's request — checks, reservation, watermark,
receipt, ledger row — and is visible in the ledger under that grant. Each visitor (session, or IP
when there is none) may spend TRIAL_TOKENS_PER_DAY tokens per listing per day, counted in the
shared cache (never process memory).

Settings read here (optional): TRIAL_TOKENS_PER_DAY (default 300), TRIAL_MAX_NEW_TOKENS (48).
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from rest_framework import status

from licensing.models import Grant
from licensing.services import grant_activate, grant_create_pending, terms_create

from .errors import InferenceError
from .services import (
    GenerationInput,
    generation_execute,
    generation_prepare,
    generation_settle,
)

PLATFORM_USERNAME = "imprint-platform"


class TrialLimitReached(InferenceError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    error_type = "rate_limit_error"
    code = "trial_limit_reached"


def _tokens_per_day() -> int:
    return int(getattr(settings, "TRIAL_TOKENS_PER_DAY", 300))


def trial_max_new_tokens() -> int:
    return int(getattr(settings, "TRIAL_MAX_NEW_TOKENS", 48))


def platform_user():
    """The platform's own account, which holds the trial grants (cannot log in)."""
    from accounts.models import User

    user, created = User.objects.get_or_create(
        username=PLATFORM_USERNAME,
        defaults={"email": "platform@imprint.invalid", "is_customer": False, "is_trainer": False})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


@transaction.atomic
def trial_grant_ensure(*, listing) -> Grant:
    """The active platform-owned trial grant of the listing's model version, created on first use.
    Raises TermsNotAllowedByInputs when the model's inputs forbid even personal use."""
    owner = platform_user()
    version = listing.model_version
    grant = Grant.objects.filter(customer=owner, model_version=version, state=Grant.State.ACTIVE).first()
    if grant is not None:
        return grant
    terms = terms_create(raw={
        "licence_id": "imprint-trial", "uses": ["personal"], "samples": {"publish": False, "resell": False},
        "attribution": f"Trial output of {listing.title} on Imprint",
        "quota": {"tokens": 10**12, "period": "total"}, "rate_limit_per_minute": 600,
        "duration_days": 36_500, "restrictions": ["Trial output: personal evaluation only."],
    }, model_version=version)
    pending = grant_create_pending(customer=owner, model_version=version, terms=terms, acceptance=None,
                                   price_paid_cents=0, currency="usd")
    grant, _changed = grant_activate(grant_id=pending.pk, reason="platform trial grant")
    return grant


def _visitor_budget_key(listing, visitor: str) -> str:
    digest = hashlib.sha256(visitor.encode()).hexdigest()[:24]
    return f"imprint:trial:{listing.pk}:{digest}:{timezone.now():%Y-%m-%d}"


def trial_remaining(*, listing, visitor: str) -> int:
    return max(0, _tokens_per_day() - int(cache.get(_visitor_budget_key(listing, visitor)) or 0))


def trial_generate(*, listing, visitor: str, prompt: str) -> dict:
    """Generate a short sample for a visitor; returns the response body (text, receipt, stamp).

    Raises TrialLimitReached (429) past the visitor's daily tokens, and every error of the metered
    path (400 for an empty or too long prompt, ...)."""
    grant = trial_grant_ensure(listing=listing)
    params = GenerationInput(model=str(grant.model_version_id), prompt=prompt,
                             max_new_tokens=trial_max_new_tokens(), temperature=0.8, top_k=50, purpose="personal")
    prepared = generation_prepare(api_key=None, customer=grant.customer, params=params)
    key = _visitor_budget_key(listing, visitor)
    cache.add(key, 0, timeout=60 * 60 * 24)
    if cache.incr(key, prepared.reserved) > _tokens_per_day():
        cache.decr(key, prepared.reserved)
        from .services import quota_release

        quota_release(request_id=prepared.request_id)
        raise TrialLimitReached(f"The free trial allows {_tokens_per_day()} tokens a day; buy a licence for more.")
    try:
        entry = generation_settle(prepared, generation_execute(prepared))
    except BaseException:
        cache.decr(key, prepared.reserved)  # nothing generated: nothing counted
        raise
    unused = prepared.reserved - entry.total_tokens
    if unused > 0:  # the visitor is charged what was generated, as a customer would be
        cache.decr(key, unused)
    return entry.response
