"""One error shape for the whole API, OpenAI-style, so the `openai` client raises its usual errors:

    {"error": {"type": "...", "code": "...", "message": "...", "param": null}}

Domain errors subclass `ApiError` (or are mapped here) with their HTTP status, type and code.
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler


class ApiError(exceptions.APIException):
    """A domain error with its HTTP status and machine-readable type and code."""

    status_code = status.HTTP_400_BAD_REQUEST
    error_type = "invalid_request_error"
    code = "invalid_request"

    def __init__(self, message: str, *, param: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.extra = extra or {}


_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    402: "insufficient_quota",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(*, status_code: int, message: str, code: str, param=None, type_=None, **extra):
    body = {
        "type": type_ or _TYPES.get(status_code, "api_error"),
        "code": code,
        "message": message,
        "param": param,
    }
    body.update(extra)
    return {"error": body}


def _first_validation_error(detail, prefix: str = ""):
    """(param, message) of the first field error in a DRF ValidationError detail."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            param = key if key != "non_field_errors" else None
            inner_param, message = _first_validation_error(value, key)
            return (inner_param if isinstance(value, dict) else param), message
    if isinstance(detail, list) and detail:
        return _first_validation_error(detail[0], prefix)
    return (prefix or None), str(detail)


def exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or "You do not have permission.")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, ApiError):
        body = error_body(
            status_code=exc.status_code,
            message=exc.message,
            code=exc.code,
            param=exc.param,
            type_=exc.error_type,
            **exc.extra,
        )
    elif isinstance(exc, exceptions.ValidationError):
        param, message = _first_validation_error(exc.detail)
        body = error_body(status_code=400, message=message, code="invalid_value", param=param)
        body["error"]["fields"] = exc.detail
    else:
        code = getattr(exc, "default_code", "error")
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        body = error_body(status_code=response.status_code, message=str(detail), code=code)
    response.data = body
    return response

