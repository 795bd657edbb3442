"""The model page's "try it" box: a few free tokens per visitor per day, generated under the
platform's trial grant for the model version, so they are metered, watermarked and receipted
like any other generation.

The per-visitor budget is a shared window counter (core.ratelimit.trial_tokens), keyed by the
visitor's address (core.http.client_ip) and the UTC day: clearing cookies does not reset it. A
request reserves the most it may use (its prompt's tokens plus the longest continuation) before
generating and gives back what it did not use, so parallel requests never spend more than the
budget. At most TRY_IT_MAX_CONCURRENT trial generations run at once across all visitors, so free
use cannot fill the engine's queue that paying customers share.
"""

from __future__ import annotations

from django.conf import settings

from core.ratelimit import (
    trial_slot_acquire,
    trial_slot_release,
    trial_tokens,
    trial_tokens_release,
    trial_tokens_reserve,
)
from inference.modelstore import ModelIntegrityError, tokenizer_for
from inference.services import (
    GenerationInput,
    generation_execute,
    generation_prepare,
    generation_settle,
)
from licensing.services import grant_trial_ensure

from .errors import TryItBusy, TryItInvalid, TryItLimitReached
from .models import Listing

MAX_NEW_TOKENS = 32
MIN_NEW_TOKENS = 4
MAX_PROMPT_CHARS = 300
BUSY_RETRY_SECONDS = 5


def tokens_per_visitor_per_day() -> int:
    return settings.TRY_IT_TOKENS_PER_VISITOR_PER_DAY


def max_concurrent() -> int:
    return settings.TRY_IT_MAX_CONCURRENT


def try_it_remaining(*, visitor: str) -> int:
    return trial_tokens(per_day=tokens_per_visitor_per_day()).peek(visitor).remaining


def _prompt_tokens(listing: Listing, prompt: str) -> int:
    try:
        return len(tokenizer_for(listing.model_version)(prompt)["input_ids"])
    except (OSError, ModelIntegrityError):
        return 0  # generation_prepare reports the model as unavailable


def try_it_generate(*, listing: Listing, prompt: str, visitor: str) -> dict:
    """Generate a short continuation of `prompt` with the listing's model for an anonymous visitor.
    Returns {"text", "usage", "remaining", "receipt"}.

    Raises TryItInvalid, TryItBusy (all trial slots in use), TryItLimitReached, and the inference
    errors (ModelUnavailable, ...)."""
    prompt = (prompt or "").strip()
    if not prompt or len(prompt) > MAX_PROMPT_CHARS:
        raise TryItInvalid(f"Write a prompt of 1 to {MAX_PROMPT_CHARS} characters.", param="prompt")
    if not trial_slot_acquire(limit=max_concurrent()):
        raise TryItBusy("The free trial is busy right now; try again in a few seconds.",
                        headers={"Retry-After": str(BUSY_RETRY_SECONDS)})
    try:
        entry = _generate_within_budget(listing=listing, prompt=prompt, visitor=visitor)
    finally:
        trial_slot_release()
    output = (entry.response.get("outputs") or [{}])[0]
    return {"text": output.get("text", ""), "usage": entry.response.get("usage", {}),
            "remaining": try_it_remaining(visitor=visitor), "receipt": output.get("receipt")}


def _generate_within_budget(*, listing: Listing, prompt: str, visitor: str):
    per_day = tokens_per_visitor_per_day()
    prompt_tokens = _prompt_tokens(listing, prompt)
    granted = trial_tokens_reserve(visitor=visitor, tokens=prompt_tokens + MAX_NEW_TOKENS, per_day=per_day)
    if granted < prompt_tokens + MIN_NEW_TOKENS:
        trial_tokens_release(visitor=visitor, tokens=granted, per_day=per_day)
        raise TryItLimitReached("You have used today's free tokens for trying models. Buy a licence to go on.")
    try:
        grant = grant_trial_ensure(model_version=listing.model_version)
        params = GenerationInput(model=str(listing.model_version_id), prompt=prompt, purpose="personal",
                                 max_new_tokens=granted - prompt_tokens)
        prepared = generation_prepare(api_key=None, customer=grant.customer, params=params)
        entry = generation_settle(prepared, generation_execute(prepared))
    except BaseException:
        trial_tokens_release(visitor=visitor, tokens=granted, per_day=per_day)
        raise
    unused = granted - entry.total_tokens
    if unused >= 0:
        trial_tokens_release(visitor=visitor, tokens=unused, per_day=per_day)
    else:  # counted differently than foreseen: record what was used, up to the budget
        trial_tokens_reserve(visitor=visitor, tokens=-unused, per_day=per_day)
    return entry
