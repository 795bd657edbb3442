"""OpenAI-style `x-ratelimit-*` headers on every generation response: requests per minute from
the grant's terms (counted by licensing's rate check), tokens from the grant's quota."""

from __future__ import annotations

from django.utils import timezone

from core.ratelimit import WindowCount


def ratelimit_headers(grant, window: WindowCount | None) -> dict[str, str]:
    """The headers for `grant`, with the request window when the request was counted."""
    headers = {
        "x-ratelimit-limit-tokens": str(grant.quota_tokens),
        "x-ratelimit-remaining-tokens": str(grant.remaining_tokens),
    }
    if grant.period_ends_at is not None:
        reset = max(0, int((grant.period_ends_at - timezone.now()).total_seconds()))
        headers["x-ratelimit-reset-tokens"] = f"{reset}s"
    if window is not None:
        headers.update({
            "x-ratelimit-limit-requests": str(window.limit),
            "x-ratelimit-remaining-requests": str(window.remaining),
            "x-ratelimit-reset-requests": f"{window.reset_seconds}s",
        })
    return headers
