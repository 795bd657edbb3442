"""Absolute links to this site (e-mails, receipts, licence stamps, model cards), built one way.

The base is SITE_URL when it is configured: it is the public address, and the only safe one for
e-mailed links in production (a Host header is the client's to choose). Without it, the base is
the host and scheme of the request being served (Django checks the host against ALLOWED_HOSTS and
reads the scheme behind a trusted proxy from SECURE_PROXY_SSL_HEADER), so a site started on any
port links to itself. Code that runs outside a request (a worker) and finds no SITE_URL falls back
to DEFAULT_SITE_URL; `dev.py run` sets SITE_URL for every process it starts.

Links are made deep inside services (a verification e-mail sent on commit, a licence stamp, a
receipt's issuer) that take no request; CurrentRequestMiddleware makes the request being served
known to them for its duration instead of threading it through every signature.
"""

from __future__ import annotations

from contextvars import ContextVar

from django.conf import settings

DEFAULT_SITE_URL = "http://127.0.0.1:8000"

_current_request: ContextVar = ContextVar("imprint_current_request", default=None)


def site_root(request=None) -> str:
    """The site's base URL without a trailing slash: SITE_URL when configured, else `request`'s
    (or the request being served's) scheme and host, else DEFAULT_SITE_URL."""
    configured = (settings.SITE_URL or "").rstrip("/")
    if configured:
        return configured
    request = request if request is not None else _current_request.get()
    if request is not None:
        return f"{request.scheme}://{request.get_host()}"
    return DEFAULT_SITE_URL


def absolute_url(path: str, request=None) -> str:
    """`path` (as `reverse()` returns it) as an absolute URL on this site (see site_root)."""
    return site_root(request) + path


class CurrentRequestMiddleware:
    """Makes the request being served known to absolute_url for as long as it is served, a
    streamed body included (its chunks are made after the view returned: a stream settles its
    generation, and writes its receipts, while it is read)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _current_request.set(request)
        try:
            response = self.get_response(request)
        finally:
            _current_request.reset(token)
        if getattr(response, "streaming", False):
            response.streaming_content = _serving(request, response.streaming_content)
        return response


def _serving(request, chunks):
    # Each chunk is made with the request known, and the context restored before it is handed on.
    # The original iterator is closed by the response itself (Django keeps its close()).
    iterator = iter(chunks)
    while True:
        token = _current_request.set(request)
        try:
            chunk = next(iterator)
        except StopIteration:
            return
        finally:
            _current_request.reset(token)
        yield chunk
