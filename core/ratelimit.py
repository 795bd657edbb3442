"""One fixed-window counter for every limit Imprint enforces, with a named caller per use.

The counter lives in Django's cache: the database cache in the embedded default and Redis in
production, so every web process and worker sees the same count (never process memory). Redis
`INCR` is atomic; the database cache's `incr` is a read and a write, so under heavy concurrency the
embedded default may let a few extra hits through a window — quota reservations, not these
counters, are what guard money.

Windows are aligned to the epoch (a one-day window is the UTC day).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core.cache import cache


@dataclass(frozen=True)
class WindowCount:
    count: int  # hits in this window, this one included
    limit: int
    reset_seconds: int  # until the window ends (at least 1)

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    @property
    def exceeded(self) -> bool:
        return bool(self.limit) and self.count > self.limit


class Window:
    """A fixed window of `seconds` per (scope, subject), allowing `limit` units (0: unlimited)."""

    def __init__(self, scope: str, *, seconds: int, limit: int):
        self.scope, self.seconds, self.limit = scope, seconds, limit

    def _key(self, subject: str, now: float) -> str:
        return f"imprint:{self.scope}:{subject}:{int(now // self.seconds)}"

    def _reset(self, now: float) -> int:
        return int((int(now // self.seconds) + 1) * self.seconds - now) or 1

    def hit(self, subject: str, amount: int = 1) -> WindowCount:
        """Count `amount` units for `subject` in the current window and return the new count."""
        now = time.time()
        key = self._key(subject, now)
        cache.add(key, 0, timeout=self.seconds * 2)
        try:
            count = cache.incr(key, amount)
        except ValueError:  # the key expired between add and incr
            cache.set(key, amount, timeout=self.seconds * 2)
            count = amount
        return WindowCount(count=count, limit=self.limit, reset_seconds=self._reset(now))

    def peek(self, subject: str) -> WindowCount:
        """The current window's count for `subject`, counting nothing."""
        now = time.time()
        count = int(cache.get(self._key(subject, now), 0))
        return WindowCount(count=count, limit=self.limit, reset_seconds=self._reset(now))


# --- Named callers ---------------------------------------------------------------------------

def authorize_generation_request(*, grant_id: str, per_minute: int) -> WindowCount:
    """One generation request under a grant, against its terms' requests per minute."""
    return Window("rl", seconds=60, limit=per_minute).hit(grant_id)


def authorize_report(*, ip: str | None, per_hour: int) -> WindowCount:
    """One public compliance report from an address."""
    return Window("report-rl", seconds=3600, limit=per_hour).hit(ip or "unknown")


def trial_tokens(*, per_day: int) -> Window:
    """Free "try it" tokens per visitor per UTC day (peek before generating, hit with the usage)."""
    return Window("try-it", seconds=86_400, limit=per_day)
