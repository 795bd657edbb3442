"""One fixed-window counter for every limit Imprint enforces, with a named caller per use.

The counter lives in Django's cache: the database cache in the embedded default and Redis in
production, so every web process and worker sees the same count (never process memory). Redis
`INCR` is atomic; the database cache's `incr` is a read and a write, so under heavy concurrency the
embedded default may let a few extra hits through a window — quota reservations, not these
counters, are what guard money.

Windows are aligned to the epoch (a one-day window is the UTC day).

When the cache cannot be reached (Redis down), the counters fall back to this process's memory
(`LocalCounters`, bounded to LOCAL_KEYS keys) instead of failing the request: answering goes on,
and each limit still holds per process, so a client gets at most `limit × web processes` through
a window during the outage. That was chosen over refusing everything with 503 because these
counters guard against abuse, not money (quota reservations in the database do), and a Redis
outage should not take the pages, the log-in and the API down with it. After a failed call the
cache is skipped for CACHE_RETRY_SECONDS, so a dead Redis costs one connect timeout per process
every few seconds, not one per request.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from django.core.cache import cache
from django.db import transaction

from .outages import is_outage

logger = logging.getLogger(__name__)

CACHE_RETRY_SECONDS = 5.0
LOCAL_KEYS = 10_000


class LocalCounters:
    """The subset of the cache API the counters use (add, incr, touch, get), in process memory,
    with expiry; the least recently used keys go first past LOCAL_KEYS."""

    def __init__(self, max_keys: int = LOCAL_KEYS):
        self.max_keys = max_keys
        self.values: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self.lock = threading.Lock()

    def _live(self, key: str):
        item = self.values.get(key)
        if item is None or item[1] < time.monotonic():
            self.values.pop(key, None)
            return None
        self.values.move_to_end(key)
        return item

    def _store(self, key: str, value: int, timeout: float) -> None:
        self.values[key] = (value, time.monotonic() + timeout)
        self.values.move_to_end(key)
        while len(self.values) > self.max_keys:
            self.values.popitem(last=False)

    def add(self, key: str, value: int, timeout: float = 300) -> bool:
        with self.lock:
            if self._live(key) is not None:
                return False
            self._store(key, value, timeout)
            return True

    def incr(self, key: str, delta: int = 1) -> int:
        with self.lock:
            item = self._live(key)
            if item is None:
                raise ValueError(f"Key {key!r} not found.")
            self.values[key] = (item[0] + delta, item[1])
            return item[0] + delta

    def touch(self, key: str, timeout: float = 300) -> bool:
        with self.lock:
            item = self._live(key)
            if item is not None:
                self._store(key, item[0], timeout)
            return item is not None

    def set(self, key: str, value: int, timeout: float = 300) -> None:
        with self.lock:
            self._store(key, value, timeout)

    def get(self, key: str, default=None):
        with self.lock:
            item = self._live(key)
            return default if item is None else item[0]


class _Counters:
    """The shared cache while it answers, this process's LocalCounters while it does not."""

    def __init__(self):
        self.local = LocalCounters()
        self.skip_cache_until = 0.0

    def __getattr__(self, operation: str):
        def call(*args, **kwargs):
            if time.monotonic() >= self.skip_cache_until:
                try:
                    return getattr(cache, operation)(*args, **kwargs)
                except Exception as exc:
                    if not is_outage(exc):
                        raise
                    self.skip_cache_until = time.monotonic() + CACHE_RETRY_SECONDS
                    logger.warning("the cache is unreachable (%s); counting in this process for %.0f s",
                                   exc, CACHE_RETRY_SECONDS)
            return getattr(self.local, operation)(*args, **kwargs)

        return call


