"""The client's address comes from REMOTE_ADDR, never from a header the client sets itself."""

from django.test import RequestFactory

from core.http import client_ip


def test_it_reads_remote_addr_and_ignores_forwarded_headers():
    request = RequestFactory().get("/", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="198.51.100.1")
    assert client_ip(request) == "203.0.113.9"


def test_no_address_is_none():
    request = RequestFactory().get("/")
    request.META.pop("REMOTE_ADDR", None)
    assert client_ip(request) is None


def _request(remote="10.0.0.2", forwarded=None):
    meta = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **meta)


def test_behind_one_trusted_proxy_the_entry_it_appended_is_the_client(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    # The client sent its own X-Forwarded-For (leftmost); the proxy appended the real address.
    assert client_ip(_request(forwarded="198.51.100.1, 203.0.113.9")) == "203.0.113.9"
    assert client_ip(_request(forwarded="203.0.113.9")) == "203.0.113.9"


def test_behind_two_proxies_the_second_entry_from_the_right_is_the_client(settings):
    settings.TRUSTED_PROXY_COUNT = 2
    assert client_ip(_request(forwarded="1.1.1.1, 2.2.2.2, 203.0.113.9, 10.0.0.7")) == "203.0.113.9"


def test_with_proxy_networks_the_first_untrusted_address_from_the_right_is_the_client(settings):
    settings.TRUSTED_PROXY_NETWORKS = ["10.0.0.0/8"]
    assert client_ip(_request(forwarded="10.9.9.9, 203.0.113.9, 10.0.0.3")) == "203.0.113.9"
    # A client that reaches the app directly cannot claim an address by sending the header.
    assert client_ip(_request(remote="198.51.100.50", forwarded="203.0.113.9")) == "198.51.100.50"


def test_garbage_or_missing_forwarded_headers_fall_back_to_the_proxy(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip(_request(forwarded="not-an-address")) == "10.0.0.2"
    assert client_ip(_request()) == "10.0.0.2"
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip(_request(forwarded="203.0.113.9")) == "10.0.0.2"
