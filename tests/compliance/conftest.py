"""Fixtures for compliance tests: the inference suite's tiny served model and licences, plus
helpers to generate, report and decide through the HTTP API."""

from __future__ import annotations

import json

import pytest

from tests.inference.conftest import engine, make_licence, tiny_dir, tiny_stored  # noqa: F401
from tests.inference.test_generation_api import post

REPORTS = "/compliance/api/reports/"


def report(client, *, ip: str = "198.51.100.7", **body):
    """POST a public report as an anonymous visitor from `ip`."""
    body.setdefault("where_url", "https://forum.example/thread/1")
    return client.post(REPORTS, data=json.dumps(body), content_type="application/json", REMOTE_ADDR=ip)


def decide(client, case_id: int, action: str, reason: str):
    return client.post(f"/compliance/api/review/cases/{case_id}/decisions/",
                       data=json.dumps({"action": action, "reason": reason}), content_type="application/json")


def generate_text(client, licence, tokens: int = 120) -> str:
    """A watermarked text of `tokens` tokens under the licence's grant (through the real API)."""
    response = post(client, licence, max_new_tokens=tokens, ignore_eos=True, seed=11)
    assert response.status_code == 200, response.content
    return response.json()["outputs"][0]


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client
