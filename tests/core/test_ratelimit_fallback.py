"""With the cache unreachable (Redis down) the rate limiter keeps answering from bounded local
counters, fast, and each limit still holds; it returns to the shared cache once that answers."""

from __future__ import annotations

import time

import pytest
import redis.exceptions

from core import ratelimit

pytestmark = pytest.mark.django_db


class _DeadCache:
    """A cache whose every call fails as a stopped Redis does."""

    def __init__(self):
        self.calls = 0

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            self.calls += 1
            raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

        return fail


@pytest.fixture
def dead_cache(monkeypatch):
    dead = _DeadCache()
    monkeypatch.setattr(ratelimit, "cache", dead)
    monkeypatch.setattr(ratelimit, "counters", ratelimit._Counters())
    return dead


def test_limits_still_hold_while_the_cache_is_down(dead_cache):
    counts = [ratelimit.authorize_generation_request(grant_id="g1", per_minute=3) for _ in range(5)]
    assert [c.count for c in counts] == [1, 2, 3, 4, 5]
    assert [c.exceeded for c in counts] == [False, False, False, True, True]
    assert ratelimit.authorize_generation_request(grant_id="g2", per_minute=3).count == 1  # per subject


def test_a_dead_cache_is_asked_once_then_skipped_for_a_while(dead_cache):
    started = time.monotonic()
    for _ in range(50):
        ratelimit.authorize_login_ip(ip="10.0.0.1", per_hour=100)
    assert dead_cache.calls == 1 and time.monotonic() - started < 1


def test_the_shared_cache_is_used_again_once_it_answers(dead_cache, monkeypatch):
    ratelimit.authorize_report(ip="10.0.0.2", per_hour=5)
    from django.core.cache import cache

    monkeypatch.setattr(ratelimit, "cache", cache)
    monkeypatch.setattr(ratelimit, "CACHE_RETRY_SECONDS", 0)
    ratelimit.counters.skip_cache_until = 0
    assert ratelimit.authorize_report(ip="10.0.0.2", per_hour=5).count == 1  # the shared count, from zero
    assert ratelimit.Window("report-rl", seconds=3600, limit=5).peek("10.0.0.2").count == 1


def test_local_counters_are_bounded_and_expire():
    local = ratelimit.LocalCounters(max_keys=3)
    for key in "abcd":
        local.add(key, 1, timeout=60)
    assert local.get("a") is None and local.get("d") == 1  # the oldest went first
    local.add("short", 5, timeout=0.01)
    time.sleep(0.02)
    assert local.get("short", 0) == 0
    with pytest.raises(ValueError):
        local.incr("short")
