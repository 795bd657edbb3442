"""Pages of inference: the JWKS and the customer playground."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from core.errors import DomainError
from licensing.models import Grant

from .receipts import jwks
from .services import (
    GenerationInput,
    generation_execute,
    generation_prepare,
    generation_settle,
)


@require_GET
@cache_control(public=True, max_age=300)
def jwks_view(request):
    """Public keys of every receipt signer, active and retired (RFC 7517 JWK Set)."""
    return JsonResponse(jwks())


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
        try:
            params = _playground_params(request.POST)  # GenerationInvalid for values out of range
            prepared = generation_prepare(api_key=None, customer=request.user, params=params)
            entry = generation_settle(prepared, generation_execute(prepared))
            context["output"] = entry.response
        except DomainError as exc:
            context["error"] = exc.message
    return render(request, "inference/playground.html", context)

