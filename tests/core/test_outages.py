"""An outage of the database, the cache or the broker is answered 503 with Retry-After — JSON in the
API's error shape on API paths, a plain page elsewhere, never Django's 500 page — and charges wait
one out (core.outages.retry_through_outage)."""

from __future__ import annotations

import pytest
import redis.exceptions
from django.db import IntegrityError, OperationalError
from django.urls import path
from rest_framework.views import APIView

from core.outages import is_outage, retry_through_outage


def _database_down(request):
    raise OperationalError('connection to server at "127.0.0.1", port 5432 failed: Connection refused')


class _CacheDownApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request):
        raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


def _bug(request):
    raise ZeroDivisionError("a bug, not an outage")


urlpatterns = [
    path("api/v1/down/", _database_down),
    path("api/v1/cache-down/", _CacheDownApi.as_view()),
    path("studio/down/", _database_down),
    path("api/v1/bug/", _bug),
]
handler500 = "core.outages.server_error"


@pytest.fixture
def outage_urls(settings):
    settings.ROOT_URLCONF = __name__
    settings.DEBUG = False


@pytest.fixture
def client(client):
    client.raise_request_exception = False
    return client


def test_a_database_outage_on_an_api_path_is_a_json_503_with_retry_after(client, outage_urls, settings):
    settings.OUTAGE_RETRY_AFTER_SECONDS = 7
    response = client.get("/api/v1/down/")
    assert response.status_code == 503 and response["Retry-After"] == "7"
    error = response.json()["error"]
    assert error["code"] == "service_unavailable" and error["type"] == "api_error"
    assert "database is unreachable" in error["message"] and "Connection refused" not in error["message"]


def test_a_cache_outage_in_a_drf_view_is_a_503_in_the_error_shape(client, outage_urls):
    response = client.get("/api/v1/cache-down/")
    assert response.status_code == 503 and int(response["Retry-After"]) >= 1
    assert "cache is unreachable" in response.json()["error"]["message"]


def test_a_page_gets_a_plain_503_page_without_a_stack(client, outage_urls):
    response = client.get("/studio/down/")
    assert response.status_code == 503 and "Retry-After" in response
    text = response.content.decode()
    assert "Back in a moment" in text and "Traceback" not in text and "OperationalError" not in text


def test_a_bug_on_an_api_path_is_a_json_500_not_an_html_page(client, outage_urls):
    response = client.get("/api/v1/bug/")
    assert response.status_code == 500 and response.json()["error"]["code"] == "server_error"


def test_only_connection_failures_count_as_outages():
    assert is_outage(OperationalError("server closed the connection unexpectedly"))
    assert is_outage(redis.exceptions.TimeoutError("Timeout reading from socket"))
    wrapped = RuntimeError("settling failed")
    wrapped.__cause__ = redis.exceptions.ConnectionError("refused")
    assert is_outage(wrapped)
    assert not is_outage(IntegrityError("duplicate key"))
    assert not is_outage(ValueError("bad input"))


def test_work_is_retried_through_an_outage_and_other_errors_are_not():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("the database system is starting up")
        return "charged"

    assert retry_through_outage(flaky, what="a charge", budget_seconds=5, first_pause=0.01) == "charged"
    assert len(calls) == 3

    def broken():
        calls.append(1)
        raise IntegrityError("duplicate key")

    calls.clear()
    with pytest.raises(IntegrityError):
        retry_through_outage(broken, what="a charge", budget_seconds=5, first_pause=0.01)
    assert len(calls) == 1


def test_an_outage_longer_than_the_budget_raises_its_last_error():
    def down():
        raise OperationalError("Connection refused")

    with pytest.raises(OperationalError):
        retry_through_outage(down, what="a release", budget_seconds=0.2, first_pause=0.05)
