"""What a request says about its client, read one way everywhere."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.utils.http import url_has_allowed_host_and_scheme


def _address(value: str):
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _trusted_networks() -> list:
    return [ipaddress.ip_network(n.strip(), strict=False)
            for n in settings.TRUSTED_PROXY_NETWORKS if n.strip()]


def _is_proxy(address, networks: list, *, hop: int, count: int) -> bool:
    """Whether the `hop`-th address from our side (0: REMOTE_ADDR) is one of our proxies: inside a
    trusted network when networks are configured, else one of the first `count` hops."""
    if networks:
        return any(address in net for net in networks) and (not count or hop < count)
    return hop < count


def client_ip(request) -> str | None:
    """The client's address. REMOTE_ADDR, unless REMOTE_ADDR is one of our reverse proxies
    (TRUSTED_PROXY_COUNT of them in front of us, or any address in TRUSTED_PROXY_NETWORKS): then the
    X-Forwarded-For entry that our outermost proxy appended, read from the right. Entries further
    left are whatever the client sent, so they are never believed."""
    remote = request.META.get("REMOTE_ADDR") or None
    count = settings.TRUSTED_PROXY_COUNT
    networks = _trusted_networks()
    address = _address(remote) if remote else None
    if address is None or not (count or networks) or not _is_proxy(address, networks, hop=0, count=count):
        return remote
    forwarded = [e for e in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if e.strip()]
    client = address
    for hop, entry in enumerate(reversed(forwarded), start=1):
        previous = _address(entry)
        if previous is None:
            break  # garbage: the last good hop is the best we know
        client = previous
        if not _is_proxy(previous, networks, hop=hop, count=count):
            break
    return str(client)


def local_next(request, value: str | None) -> str | None:
    """`value` (a POSTed or queried `next`) when it is a path on this site, else None: an address
    the client supplies is never a way to send the visitor elsewhere (`//evil.example/x` is another
    host too). Over HTTPS the target must stay HTTPS."""
    if value and url_has_allowed_host_and_scheme(value, allowed_hosts={request.get_host()},
                                                 require_https=request.is_secure()):
        return value
    return None
