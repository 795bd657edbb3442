"""Load: 200 generation requests from 20 concurrent HTTP clients against a tiny model served by a
real threaded server. No 5xx; every successful request wrote exactly one ledger row; every grant's
quota counter equals its ledger sum and nothing stays reserved."""

from __future__ import annotations

import json
import statistics
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db.models import Count, Sum

from inference.models import UsageEntry
from licensing.models import Grant
from tests.inference.conftest import engine, make_licence, tiny_dir, tiny_stored  # noqa: F401 - fixtures

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REQUESTS, CLIENTS = 200, 20


def _call(url: str, key: str, body: dict) -> tuple[int, float, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            status, payload = response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        status, payload = error.code, json.loads(error.read() or b"{}")
    return status, time.monotonic() - started, payload


def test_200_requests_from_20_clients_leave_consistent_books(live_server, make_licence):
    # Three customers; the third's quota runs out part-way, so refusals are part of the load.
    licences = [make_licence(), make_licence(), make_licence(quota={"tokens": 400, "period": "total"})]
    url = live_server.url + "/api/v1/generations"

    def one(i: int):
        licence = licences[i % 3]
        body = {"model": str(licence.version.pk), "prompt": f"the quick brown fox {i}", "max_new_tokens": 8 + i % 9,
                "temperature": 0.8 if i % 2 else 0, "n": 1 + i % 2, "seed": i}
        return _call(url, licence.plaintext, body)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        results = list(pool.map(one, range(REQUESTS)))
    elapsed = time.monotonic() - started
    statuses = [status for status, _, _ in results]
    assert not [s for s in statuses if s >= 500], statuses
    assert set(statuses) <= {200, 402, 429}, statuses
    ok = statuses.count(200)
    assert ok >= REQUESTS * 0.6
    assert statuses.count(402) > 0  # the small quota really ran out

    assert UsageEntry.objects.count() == ok  # one ledger row per successful request, no more
    for licence in licences:
        grant = Grant.objects.get(pk=licence.grant.pk)
        ledger = UsageEntry.objects.filter(grant=grant).aggregate(total=Sum("total_tokens"), rows=Count("id"))
        assert grant.used_tokens == (ledger["total"] or 0)
        assert grant.reserved_tokens == 0 and grant.used_tokens <= grant.quota_tokens
    latencies = sorted(latency for status, latency, _ in results if status == 200)
    print(f"\nload: {REQUESTS} requests, {CLIENTS} clients, {elapsed:.1f} s, {ok} served, "
          f"{statuses.count(402)} quota-refused, {statuses.count(429)} rate-limited; latency p50 "
          f"{statistics.median(latencies) * 1000:.0f} ms, p95 {latencies[int(0.95 * len(latencies))] * 1000:.0f} ms")
