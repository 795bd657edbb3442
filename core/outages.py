"""Outages of the services behind the site (the database, the Redis cache, the broker): how to tell
one from a bug, how to wait one out, and what a client sees meanwhile.

- `is_outage(exc)`: the connection-level errors of PostgreSQL/SQLite (OperationalError,
  InterfaceError), Redis (ConnectionError, TimeoutError) and the broker (kombu's OperationalError).
  A constraint violation or a programming error is never an outage.
- `retry_through_outage(work, ...)`: run `work` again with a growing pause while it fails with an
  outage, for a bounded time: the one mechanism that charges and releases use, streamed or not.
- `OutageMiddleware` and `server_error`: a request that meets an outage is answered 503 with
  Retry-After (JSON in the API's error shape on API paths, a short plain page elsewhere), never
  Django's 500 page or a stack trace.

Settings read here: OUTAGE_RETRY_AFTER_SECONDS (the Retry-After of those 503s).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connections
from django.http import HttpResponse
from django.views.defaults import server_error as django_server_error

from .errors import Unavailable, error_body

logger = logging.getLogger(__name__)
T = TypeVar("T")

API_PREFIXES = ("/api/", "/v1/", "/.well-known/")


def _outage_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [OperationalError, InterfaceError]
    try:
        import redis.exceptions

        types += [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
    except ImportError:  # pragma: no cover - redis is in requirements.txt
        pass
    try:
        import kombu.exceptions

        types.append(kombu.exceptions.OperationalError)
    except ImportError:  # pragma: no cover - kombu comes with celery
        pass
    return tuple(types)


OUTAGE_TYPES = _outage_types()


def is_outage(exc: BaseException | None) -> bool:
    """Whether `exc` (or what caused it) says a backing service is unreachable, not that the code erred."""
    while exc is not None:
        if isinstance(exc, OUTAGE_TYPES):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class ServiceUnavailable(Unavailable):
    """503: the database, the cache or the broker cannot be reached for a moment; retry after the
    Retry-After header."""

    code = "service_unavailable"


def retry_after_seconds() -> int:
    return int(getattr(settings, "OUTAGE_RETRY_AFTER_SECONDS", 5))


def outage_error(exc: BaseException | None = None) -> ServiceUnavailable:
    what = _what_failed(exc)
    return ServiceUnavailable(f"The {what} is unreachable for a moment; nothing was done. Retry after the "
                              f"Retry-After header.", headers={"retry-after": str(retry_after_seconds())})


def _what_failed(exc: BaseException | None) -> str:
    while exc is not None:
        module = type(exc).__module__
        if module.startswith("redis"):
            return "cache"
        if module.startswith("kombu"):
            return "message broker"
        if isinstance(exc, (OperationalError, InterfaceError)):
            return "database"
        exc = exc.__cause__ or exc.__context__
    return "service"


def _forget_broken_connections() -> None:
    """A connection that met an outage is unusable: drop it, so the next attempt opens a new one
    (outside a transaction; inside one the caller's transaction is lost anyway)."""
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a dead connection may fail again
                pass


def retry_through_outage(work: Callable[[], T], *, what: str, budget_seconds: float,
                         first_pause: float = 0.1, max_pause: float = 2.0) -> T:
    """`work()`, tried again after 0.1, 0.2, 0.4 … 2 s pauses while it fails with an outage, until
    `budget_seconds` have passed; then its last error is raised. Any other error is raised at once.
    `what` names the work in the log (a charge, a release)."""
    deadline = time.monotonic() + budget_seconds
    pause, attempt = first_pause, 0
    while True:
        attempt += 1
        try:
            return work()
        except Exception as exc:
            if not is_outage(exc) or time.monotonic() + pause > deadline:
                raise
            logger.warning("%s met an outage (attempt %d, %s); retrying in %.1f s", what, attempt, exc, pause)
        _forget_broken_connections()
        time.sleep(pause)
        pause = min(pause * 2, max_pause)


# --- What a client sees -----------------------------------------------------------------------

def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES)


def outage_response(request, exc: BaseException | None) -> HttpResponse:
    """503 + Retry-After: the API's error shape on API paths, a short plain page elsewhere."""
    error = outage_error(exc)
    if is_api_path(request.path):
        body = error_body(status_code=503, message=error.message, code=error.code, type_=error.error_type)
        response = HttpResponse(json.dumps(body), status=503, content_type="application/json")
    else:
        response = HttpResponse(
            "<!doctype html><title>Back in a moment</title><h1>Back in a moment</h1>"
            f"<p>Imprint cannot reach its {_what_failed(exc)} right now. Nothing was changed; "
            "please try again in a few seconds.</p>", status=503, content_type="text/html")
    response["Retry-After"] = str(retry_after_seconds())
    return response


class OutageMiddleware:
    """Answers 503 + Retry-After for a view that met an outage (the database, the cache, the broker),
    and frees the broken database connections so that the next request opens fresh ones."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_outage(exception):
            return None
        logger.warning("outage while answering %s %s: %s", request.method, request.path, exception)
        close_old_connections()
        return outage_response(request, exception)


def server_error(request, *args, **kwargs):
    """handler500: an outage met outside a view (in a middleware: the session, the user) is a 503
    too; any other error on an API path answers in the API's error shape; pages get Django's."""
    exc = sys.exc_info()[1]
    if is_outage(exc):
        return outage_response(request, exc)
    if is_api_path(request.path):
        body = error_body(status_code=500, message="The server failed to answer this request.", code="server_error")
        return HttpResponse(json.dumps(body), status=500, content_type="application/json")
    return django_server_error(request, *args, **kwargs)
