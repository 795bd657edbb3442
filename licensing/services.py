"""Licensing writes: terms, acceptances, grants (and the checks a generation must pass) and API
keys. Every licence-relevant change is recorded through `audit_append` in the same transaction.
Quota reservations are in licensing.quota."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from accounts.services import user_lock, user_require_verified_email
from audit.services import audit_append
from core.credentials import credential_hash, credential_touch
from core.ratelimit import WindowCount, authorize_generation_request
from core.secrets import watermark_secrets

from .errors import (
    ApiKeyInvalid,
    ApiKeyLimitReached,
    ApiKeyNotFound,
    ApiKeyOwnerInactive,
    GrantNotOwned,
    GrantStateError,
    LicenceInactive,
    LicenceSuspended,
    PurposeNotPermitted,
    RateLimited,
    TermsInvalid,
)
from .inheritance import (
    BaseModelInput,
    DatasetInput,
    attribution_default,
    attribution_required,
    ownership_allowed,
    terms_inherit,
)
from .models import Acceptance, ApiKey, Grant, LicenceTerms, months_later
from .terms import USES, canonical_json, terms_hash, validate_terms

API_KEY_PREFIX = "imp_"


# --- Terms -----------------------------------------------------------------------------------

@transaction.atomic
def terms_create(*, raw: dict, model_version=None, created_by=None) -> LicenceTerms:
    """Validate `raw`, apply the model version's licence inheritance (when given), and return the
    content-addressed terms row (an existing one when the same terms were stored before).

    Raises TermsInvalid (a message per bad field) or TermsNotAllowedByInputs (a reason per input)."""
    document = validate_terms(raw)
    if model_version is not None:
        dataset, base = model_version_inputs(model_version)
        document = terms_inherit(document, dataset=dataset, base=base)
    sha = terms_hash(document)
    existing = LicenceTerms.objects.filter(pk=sha).first()
    if existing is not None:
        return existing
    terms = LicenceTerms(sha256=sha, document=document, canonical=canonical_json(document),
                         uses_index=" " + " ".join(document["uses"]) + " ", created_by=created_by)
    terms.save(force_insert=True)
    audit_append(event="terms.created", actor=created_by, subject=terms, data={"sha256": sha})
    return terms


def model_version_inputs(model_version) -> tuple[DatasetInput, BaseModelInput]:
    """The version's dataset and base model as the trainer declared them (licence, rights-holders,
    attestation), for the inheritance check and the rights chain."""
    from training.base_models import BASE_MODELS

    data = model_version.job.dataset
    known_base = BASE_MODELS.get(model_version.base_model)
    return (
        DatasetInput(licence=model_version.dataset_licence, name=data.name, digest=model_version.dataset_digest,
                     rights_holders=tuple(data.rights_holders or ()), attested=data.licence_attested),
        BaseModelInput(licence=model_version.base_licence, name=model_version.base_model,
                       rights_holder=known_base.rights_holder if known_base else ""),
    )


@transaction.atomic
def acceptance_record(*, user, terms: LicenceTerms, ip_address: str | None, user_agent: str = "") -> Acceptance:
    """Record that `user` accepted exactly these terms (by hash)."""
    acceptance = Acceptance.objects.create(user=user, terms=terms, ip_address=ip_address or None,
                                           user_agent=user_agent[:300])
    audit_append(event="terms.accepted", actor=user, subject=acceptance,
                 data={"terms": terms.sha256, "ip": ip_address or ""})
    return acceptance


# --- Grants ----------------------------------------------------------------------------------

def grant_watermark_defaults(model_version=None) -> tuple[str, dict]:
    """The watermark scheme and parameters a new grant on `model_version` gets: the scheme chosen
    for that version when it was measured (inference stores it on the version), unless
    WATERMARK_SCHEME_PINNED; otherwise WATERMARK_SCHEME, and for each parameter its
    WATERMARK_SCHEMES entry names the setting (WATERMARK_<NAME>, or the name an entry's mapping
    gives), read now. Both are opaque here: the inference app validates them through the scheme's
    class (its system check refuses bad settings at start). Raises ImproperlyConfigured for a
    scheme without an entry or a parameter without its setting."""
    chosen = getattr(model_version, "watermark_scheme", "") if model_version is not None else ""
    if chosen and not settings.WATERMARK_SCHEME_PINNED:
        return chosen, dict(model_version.watermark_params or {})
    scheme = settings.WATERMARK_SCHEME
    names = settings.WATERMARK_SCHEMES.get(scheme)
    if names is None:
        raise ImproperlyConfigured(f"WATERMARK_SCHEME {scheme!r} has no entry in WATERMARK_SCHEMES.")
    # An entry lists parameters (each read from WATERMARK_<NAME>) or maps each to its setting's name,
    # for schemes whose parameter shares a name but not a meaning with another scheme's.
    setting_of = dict(names) if isinstance(names, dict) else {name: f"WATERMARK_{name.upper()}" for name in names}
    missing = [setting for setting in setting_of.values() if not hasattr(settings, setting)]
    if missing:
        raise ImproperlyConfigured(f"Watermark scheme {scheme!r} needs the setting(s) {', '.join(missing)}.")
    return scheme, {name: getattr(settings, setting) for name, setting in setting_of.items()}


@transaction.atomic
def grant_create_pending(*, customer, model_version, terms: LicenceTerms, acceptance: Acceptance | None,
                         price_paid_cents: int, currency: str, metered: bool = False) -> Grant:
    """A pending grant waiting for payment; it gives no rights until `grant_activate`. A `metered`
    grant's usage is billed per token after use."""
    quota = terms.document["quota"]
    # New grants are watermarked with the newest secret and the version's chosen watermark (or
    # today's settings); both stay on the grant, so rotating the secret, changing the settings or
    # choosing again later never orphans its texts.
    grant = Grant.objects.create(
        customer=customer, model_version=model_version, terms=terms, acceptance=acceptance,
        quota_tokens=quota["tokens"], quota_period=quota["period"],
        price_paid_cents=price_paid_cents, currency=currency, metered=metered,
        watermark_secret_version=max(watermark_secrets()),
        **dict(zip(("watermark_scheme", "watermark_params"), grant_watermark_defaults(model_version))),
    )
    audit_append(event="grant.created", actor=customer, subject=grant,
                 data={"terms": terms.sha256, "model_version": str(model_version.pk)})
    return grant


