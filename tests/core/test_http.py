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
