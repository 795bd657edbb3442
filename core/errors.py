"""The one base of every domain error, so services never import DRF and every error reaches the
client in one shape (config.api_errors maps it once):

    {"error": {"type": "...", "code": "...", "message": "...", "param": null}}

A domain error is a plain exception class that names its status and code; the intermediate bases
below carry the status and OpenAI-style type of the common cases, so an app's error is two lines:

    class GrantNotOwned(NotFound):
        code = "grant_not_found"
"""

from __future__ import annotations

# The OpenAI-style type of a status, for errors that do not name their own.
TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


class DomainError(Exception):
    """A refusal the caller can act on: HTTP `status_code`, machine-readable `error_type` and
    `code`, the request field it is about (`param`), extra fields for the body (`extra`) and
    response headers (`headers`, e.g. retry-after)."""

    status_code = 400
    error_type = "invalid_request_error"
    code = "invalid_request"

    def __init__(self, message: str, *, param: str | None = None, extra: dict | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.extra = extra or {}
        self.headers = headers or {}


class InvalidRequest(DomainError):
    """400: the input is wrong; `param` names the field."""


class Unauthenticated(DomainError):
    status_code = 401
    error_type = "authentication_error"
    code = "unauthenticated"


class PaymentRequired(DomainError):
    status_code = 402
    error_type = "insufficient_quota"
    code = "payment_required"


class Forbidden(DomainError):
    status_code = 403
    error_type = "permission_error"
    code = "forbidden"


class NotFound(DomainError):
    """404. Also for another user's object, so its id is never confirmed."""

    status_code = 404
    error_type = "not_found_error"
    code = "not_found"


class Conflict(DomainError):
    """409: the object's state does not allow it now."""

    status_code = 409
    error_type = "conflict_error"
    code = "conflict"


class TooManyRequests(DomainError):
    status_code = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"


class Unavailable(DomainError):
    """5xx: something behind us failed; the request may be retried."""

    status_code = 503
    error_type = "api_error"
    code = "unavailable"


def error_body(*, status_code: int, message: str, code: str, param=None, type_=None, **extra) -> dict:
    """The one error shape: {"error": {"type", "code", "message", "param", ...extra}}."""
    body = {"type": type_ or TYPES.get(status_code, "api_error"), "code": code, "message": message, "param": param}
    body.update(extra)
    return {"error": body}


def domain_error_body(exc: DomainError) -> dict:
    """The body of a domain error (also for errors sent inside an event stream)."""
    return error_body(status_code=exc.status_code, message=exc.message, code=exc.code, param=exc.param,
                      type_=exc.error_type, **exc.extra)