@transaction.atomic
def grant_activate(*, grant_id, reason: str = "payment succeeded", actor=None) -> tuple[Grant, bool]:
    """Make a pending grant active from now (expiry from the terms' duration). Returns
    (grant, changed): activating an already active grant changes nothing (replayed webhooks).

    Raises GrantStateError when the grant is suspended, revoked or expired."""
    grant = Grant.objects.select_for_update().select_related("terms").get(pk=grant_id)
    if grant.state == Grant.State.ACTIVE:
        return grant, False
    if grant.state != Grant.State.PENDING:
        raise GrantStateError(f"A {grant.state} grant cannot be activated.")
    now = timezone.now()
    days = grant.terms.document.get("duration_days")
    grant.state = Grant.State.ACTIVE
    grant.starts_at = grant.activated_at = grant.period_started_at = now
    grant.expires_at = now + timedelta(days=days) if days else None
    grant.state_reason = reason
    grant.save(update_fields=["state", "starts_at", "activated_at", "period_started_at",
                              "expires_at", "state_reason"])
    audit_append(event="grant.activated", actor=actor, subject=grant,
                 data={"reason": reason, "expires_at": grant.expires_at})
    return grant, True


_TRANSITIONS = {
    Grant.State.SUSPENDED: {Grant.State.ACTIVE},
    Grant.State.REVOKED: {Grant.State.PENDING, Grant.State.ACTIVE, Grant.State.SUSPENDED},
    Grant.State.ACTIVE: {Grant.State.SUSPENDED},  # reinstate
    # A licence also ends while suspended (its metered subscription was cancelled unpaid).
    Grant.State.EXPIRED: {Grant.State.ACTIVE, Grant.State.SUSPENDED},
}


def grant_state_allowed(*, current: str, target: str) -> bool:
    """Whether grant_set_state would move a grant in state `current` to `target` (staying put included)."""
    return current == target or current in _TRANSITIONS.get(target, set())


@transaction.atomic
def grant_set_state(*, grant_id, state: str, reason: str, actor=None) -> Grant:
    """Suspend, revoke, reinstate or expire a grant (refunds, disputes, compliance decisions).

    Raises GrantStateError for a transition that is not allowed (e.g. reinstating a revoked grant)."""
    grant = Grant.objects.select_for_update().get(pk=grant_id)
    if grant.state == state:
        return grant
    if not grant_state_allowed(current=grant.state, target=state):
        raise GrantStateError(f"A {grant.state} grant cannot become {state}.")
    previous, grant.state, grant.state_reason = grant.state, state, reason[:300]
    grant.save(update_fields=["state", "state_reason"])
    audit_append(event=f"grant.{state}", actor=actor, subject=grant,
                 data={"from": previous, "reason": reason})
    return grant


