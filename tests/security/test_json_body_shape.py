"""A JSON body that is not an object (a list, a number, null) is refused with a 400 in the house
error shape by every API operation, never answered with a server error."""

import json
import uuid

import pytest

from tests import factories

pytestmark = pytest.mark.django_db
MESSAGE = "The request body must be a JSON object."
NOT_OBJECTS = ["[null, null]", "[]", "3", "null", '"text"']


@pytest.fixture
def everyone(client):
    user = factories.user(trainer=True, customer=True, staff=True)
    client.force_login(user)
    return client


@pytest.mark.parametrize("path", ["/api/v1/licences/terms/preview/", "/api/v1/training/jobs/"])
@pytest.mark.parametrize("body", NOT_OBJECTS)
def test_it_refuses_a_body_that_is_not_an_object_with_a_clear_400(everyone, path, body):
    response = everyone.post(path, body, content_type="application/json")
    assert response.status_code == 400, response.content[:500]
    error = response.json()["error"]
    assert error["message"] == MESSAGE and error["type"] == "invalid_request_error"


def _fill(path: str, parameters: list[dict]) -> str:
    for param in parameters:
        if param.get("in") == "path":
            kind = param.get("schema", {})
            value = str(uuid.uuid4()) if kind.get("format") == "uuid" else "1" if kind.get("type") == "integer" else "x"
            path = path.replace("{" + param["name"] + "}", value)
    return path


def test_no_write_operation_of_the_published_schema_answers_a_list_body_with_a_server_error(everyone):
    schema = everyone.get("/api/schema/", {"format": "json"}, HTTP_ACCEPT="application/json")
    paths = json.loads(schema.content)["paths"]
    sent, refused = [], []
    for path, operations in paths.items():
        for method in ("post", "put", "patch"):
            if method not in operations:
                continue
            url = _fill(path, operations[method].get("parameters", []) + operations.get("parameters", []))
            response = getattr(everyone, method)(url, "[null, null]", content_type="application/json")
            assert response.status_code < 500, f"{method.upper()} {url} -> {response.status_code}"
            if response.status_code == 400:  # in the house shape; an operation may refuse before reading
                refused.append(response.json()["error"]["message"] == MESSAGE)
            sent.append((method, path))
    assert len(sent) >= 20  # the whole API, not a sample
    assert sum(refused) >= 10  # and most of those that reached the body said why
