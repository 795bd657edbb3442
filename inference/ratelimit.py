"""Per-grant request rate limit (fixed one-minute windows) and the `x-ratelimit-*` headers.

The counter lives in Django's cache: the database cache in the embedded default and Redis in
production, so every web process and worker sees the same count (never process memory). Redis
`INCR` is atomic; the database cache's `incr` is a read and a write, so under heavy concurrency the
embedded default may let a few extra requests through a window — the quota reservation, not the
rate limit, is what guards money.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass

from django.core.cache import cache
from django.utils import timezone

from .errors import RateLimited

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class RateLimitState:
    limit: int
    remaining: int
    reset_seconds: int


def _month_reset_seconds(grant) -> int | None:
    if grant.quota_period != "month" or grant.period_started_at is None:
        return None
    start = grant.period_started_at
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    day = min(start.day, calendar.monthrange(year, month)[1])
    return max(0, int((start.replace(year=year, month=month, day=day) - timezone.now()).total_seconds()))


def ratelimit_headers(grant, state: RateLimitState | None) -> dict[str, str]:
    """OpenAI-style headers: requests per minute from the terms; tokens from the grant's quota."""
    headers = {
        "x-ratelimit-limit-tokens": str(grant.quota_tokens),
        "x-ratelimit-remaining-tokens": str(grant.remaining_tokens),
    }
    reset_tokens = _month_reset_seconds(grant)
    if reset_tokens is not None:
        headers["x-ratelimit-reset-tokens"] = f"{reset_tokens}s"
    if state is not None:
        headers.update({
            "x-ratelimit-limit-requests": str(state.limit),
            "x-ratelimit-remaining-requests": str(state.remaining),
            "x-ratelimit-reset-requests": f"{state.reset_seconds}s",
        })
    return headers


def ratelimit_consume(*, grant) -> RateLimitState:
    """Count one request against the grant's per-minute limit.

    Raises RateLimited (429, with the headers and retry-after) when the window is used up."""
    limit = int(grant.terms.document.get("rate_limit_per_minute") or 0)
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    reset = int((window + 1) * WINDOW_SECONDS - now) or 1
    key = f"imprint:rl:{grant.pk}:{window}"
    cache.add(key, 0, timeout=WINDOW_SECONDS * 2)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=WINDOW_SECONDS * 2)
        count = 1
    state = RateLimitState(limit=limit, remaining=max(0, limit - count), reset_seconds=reset)
    if limit and count > limit:
        headers = ratelimit_headers(grant, state) | {"retry-after": str(reset)}
        raise RateLimited(f"Rate limit of {limit} requests per minute reached; retry in {reset} s.",
                          headers=headers)
    return state