counters = _Counters()


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
    """A fixed window of `seconds` per (scope, subject), allowing `limit` units (0: unlimited).

    `exact` counts each hit in its own transaction: the database cache's `incr` is a read then a
    write, and under SQLite's IMMEDIATE transactions the write lock is taken first, so parallel hits
    cannot read the same count (Redis INCR is atomic anyway). For counts that are a budget or that
    guard against guessing, not a rough limit."""

    def __init__(self, scope: str, *, seconds: int, limit: int, exact: bool = False):
        self.scope, self.seconds, self.limit, self.exact = scope, seconds, limit, exact

    def _key(self, subject: str, now: float) -> str:
        return f"imprint:{self.scope}:{subject}:{int(now // self.seconds)}"

    def _reset(self, now: float) -> int:
        return int((int(now // self.seconds) + 1) * self.seconds - now) or 1

    def hit(self, subject: str, amount: int = 1) -> WindowCount:
        """Count `amount` units for `subject` in the current window and return the new count."""
        if self.exact:
            with transaction.atomic():
                return self._hit(subject, amount)
        return self._hit(subject, amount)

    def _hit(self, subject: str, amount: int) -> WindowCount:
        now = time.time()
        key = self._key(subject, now)
        counters.add(key, 0, timeout=self.seconds * 2)
        try:
            count = counters.incr(key, amount)
        except ValueError:  # the key expired between add and incr
            counters.set(key, amount, timeout=self.seconds * 2)
            count = amount
        # The database cache's incr stores the key again with the default timeout (300 s): keep
        # the window's, or a longer window would forget its count early.
        counters.touch(key, self.seconds * 2)
        return WindowCount(count=count, limit=self.limit, reset_seconds=self._reset(now))

    def peek(self, subject: str) -> WindowCount:
        """The current window's count for `subject`, counting nothing."""
        now = time.time()
        count = int(counters.get(self._key(subject, now), 0))
        return WindowCount(count=count, limit=self.limit, reset_seconds=self._reset(now))


# --- Named callers ---------------------------------------------------------------------------

def authorize_generation_request(*, grant_id: str, per_minute: int) -> WindowCount:
    """One generation request under a grant, against its terms' requests per minute."""
    return Window("rl", seconds=60, limit=per_minute).hit(grant_id)


def authorize_report(*, ip: str | None, per_hour: int) -> WindowCount:
    """One public compliance report from an address."""
    return Window("report-rl", seconds=3600, limit=per_hour).hit(ip or "unknown")


def trial_tokens(*, per_day: int) -> Window:
    """Free "try it" tokens per visitor per UTC day (reserved before generating, see below)."""
    return Window("try-it", seconds=86_400, limit=per_day, exact=True)


def _serialized(work):
    """Run `work` as one transaction (see Window's `exact`)."""
    with transaction.atomic():
        return work()


def authorize_verification(*, subject: str, per_hour: int) -> WindowCount:
    """One public verification by a caller (`ip:…` or `key:…`), against its hourly limit."""
    return Window("verify-rl", seconds=3600, limit=per_hour).hit(subject or "unknown")


def trial_tokens_reserve(*, visitor: str, tokens: int, per_day: int) -> int:
    """Reserve up to `tokens` of a visitor's free "try it" tokens today, before generating; returns
    how many were granted (0 to `tokens`), never more than the day's budget in total however many
    requests run at once. Give back what was not used with `trial_tokens_release`."""
    count = trial_tokens(per_day=per_day).hit(visitor, tokens).count
    over = max(0, count - per_day) if per_day else 0
    granted = max(0, tokens - over)
    trial_tokens_release(visitor=visitor, tokens=tokens - granted, per_day=per_day)
    return granted


def trial_tokens_release(*, visitor: str, tokens: int, per_day: int) -> None:
    """Give back reserved "try it" tokens that were not used (a negative hit)."""
    if tokens > 0:
        trial_tokens(per_day=per_day).hit(visitor, -tokens)


def trial_slot_acquire(*, limit: int, ttl: int = 600) -> bool:
    """Take one of the `limit` slots of "try it" generations running at once, across every process
    (0: unlimited). False when all are taken. Release it with `trial_slot_release` when done; a slot
    a crashed process never gave back lapses with the counter after `ttl` seconds."""
    key = "imprint:try-it-inflight"

    def take():
        counters.add(key, 0, timeout=ttl)
        count = counters.incr(key)
        if limit and count > limit:
            counters.incr(key, -1)
            return False
        counters.touch(key, ttl)
        return True

    try:
        return _serialized(take)
    except ValueError:  # the counter lapsed between add and incr: try once more
        return _serialized(take)


def trial_slot_release() -> None:
    """Give back a slot taken with `trial_slot_acquire` (never below zero)."""
    key = "imprint:try-it-inflight"

    def give():
        if int(counters.get(key, 0)) > 0:
            counters.incr(key, -1)

    try:
        _serialized(give)
    except ValueError:  # lapsed meanwhile: nothing to give back
        pass


# Account actions. Hits are serialized so that guesses sent in parallel are counted exactly.

def _account_subject(name: str) -> str:
    """A username or e-mail as typed, case-folded and hashed: it is the client's input, of any
    length and characters, and a cache key must be short and plain."""
    return hashlib.sha256(name.strip().lower().encode()).hexdigest()[:32]


def authorize_login_account(*, username: str, per_hour: int) -> WindowCount:
    """One log-in attempt naming an account (its username, case-folded), however many addresses
    the guesses come from."""
    return Window("login-account", seconds=3600, limit=per_hour, exact=True).hit(_account_subject(username))


def authorize_login_ip(*, ip: str | None, per_hour: int) -> WindowCount:
    """One log-in attempt from a client address, whichever accounts it names."""
    return Window("login-ip", seconds=3600, limit=per_hour, exact=True).hit(ip or "unknown")


def authorize_signup_ip(*, ip: str | None, per_hour: int) -> WindowCount:
    """One sign-up attempt from a client address."""
    return Window("signup-ip", seconds=3600, limit=per_hour, exact=True).hit(ip or "unknown")


def authorize_account_email(*, email: str, per_hour: int) -> WindowCount:
    """One account e-mail (verification or password reset) asked for an address, case-folded."""
    return Window("account-email", seconds=3600, limit=per_hour, exact=True).hit(_account_subject(email))


def authorize_account_email_ip(*, ip: str | None, per_hour: int) -> WindowCount:
    """One request for an account e-mail (password reset, verification again) from a client address."""
    return Window("account-email-ip", seconds=3600, limit=per_hour, exact=True).hit(ip or "unknown")
