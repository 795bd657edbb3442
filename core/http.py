"""What a request says about its client, read one way everywhere."""

from __future__ import annotations


def client_ip(request) -> str | None:
    """The client's address. REMOTE_ADDR only: X-Forwarded-For is the client's to forge unless a
    trusted proxy sets it."""
    return request.META.get("REMOTE_ADDR") or None
