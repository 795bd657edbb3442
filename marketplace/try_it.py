"""The model page's "try it" box: a few free tokens per visitor per day, generated under the
platform's trial grant for the model version, so they are metered, watermarked and receipted
like any other generation.

The per-visitor budget is a shared window counter (core.ratelimit.trial_tokens), keyed by the
visitor's IP address and the UTC day: clearing cookies does not reset it. A request asks for at
most what is left of the budget, so a visitor overshoots it by at most the length of one prompt.
"""

from __future__ import annotations

from django.conf import settings

from core.ratelimit import trial_tokens
from inference.services import GenerationInput, generation_execute, generation_prepare, generation_settle
from licensing.services import grant_trial_ensure

from .errors import TryItInvalid, TryItLimitReached
from .models import Listing

MAX_NEW_TOKENS = 32
MIN_NEW_TOKENS = 4
MAX_PROMPT_CHARS = 300


def tokens_per_visitor_per_day() -> int:
    return int(getattr(settings, "TRY_IT_TOKENS_PER_VISITOR_PER_DAY", 300))


def try_it_remaining(*, visitor: str) -> int:
    return trial_tokens(per_day=tokens_per_visitor_per_day()).peek(visitor).remaining


def try_it_generate(*, listing: Listing, prompt: str, visitor: str) -> dict:
    """Generate a short continuation of `prompt` with the listing's model for an anonymous visitor.
    Returns {"text", "usage", "remaining", "receipt"}.

    Raises TryItInvalid, TryItLimitReached, and the inference errors (ModelUnavailable, ...)."""
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
    trial_tokens(per_day=tokens_per_visitor_per_day()).hit(visitor, entry.total_tokens)
    output = (entry.response.get("outputs") or [{}])[0]
    return {"text": output.get("text", ""), "usage": entry.response.get("usage", {}),
            "remaining": try_it_remaining(visitor=visitor), "receipt": output.get("receipt")}