def grant_check(*, grant: Grant, purpose: str) -> None:
    """Raises LicenceSuspended / LicenceInactive (403) unless the grant is active, started and
    unexpired, and PurposeNotPermitted (403) unless its terms permit `purpose`."""
    now = timezone.now()
    if grant.state == Grant.State.SUSPENDED:
        raise LicenceSuspended(f"This licence is suspended: {grant.state_reason or 'under review'}.")
    if grant.state != Grant.State.ACTIVE:
        raise LicenceInactive(f"This licence is {grant.state}.")
    if grant.expires_at is not None and grant.expires_at <= now:
        raise LicenceInactive("This licence has expired.")
    if grant.starts_at is not None and grant.starts_at > now:
        raise LicenceInactive("This licence has not started yet.")
    if purpose not in grant.terms.uses:
        raise PurposeNotPermitted(
            f"The licence permits {', '.join(grant.terms.uses)}; not {purpose!r}.", param="purpose")


def grant_rate_consume(*, grant: Grant) -> WindowCount:
    """Count one request against the grant's requests per minute (from its terms; 0: no limit).

    Raises RateLimited (429, with retry-after) when this minute's window is used up."""
    limit = int(grant.terms.document.get("rate_limit_per_minute") or 0)
    window = authorize_generation_request(grant_id=str(grant.pk), per_minute=limit)
    if window.exceeded:
        raise RateLimited(f"Rate limit of {limit} requests per minute reached; retry in {window.reset_seconds} s.",
                          window=window)
    return window


# --- API keys --------------------------------------------------------------------------------

@transaction.atomic
def apikey_create(*, owner, name: str, grants: list[Grant] | None = None,
                  default_purpose: str = "personal") -> tuple[ApiKey, str]:
    """Create a key and return (key, plaintext). The plaintext exists only in this return value:
    we store its SHA-256 (the key is 256 random bits, so a plain hash is enough, unlike passwords).
    `grants=None` scopes the key to all of the owner's grants, present and future.

    At most API_KEYS_PER_ACCOUNT_MAX active keys per owner, however many requests create keys at
    once: the owner's row is locked while the keys are counted.

    Raises EmailNotVerified (accounts) until the owner confirmed their e-mail address;
    GrantNotOwned when a listed grant is not the owner's; TermsInvalid for an unknown purpose;
    ApiKeyLimitReached (409) when the owner already has the most active keys allowed."""
    user_require_verified_email(user=owner)
    name = name.strip()
    if not name or len(name) > 100:
        raise TermsInvalid({"name": "Give the key a name of at most 100 characters."})
    if default_purpose not in USES:
        raise TermsInvalid({"default_purpose": f"The purpose must be one of {', '.join(USES)}."})
    if grants is not None and any(g.customer_id != owner.pk for g in grants):
        raise GrantNotOwned("No such grant.", param="grants")
    _apikey_slot_claim(owner=owner)
    plaintext = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(owner=owner, name=name, prefix=plaintext[:12],
                                key_hash=credential_hash(plaintext), all_grants=grants is None,
                                default_purpose=default_purpose)
    if grants:
        key.grants.set(grants)
    audit_append(event="apikey.created", actor=owner, subject=key,
                 data={"prefix": key.prefix, "grants": sorted(str(g.pk) for g in grants or [])})
    return key, plaintext


def _apikey_slot_claim(*, owner) -> None:
    """Within the caller's transaction: lock the owner's row (two creations for the last slot queue
    here; SQLite's IMMEDIATE transactions serialize them anyway), then count their active keys."""
    user_lock(user=owner)
    limit = int(settings.API_KEYS_PER_ACCOUNT_MAX)
    if ApiKey.objects.filter(owner=owner, revoked_at__isnull=True).count() >= limit:
        raise ApiKeyLimitReached(f"An account may hold at most {limit} active API keys; revoke one you no "
                                 "longer use to create another.")


def apikey_authenticate(plaintext: str) -> ApiKey:
    """The active key for `plaintext` (its last-used time updated), or raises ApiKeyInvalid. A
    revoked key presented again is audited (`apikey.used_after_revocation`); a key of a deactivated
    owner raises ApiKeyOwnerInactive and is audited (`apikey.used_by_inactive_account`)."""
    if not plaintext or not plaintext.startswith(API_KEY_PREFIX):
        raise ApiKeyInvalid("Invalid API key.")
    key = ApiKey.objects.select_related("owner").filter(key_hash=credential_hash(plaintext)).first()
    if key is None:
        raise ApiKeyInvalid("Invalid API key.")
    if key.revoked_at is not None:
        # Compliance hears of it through the audit log and flags the key's owner.
        audit_append(event="apikey.used_after_revocation", subject=key, data={"prefix": key.prefix})
        raise ApiKeyInvalid("This API key has been revoked.")
    if not key.owner.is_active:
        # Deactivating an account must stop its keys too; the attempt is evidence for staff.
        audit_append(event="apikey.used_by_inactive_account", subject=key,
                     data={"prefix": key.prefix, "owner": key.owner_id})
        raise ApiKeyOwnerInactive("This API key's account has been deactivated.")
    credential_touch(key)
    return key


