"""Pages of inference: the JWKS and the customer playground."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from core.errors import DomainError
from licensing.models import Grant
from licensing.selectors import rights_summary

from .errors import ContextLengthExceeded
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


# The playground's own ceiling on new tokens (the API allows more); a model with a smaller context
# lowers it to what fits beside a prompt of at least one token.
PLAYGROUND_MAX_NEW_TOKENS = 512


def _max_new_tokens(n_positions: int) -> int:
    return max(1, min(PLAYGROUND_MAX_NEW_TOKENS, n_positions - 1))


def _context_words(exc: ContextLengthExceeded) -> str:
    """The refusal of a prompt plus output longer than the model's context, in words."""
    n, prompt, asked = (exc.extra[k] for k in ("n_positions", "prompt_tokens", "max_new_tokens"))
    room = n - prompt
    fits = (f"so at most {room} new token{'s' if room != 1 else ''} fit" if room > 0
            else "so the prompt alone fills it: shorten the prompt")
    return (f"Too long for this model: it reads and writes at most {n} tokens in all, prompt included. "
            f"Your prompt is {prompt} tokens, {fits} (you asked for {asked}).")


def _playground_result(entry_response: dict, prompt: str, max_new_tokens: int) -> dict:
    """The response with what the page says about it: the prompt beside each output, a note
    when an output stopped at end of text early, and the licence's rights in words."""
    prompt_tokens = entry_response["usage"]["prompt_tokens"]
    outputs = [{**o, "stopped_early": o.get("finish_reason") == "stop" and o.get("tokens", 0) < max_new_tokens}
               for o in entry_response["outputs"]]
    return {**entry_response, "outputs": outputs, "prompt": prompt, "prompt_tokens": prompt_tokens,
            "max_new_tokens": max_new_tokens,
            "rights": rights_summary(entry_response["licence"])}


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
    # Each model's own ceiling, for the max-tokens field to follow the chosen model.
    limits = {str(g.model_version_id): {"max_new_tokens": _max_new_tokens(g.model_version.n_positions),
                                        "context": g.model_version.n_positions} for g in grants}
    chosen = limits.get(request.POST.get("model", "")) or next(iter(limits.values()), None)
    context = {"grants": grants, "form": request.POST or {}, "output": None, "error": None,
               "limits": limits, "limit": chosen}
    if request.method == "POST":
        try:
            params = _playground_params(request.POST)  # GenerationInvalid for values out of range
            prepared = generation_prepare(api_key=None, customer=request.user, params=params)
            entry = generation_settle(prepared, generation_execute(prepared))
            context["output"] = _playground_result(entry.response, params.prompt, params.sampling.max_new_tokens)
        except ContextLengthExceeded as exc:
            context["error"] = _context_words(exc)
        except DomainError as exc:
            context["error"] = exc.message
    return render(request, "inference/playground.html", context)

