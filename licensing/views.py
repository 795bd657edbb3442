"""Pages of licensing: the customer's licences (a grant, its downloadable certificate) and API
keys, and the public licence terms at their stable URLs. Thin: validate, call a service or
selector, render."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.roles import role_required
from core.errors import DomainError
from core.links import absolute_url

from .forms import ApiKeyForm
from .models import Grant, LicenceTerms
from .selectors import apikeys_for_owner, grant_certificate, grants_for_customer
from .services import apikey_create, apikey_revoke
from .terms import render_terms_text


# --- The customer's licences and keys ----------------------------------------------------

def _own_grant(request, grant_id) -> Grant:
    grant = grants_for_customer(request.user).filter(pk=grant_id).first()
    if grant is None:
        raise Http404("No such licence of yours.")
    return grant


@role_required("customer")
def grant_detail(request, grant_id):
    grant = _own_grant(request, grant_id)
    return render(request, "licensing/grant_detail.html", {
        "grant": grant, "terms_text": render_terms_text(grant.terms.document, sha256=grant.terms_id),
        "keys": [k for k in apikeys_for_owner(request.user) if k.all_grants or grant in k.grants.all()],
    })


@role_required("customer")
def grant_download(request, grant_id):
    grant = _own_grant(request, grant_id)
    response = JsonResponse(grant_certificate(grant), json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="imprint-licence-{grant.pk}.json"'
    return response


@role_required("customer")
def api_keys(request):
    """Create named keys (the key is shown once, on the response to this POST), scope, revoke."""
    grants = list(grants_for_customer(request.user).exclude(state=Grant.State.PENDING))
    form = ApiKeyForm(request.POST or None, grants=grants)
    created = None
    if request.method == "POST" and form.is_valid():
        chosen = None
        if form.cleaned_data["scope"] == "some":
            chosen = [g for g in grants if str(g.pk) in form.cleaned_data["grants"]]
        try:
            key, plaintext = apikey_create(owner=request.user, name=form.cleaned_data["name"], grants=chosen,
                                           default_purpose=form.cleaned_data["default_purpose"])
            created = {"key": key, "plaintext": plaintext}
            form = ApiKeyForm(grants=grants)
        except DomainError as exc:
            messages.error(request, exc.message)
    response = render(request, "licensing/api_keys.html", {
        "form": form, "keys": apikeys_for_owner(request.user), "created": created,
    })
    response["Cache-Control"] = "no-store"  # the page may hold a plaintext key
    return response


@role_required("customer")
@require_POST
def api_key_revoke(request, key_id):
    try:
        key = apikey_revoke(key_id=key_id, owner=request.user)
    except DomainError as exc:
        raise Http404(str(exc)) from exc
    messages.success(request, f"Key {key.name} ({key.prefix}…) revoked.")
    return redirect("licensing:api_keys")


# --- Terms ---------------------------------------------------------------------------------------

def _terms_or_404(sha256: str) -> LicenceTerms:
    terms = LicenceTerms.objects.filter(pk=sha256.lower()).first()
    if terms is None:
        raise Http404("No such licence terms.")
    return terms


def terms_json(request, sha256):
    """Machine-readable terms at a stable URL: the id is the SHA-256 of the canonical JSON, so
    the content behind this URL can never change (and anyone can check that it did not)."""
    terms = _terms_or_404(sha256)
    body = {
        "sha256": terms.sha256, "terms": terms.document, "canonical": terms.canonical,
        "text_url": absolute_url(reverse("licensing:terms_text", args=[terms.sha256]), request),
    }
    response = JsonResponse(body, json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


def terms_text(request, sha256):
    """The human-readable licence beside the JSON (plain text with ?format=txt)."""
    terms = _terms_or_404(sha256)
    text = render_terms_text(terms.document, sha256=terms.sha256)
    if request.GET.get("format") == "txt":
        return HttpResponse(text, content_type="text/plain; charset=utf-8")
    return render(request, "licensing/terms.html", {"terms": terms, "text": text})
