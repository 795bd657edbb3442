"""Licensing reads."""

from __future__ import annotations

import re
import uuid

from django.db.models import Prefetch, Q, QuerySet
from django.urls import reverse

from core.links import absolute_url
from training.model_names import model_name

from .models import ApiKey, Grant, LicenceTerms
from .terms import SCHEMA_V1, USE_LABELS, base_model_sentence, dataset_sentence

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def apikey_grants(key: ApiKey) -> QuerySet[Grant]:
    """The grants a key may use: all of its owner's, or the ones it is scoped to."""
    if key.all_grants:
        return Grant.objects.filter(customer_id=key.owner_id)
    return key.grants.filter(customer_id=key.owner_id)


# What naming a grant's model takes (training.model_names): the version, its owner and its listing.
_NAMED_VERSION = ("model_version__owner", "model_version__listing")


def grants_for_customer(user) -> QuerySet[Grant]:
    return (Grant.objects.filter(customer=user)
            .select_related("terms", *_NAMED_VERSION)
            .order_by("-created_at"))


def apikeys_for_owner(user) -> QuerySet[ApiKey]:
    grants = Grant.objects.select_related(*_NAMED_VERSION)
    return ApiKey.objects.filter(owner=user).prefetch_related(Prefetch("grants", queryset=grants)).order_by("-created_at")


def grant_certificate(grant: Grant) -> dict:
    """The downloadable licence: who may do what with which model, under which terms."""
    return {
        "licence": str(grant.pk), "licensee": f"user:{grant.customer_id}", "state": grant.state,
        "model_version": {"id": str(grant.model_version_id), "digest": grant.model_version.digest,
                          "name": grant.model_version.name, **_model_name_fields(grant.model_version)},
        "terms_sha256": grant.terms_id, "terms": grant.terms.document,
        "starts_at": grant.starts_at.isoformat() if grant.starts_at else None,
        "expires_at": grant.expires_at.isoformat() if grant.expires_at else None,
        "quota": {"tokens": grant.quota_tokens, "period": grant.quota_period},
    }


def _model_name_fields(version) -> dict:
    name = model_name(version)
    return {"title": name.title, "trainer": name.trainer, "readable_id": name.api_id}


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


def terms_rights(document: dict) -> dict:
    """Who owns an output and whose rights it rests on, from a terms document: the part of the
    licence that the stamp and every receipt carry. Terms of schema 1 stated neither ownership nor
    a rights chain (both None)."""
    return {
        "schema": document.get("schema", SCHEMA_V1), "ownership": document.get("ownership"),
        "uses": document.get("uses", []), "attribution": document.get("attribution", ""),
        "share_alike": document.get("share_alike"), "rights_chain": document.get("rights_chain"),
    }


def grant_receipt_licence(grant: Grant) -> dict:
    """The `licence` claim of a receipt: the terms by hash, and what they say about the output's
    ownership, permitted uses and upstream rights, so a verifier needs nothing but the JWKS."""
    return {"terms_id": grant.terms_id, "terms_sha256": grant.terms_id, **terms_rights(grant.terms.document)}


def terms_url(sha256: str) -> str:
    """The public, stable URL of a terms version (its id is its SHA-256)."""
    return absolute_url(reverse("licensing:terms_text", args=[sha256]))


def grant_licence_stamp(grant: Grant) -> dict:
    """What the output may be used for, who owns it, whose data it came from and how to attribute
    it (travels with every response)."""
    doc = grant.terms.document
    # The marketplace's listing of the version, when it has one (a reverse relation: licensing
    # imports nothing from the marketplace).
    listing = getattr(grant.model_version, "listing", None)
    return {
        "terms_id": grant.terms_id, "terms_sha256": grant.terms_id, "licence_id": doc.get("licence_id"),
        "url": terms_url(grant.terms_id),
        "attribution": doc.get("attribution", ""), "uses": doc.get("uses", []),
        "samples_publishable": bool(doc.get("samples", {}).get("publish")),
        "samples_resellable": bool(doc.get("samples", {}).get("resell")),
        "restrictions": doc.get("restrictions", []), "grant_id": str(grant.pk),
        "model_version": str(grant.model_version_id), "listing_id": str(listing.pk) if listing else None,
        **terms_rights(doc),
    }


# --- Rights in plain words (the verify page) -----------------------------------------------------

_OWNER_WORDS = {
    "customer": "The customer who generated it owns this text.",
    "licensed": ("The model's trainer keeps the rights in this text; the customer who generated it holds a "
                 "licence to use it."),
    "public": "Nobody owns exclusive rights in this text: it carries no restriction beyond attribution.",
}


def _uses_words(rights: dict) -> str:
    if rights.get("ownership") == "public":
        return "Anyone may use it, for any purpose, with the attribution below."
    labels = [USE_LABELS.get(u, u) for u in rights.get("uses") or []]
    if not labels:
        return "The licence names no permitted use."
    listed = labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]
    return f"It may be used for {listed}; any other use is not licensed."


def _origin_words(chain: dict | None) -> tuple[str, str]:
    if not chain:
        return "These licence terms do not record whose data the model learnt from.", ""
    return (f"It was generated by a model trained on {dataset_sentence(chain['dataset'])}, fine-tuned from "
            f"{base_model_sentence(chain['base_model'])}.", chain["base_model"].get("notice", ""))


def rights_summary(licence: dict) -> dict:
    """Who owns a text, what it may be used for and whose data it came from, in plain words, from a
    receipt's `licence` claim (or a licence stamp)."""
    ownership = licence.get("ownership")
    owner = _OWNER_WORDS.get(ownership) or (
        "These licence terms (schema imprint-terms/1) do not say who owns the text; the customer who "
        "generated it holds a licence to use it.")
    origin, notice = _origin_words(licence.get("rights_chain"))
    return {"owner": owner, "uses": _uses_words(licence), "origin": origin, "notice": notice,
            "attribution": licence.get("attribution") or "", "share_alike": licence.get("share_alike") or "",
            "ownership": ownership, "schema": licence.get("schema") or SCHEMA_V1,
            "terms_id": licence.get("terms_id") or licence.get("terms_sha256")}


def receipt_rights_summary(claims: dict) -> dict | None:
    """The plain-words summary for a receipt's claims. A receipt issued before receipts carried the
    rights names only its terms' hash: the terms behind that hash (content-addressed, so exactly
    what was signed) supply the rest. None when the terms are unknown here."""
    licence = claims.get("licence") if isinstance(claims, dict) else None
    if not isinstance(licence, dict):
        return None
    if "schema" in licence:
        return {**rights_summary(licence), "source": "claims"}
    terms = LicenceTerms.objects.filter(pk=str(licence.get("terms_id", ""))).first()
    if terms is None:
        return None
    return {**rights_summary({**licence, **terms_rights(terms.document)}), "source": "terms"}
