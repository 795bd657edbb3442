"""Domain errors are plain exceptions, mapped once to the one API error shape, headers included."""

from __future__ import annotations

import pytest
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from core.errors import Conflict, DomainError, NotFound, TooManyRequests, domain_error_body


class ThingNotFound(NotFound):
    code = "thing_not_found"


class Busy(TooManyRequests):
    code = "busy"


def _raising(exc):
    class RaisingApi(APIView):
        authentication_classes: list = []
        permission_classes: list = []

        def get(self, request):
            raise exc

    return RaisingApi.as_view()(APIRequestFactory().get("/"))


def test_a_domain_error_renders_in_the_one_shape_with_its_status():
    response = _raising(ThingNotFound("No such thing.", param="thing"))
    assert response.status_code == 404
    assert response.data == {"error": {"type": "not_found_error", "code": "thing_not_found",
                                       "message": "No such thing.", "param": "thing"}}


def test_extra_fields_and_headers_reach_the_client():
    response = _raising(Busy("Slow down.", extra={"retry_in": 3}, headers={"retry-after": "3"}))
    assert response.status_code == 429 and response["retry-after"] == "3"
    assert response.data["error"] == {"type": "rate_limit_error", "code": "busy", "message": "Slow down.",
                                      "param": None, "retry_in": 3}


@pytest.mark.parametrize(("error", "status", "type_"), [
    (DomainError("x"), 400, "invalid_request_error"), (Conflict("x"), 409, "conflict_error"),
    (NotFound("x"), 404, "not_found_error"), (TooManyRequests("x"), 429, "rate_limit_error")])
def test_the_bases_carry_status_and_type(error, status, type_):
    assert (error.status_code, domain_error_body(error)["error"]["type"]) == (status, type_)


def test_domain_errors_are_not_drf_exceptions():
    from rest_framework.exceptions import APIException

    assert not issubclass(DomainError, APIException)