@transaction.atomic
def apikey_revoke(*, key_id, owner) -> ApiKey:
    """Revoke one of `owner`'s keys (idempotent). Raises ApiKeyNotFound when it is not theirs."""
    key = ApiKey.objects.select_for_update().filter(pk=key_id, owner=owner).first()
    if key is None:
        raise ApiKeyNotFound("No such API key.", param="key")
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_append(event="apikey.revoked", actor=owner, subject=key, data={"prefix": key.prefix})
    return key



# --- Periodic upkeep (Celery beat) -----------------------------------------------------------

def grants_expire_due(*, now=None) -> int:
    """Expire every active grant whose expiry has passed; one audit entry each. Returns how many.
    Each grant changes in its own short transaction (a long sweep never holds many row locks)."""
    now = now or timezone.now()
    due = list(Grant.objects.filter(state=Grant.State.ACTIVE, expires_at__lte=now).values_list("pk", flat=True))
    for grant_id in due:
        grant_set_state(grant_id=grant_id, state=Grant.State.EXPIRED, reason="licence duration ended")
    return len(due)


@transaction.atomic
def grant_quota_period_reset(*, grant_id, now=None) -> bool:
    """Start a new monthly quota period if the current one is over: used tokens go back to zero
    (tokens reserved by in-flight requests stay reserved). Returns whether a period was reset."""
    now = now or timezone.now()
    grant = Grant.objects.select_for_update().get(pk=grant_id)
    if grant.quota_period != Grant.QuotaPeriod.MONTH or grant.period_started_at is None:
        return False
    next_start = months_later(grant.period_started_at)
    if next_start > now:
        return False
    while months_later(next_start) <= now:  # a grant idle for several months skips ahead
        next_start = months_later(next_start)
    used, grant.used_tokens, grant.period_started_at = grant.used_tokens, 0, next_start
    grant.save(update_fields=["used_tokens", "period_started_at"])
    audit_append(event="grant.quota_reset", subject=grant, data={"used_in_period": used, "period_start": next_start})
    return True


def grants_reset_quota_periods_due(*, now=None) -> int:
    """Reset the monthly quota of every grant whose period ended. Returns how many were reset."""
    now = now or timezone.now()
    candidates = Grant.objects.filter(state__in=[Grant.State.ACTIVE, Grant.State.SUSPENDED],
                                      quota_period=Grant.QuotaPeriod.MONTH,
                                      period_started_at__lte=now - timedelta(days=28))
    return sum(grant_quota_period_reset(grant_id=pk, now=now) for pk in candidates.values_list("pk", flat=True))


# --- The platform's trial grants (the model page's "try it" box) ------------------------------

TRIAL_USERNAME = "imprint-trial"
TRIAL_TERMS = {
    "licence_id": "custom",
    "uses": ["personal"],
    "samples": {"publish": False, "resell": False},
    "attribution": "",
    # The real limit is per visitor (marketplace.try_it); this quota only bounds a runaway.
    "quota": {"tokens": 10_000_000, "period": "month"},
    "rate_limit_per_minute": 600,
    "duration_days": None,
    "restrictions": ["Trial output, shown on the model page for evaluation only."],
    "ownership": "licensed",
}


def trial_user():
    """The platform account that holds the trial grants (it cannot log in)."""
    from django.contrib.auth import get_user_model

    user, created = get_user_model().objects.get_or_create(
        username=TRIAL_USERNAME,
        defaults={"email": "trial@imprint.invalid", "is_customer": True, "is_active": False},
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


@transaction.atomic
def grant_trial_ensure(*, model_version) -> Grant:
    """The platform's active trial grant for a model version (personal use), created on first use.
    Generation under it is metered in the ledger like any other grant.

    Raises TermsNotAllowedByInputs if even personal use is not allowed by the model's inputs."""
    holder = trial_user()
    grant = Grant.objects.filter(customer=holder, model_version=model_version, state=Grant.State.ACTIVE).first()
    if grant is not None:
        return grant
    dataset, base = model_version_inputs(model_version)
    inputs = (dataset.licence, base.licence)
    allowed = ownership_allowed(inputs)
    # The trial keeps the trainer's rights where the inputs allow it; share-alike data needs "customer".
    raw = {**TRIAL_TERMS, "ownership": "licensed" if "licensed" in allowed or not allowed else allowed[0]}
    if attribution_required(inputs):
        raw["attribution"] = attribution_default(dataset)
    terms = terms_create(raw=raw, model_version=model_version)
    grant = grant_create_pending(customer=holder, model_version=model_version, terms=terms, acceptance=None,
                                 price_paid_cents=0, currency="usd")
    return grant_activate(grant_id=grant.pk, reason="platform trial grant")[0]
