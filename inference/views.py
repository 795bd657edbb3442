"""Pages of inference: the JWKS, the public verify page, terms pages and the customer playground."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from config.api_errors import ApiError
from licensing.compliance import flags_from_verification
from licensing.models import Grant, LicenceTerms
from licensing.terms import render_terms_text

from .receipts import jwks
from .services import (
    GenerationInput,
    generation_execute,
    generation_prepare,
    generation_settle,
)
from .verification import MIN_TOKENS, verification_run


@require_GET
@cache_control(public=True, max_age=300)
def jwks_view(request):
    """Public keys of every receipt signer, active and retired (RFC 7517 JWK Set)."""
    return JsonResponse(jwks())


def verify_page(request):
    """Public: paste a text (and its receipt) to see where it came from."""
    result, form = None, {"text": "", "receipt": "", "prompt": ""}
    if request.method == "POST":
        form = {k: request.POST.get(k, "") for k in form}
        if form["text"]:
            result = verification_run(text=form["text"], receipt=form["receipt"].strip() or None,
                                      prompt=form["prompt"] or None)
            flags_from_verification(result=result, text=form["text"], receipt=form["receipt"].strip(),
                                    source="verify_page")
    # "receipt_valid" reads "RECEIPT VALID" on the page (cutting the underscore glued the words).
    verdict_label = result["verdict"].replace("_", " ") if result else ""
    return render(request, "inference/verify.html", {"result": result, "form": form, "min_tokens": MIN_TOKENS,
                                                     "verdict_label": verdict_label})


@require_GET
def terms_page(request, sha256: str):
    terms = LicenceTerms.objects.filter(pk=sha256).first()
    if terms is None:
        raise Http404("No such licence terms.")
    return render(request, "inference/terms.html",
                  {"terms": terms, "text": render_terms_text(terms.document, sha256=terms.sha256)})


def _playground_params(post) -> GenerationInput:
    def number(name, cast, default):
        try:
            return cast(post.get(name, default))
        except (TypeError, ValueError):
            return cast(default)

    return GenerationInput(model=post.get("model", ""), prompt=post.get("prompt", ""),
                           max_new_tokens=number("max_new_tokens", int, 48),
                           temperature=number("temperature", float, 1.0), top_k=number("top_k", int, 0),
                           top_p=number("top_p", float, 1.0), purpose=post.get("purpose") or None)


@login_required
def playground(request):
    """Generate under one of the customer's licences and see the output with its stamp."""
    grants = Grant.objects.filter(customer=request.user, state=Grant.State.ACTIVE).select_related(
        "model_version", "terms")
    context = {"grants": grants, "form": request.POST or {}, "output": None, "error": None}
    if request.method == "POST":
        params = _playground_params(request.POST)
        try:
            prepared = generation_prepare(api_key=None, customer=request.user, params=params)
            entry = generation_settle(prepared, generation_execute(prepared))
            context["output"] = entry.response
        except ApiError as exc:
            context["error"] = exc.message
    return render(request, "inference/playground.html", context)

