"""The one window counter: counts per subject and window in the shared cache, survives a key that
expires between add and incr, and its named callers keep their limits apart."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from core import ratelimit
from core.ratelimit import Window, authorize_generation_request, authorize_report, trial_tokens


def test_it_counts_hits_per_subject_within_a_window(db):
    window = Window("test", seconds=60, limit=2)
    assert [window.hit("a").count for _ in range(3)] == [1, 2, 3]
    assert window.hit("b").count == 1
    third = window.peek("a")
    assert (third.count, third.remaining, third.exceeded) == (3, 0, True)
    assert 1 <= third.reset_seconds <= 60


def test_amounts_are_counted_and_peek_counts_nothing(db):
    budget = trial_tokens(per_day=40)
    assert budget.peek("visitor").remaining == 40
    budget.hit("visitor", 25)
    assert budget.peek("visitor").remaining == budget.peek("visitor").remaining == 15


def test_a_zero_limit_is_no_limit(db):
    state = authorize_generation_request(grant_id="g", per_minute=0)
    assert not state.exceeded and authorize_generation_request(grant_id="g", per_minute=0).count == 2


def test_named_callers_keep_their_counts_apart(db):
    for _ in range(3):
        authorize_report(ip="198.51.100.1", per_hour=2)
    assert authorize_report(ip="198.51.100.1", per_hour=2).exceeded
    assert not authorize_generation_request(grant_id="198.51.100.1", per_minute=2).exceeded
    assert authorize_report(ip=None, per_hour=2).count == 1  # an unknown address is one subject


def test_a_key_that_expires_between_add_and_incr_starts_again_at_the_amount(db, monkeypatch):
    real_incr = cache.incr

    def expired(key, delta=1):
        cache.delete(key)
        return real_incr(key, delta)  # the key is gone: the cache raises ValueError

    monkeypatch.setattr(ratelimit.cache, "incr", expired)
    assert Window("test", seconds=60, limit=5).hit("a", 3).count == 3


@pytest.mark.parametrize("seconds", [60, 3600, 86_400])
def test_windows_are_aligned_to_the_epoch(db, seconds, monkeypatch):
    monkeypatch.setattr(ratelimit.time, "time", lambda: seconds * 1000 + 1.5)
    assert Window("test", seconds=seconds, limit=1).hit("a").reset_seconds == int(seconds - 1.5)
