"""The quota is never overspent under parallel requests (PostgreSQL in CI; SQLite runs it too)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from django.db import connection, connections
from django.db.models import Sum
from django.test import Client

from inference.models import UsageEntry
from licensing.models import Grant

from .test_generation_api import URL

PARALLEL = 50
FITS = 10


def test_quota_is_never_overspent_under_50_parallel_requests(transactional_db, make_licence):
    # Each request reserves and then spends exactly 3 prompt + 5 new tokens (greedy, ignore_eos):
    # the quota fits exactly FITS of them.
    per_request = 3 + 5
    licence = make_licence(quota={"tokens": FITS * per_request, "period": "total"})
    body = json.dumps({"model": str(licence.version.pk), "prompt": "the quick brown", "max_new_tokens": 5,
                       "temperature": 0, "ignore_eos": True})

    def request(_):
        try:
            response = Client().post(URL, data=body, content_type="application/json",
                                     headers={"Authorization": f"Bearer {licence.plaintext}"})
            return response.status_code, response.json()
        finally:
            connections.close_all()  # this thread's connection

    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        results = list(pool.map(request, range(PARALLEL)))
    statuses = sorted(status for status, _ in results)
    assert results[0][1].get("usage", {}).get("prompt_tokens", 3) == 3
    assert statuses == [200] * FITS + [402] * (PARALLEL - FITS), statuses
    grant = Grant.objects.get(pk=licence.grant.pk)
    ledger = UsageEntry.objects.filter(grant=grant).aggregate(total=Sum("total_tokens"))["total"]
    assert grant.used_tokens == ledger == FITS * per_request == grant.quota_tokens
    assert grant.reserved_tokens == 0 and UsageEntry.objects.filter(grant=grant).count() == FITS
    refused = [body["error"] for status, body in results if status == 402]
    assert all(e["type"] == "insufficient_quota" and e["remaining_tokens"] >= 0 for e in refused)
    print(f"\n{connection.vendor}: {statuses.count(200)} served, {statuses.count(402)} refused with 402")
