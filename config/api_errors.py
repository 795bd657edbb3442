"""One error shape for the whole API, OpenAI-style, so the `openai` client raises its usual errors:

    {"error": {"type": "...", "code": "...", "message": "...", "param": null}}

Domain errors (core.errors.DomainError) are mapped here, once; so are DRF's own exceptions
(validation, authentication, throttling), Django's Http404 / PermissionDenied, and an outage of
the database, the cache or the broker (503 + Retry-After, core.outages).
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from core.errors import DomainError, domain_error_body, error_body
from core.outages import is_outage, outage_error


def domain_error_response(exc: DomainError) -> Response:
    """The response for a domain error, with its headers (retry-after, x-ratelimit-*)."""
    response = Response(domain_error_body(exc), status=exc.status_code)
    for name, value in exc.headers.items():
        response[name] = value
    return response


def _first_validation_error(detail, prefix: str = ""):
    """(param, message) of the first field error in a DRF ValidationError detail."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            param = key if key != "non_field_errors" else None
            inner_param, message = _first_validation_error(value, key)
            # A nested object's error names its inner field; a list item's ({index: errors}) names the list.
            named_inside = isinstance(value, dict) and not isinstance(inner_param, int)
            return (inner_param if named_inside else param), message
    if isinstance(detail, list) and detail:
        return _first_validation_error(detail[0], prefix)
    return (prefix or None), str(detail)


def exception_handler(exc, context):
    if not isinstance(exc, DomainError) and is_outage(exc):
        exc = outage_error(exc)  # the database, the cache or the broker is down: 503 + Retry-After
    if isinstance(exc, DomainError):
        set_rollback()  # as DRF does for its own exceptions under ATOMIC_REQUESTS
        return domain_error_response(exc)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or "You do not have permission.")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        param, message = _first_validation_error(exc.detail)
        body = error_body(status_code=400, message=message, code="invalid_value", param=param)
        body["error"]["fields"] = exc.detail
    else:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else getattr(exc, "default_code", "error")
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        body = error_body(status_code=response.status_code, message=str(detail), code=code)
    response.data = body
    return response

