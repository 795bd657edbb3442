"""The model page's "try it" box: a few free tokens per visitor per day, generated under the
platform's trial grant for the model version, so they are metered, watermarked and receipted
like any other generation.

The per-visitor budget is a counter in the shared cache (Redis in production, the database cache
in the embedded default), keyed by the visitor's IP address and the day: clearing cookies does not
reset it. A request asks for at most what is left of the budget, so a visitor overshoots it by at
most the length of one prompt.
"""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from config.api_errors import ApiError
from licensing.services import grant_trial_ensure

from .models import Listing

MAX_NEW_TOKENS = 32
MIN_NEW_TOKENS = 4
MAX_PROMPT_CHARS = 300


class TryItLimitReached(ApiError):
    status_code = 429
    error_type = "rate_limit_error"
    code = "try_it_limit"


class TryItInvalid(ApiError):
    code = "invalid_prompt"


def tokens_per_visitor_per_day() -> int:
    return int(getattr(settings, "TRY_IT_TOKENS_PER_VISITOR_PER_DAY", 300))


def _budget_key(visitor: str) -> str:
    return f"try-it:{timezone.now():%Y-%m-%d}:{visitor}"


def try_it_remaining(*, visitor: str) -> int:
    return max(0, tokens_per_visitor_per_day() - int(cache.get(_budget_key(visitor), 0)))


def try_it_generate(*, listing: Listing, prompt: str, visitor: str) -> dict:
    """Generate a short continuation of `prompt` with the listing's model for an anonymous visitor.
    Returns {"text", "usage", "remaining", "receipt"}.

    Raises TryItInvalid, TryItLimitReached, and the inference errors (ModelUnavailable, ...)."""
    from inference.services import (
        GenerationInput,
        generation_execute,
        generation_prepare,
        generation_settle,
    )

    prompt = (prompt or "").strip()
    if not prompt or len(prompt) > MAX_PROMPT_CHARS:
        raise TryItInvalid(f"Write a prompt of 1 to {MAX_PROMPT_CHARS} characters.", param="prompt")
    remaining = try_it_remaining(visitor=visitor)
    if remaining < MIN_NEW_TOKENS:
        raise TryItLimitReached("You have used today's free tokens for trying models. Buy a licence to go on.")
    grant = grant_trial_ensure(model_version=listing.model_version)
    params = GenerationInput(model=str(listing.model_version_id), prompt=prompt, purpose="personal",
                             max_new_tokens=min(MAX_NEW_TOKENS, remaining))
    prepared = generation_prepare(api_key=None, customer=grant.customer, params=params)
    entry = generation_settle(prepared, generation_execute(prepared))
    key = _budget_key(visitor)
    cache.add(key, 0, timeout=26 * 3600)
    cache.incr(key, entry.total_tokens)
    output = (entry.response.get("outputs") or [{}])[0]
    return {"text": output.get("text", ""), "usage": entry.response.get("usage", {}),
            "remaining": try_it_remaining(visitor=visitor), "receipt": output.get("receipt")}
