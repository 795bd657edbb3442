"""OpenAPI-driven fuzzing: schemathesis generates requests for every operation of the schema the
site serves, sent in-process as a signed-in user (trainer, customer and staff, so every API is
reachable) with a valid API key. No request may produce a 5xx."""

import secrets

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.inference.conftest import engine, make_licence, tiny_dir, tiny_stored  # noqa: F401 - fixtures

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
EXAMPLES = 12  # per operation; derandomized, so every run sends the same requests


@pytest.fixture
def api_schema(db):
    from django.core.signals import request_finished, request_started
    from django.core.wsgi import get_wsgi_application
    from django.db import close_old_connections

    # As Django's test client does: the requests run inside the test's transaction, so the
    # connection must not be closed at the end of each request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_auth(make_user, make_licence):
    from django.conf import settings as django_settings
    from django.test import Client

    user = make_user("fuzzy", trainer=True, customer=True, staff=True)
    licence = make_licence(customer=user)
    client = Client()
    client.force_login(user)
    csrf = secrets.token_hex(16)  # an unmasked 32-character secret: cookie and header must match
    return {
        "headers": {"Authorization": f"Bearer {licence.plaintext}", "X-CSRFToken": csrf},
        "cookies": {django_settings.SESSION_COOKIE_NAME: client.cookies[django_settings.SESSION_COOKIE_NAME].value,
                    django_settings.CSRF_COOKIE_NAME: csrf},
    }


def test_no_api_operation_answers_with_a_server_error(api_schema, fuzz_auth):
    # schemathesis's strategies driven by Hypothesis directly (its pytest plugin predates pytest 9).
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 30  # the whole API, not a sample
    for operation in operations:
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=True, database=None)
        @given(case=operation.as_strategy())
        def no_server_error(case):
            response = case.call(headers=fuzz_auth["headers"], cookies=fuzz_auth["cookies"])
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} -> {response.status_code}\n"
                f"body={case.body!r} query={case.query!r}\n{response.text[:2000]}")

        no_server_error()
