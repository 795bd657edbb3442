"""OpenAPI-driven fuzzing: schemathesis generates requests for every operation of the schema the
site serves, sent in-process with each credential a client can hold: a signed-in session (trainer,
customer and staff, so every API is reachable) with a valid API key, a personal access token of
each scope alone, and the API key alone. Besides requests that follow the schema, each operation
also gets requests that break it (wrong types, bodies of another shape). No request may produce a
5xx."""

import secrets

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.inference.conftest import engine, make_licence, tiny_dir, tiny_stored  # noqa: F401 - fixtures

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
# Examples per operation and credential; derandomized, so every run sends the same requests. The
# session gets the most, as it reaches every operation; a token of one scope is refused by most of
# them early (scope, then the body), so a few examples find what it can reach.
EXAMPLES = {"session": 12, "token": 3, "api-key": 3}
NEGATIVE_EXAMPLES = {"session": 4, "token": 2, "api-key": 2}
TOKEN_SCOPES = ("read", "training", "marketplace", "licences")


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
def credentials(make_user, make_licence) -> dict[str, tuple[str, dict]]:
    """name -> (kind, {"headers", "cookies"}) for every way a client authenticates."""
    from django.conf import settings as django_settings
    from django.test import Client

    from accounts.services import token_create

    user = make_user("fuzzy", trainer=True, customer=True, staff=True)
    key = make_licence(customer=user).plaintext
    client = Client()
    client.force_login(user)
    csrf = secrets.token_hex(16)  # an unmasked 32-character secret: cookie and header must match
    found = {"session + api key": ("session", {
        "headers": {"Authorization": f"Bearer {key}", "X-CSRFToken": csrf},
        "cookies": {django_settings.SESSION_COOKIE_NAME: client.cookies[django_settings.SESSION_COOKIE_NAME].value,
                    django_settings.CSRF_COOKIE_NAME: csrf}})}
    for scope in TOKEN_SCOPES:
        _, token = token_create(owner=user, name=f"fuzz {scope}", scopes=[scope])
        found[f"token:{scope}"] = ("token", {"headers": {"Authorization": f"Bearer {token}"}, "cookies": {}})
    found["api key"] = ("api-key", {"headers": {"Authorization": f"Bearer {key}"}, "cookies": {}})
    return found


def _fuzz(operation, mode: GenerationMode, examples: int, name: str, auth: dict, sent: list) -> None:
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck),
              derandomize=True, database=None)
    @given(case=operation.as_strategy(generation_mode=mode))
    def no_server_error(case):
        sent.append(1)
        response = case.call(headers=auth["headers"], cookies=auth["cookies"])
        assert response.status_code < 500, (
            f"[{name}, {mode.value}] {case.method} {case.formatted_path} -> {response.status_code}\n"
            f"body={case.body!r} query={case.query!r}\n{response.text[:2000]}")

    try:
        no_server_error()
    except Unsatisfiable:
        pass  # nothing in this operation can be made invalid (no body, no parameters)


def test_no_api_operation_answers_with_a_server_error(api_schema, credentials):
    # schemathesis's strategies driven by Hypothesis directly (its pytest plugin predates pytest 9).
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 30  # the whole API, not a sample
    sent: list[int] = []
    for name, (kind, auth) in credentials.items():
        for operation in operations:
            _fuzz(operation, GenerationMode.POSITIVE, EXAMPLES[kind], name, auth, sent)
            _fuzz(operation, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES[kind], name, auth, sent)
    print(f"{len(sent)} generated cases over {len(operations)} operations and {len(credentials)} credentials")
    assert len(sent) >= len(operations) * len(credentials) * 2
