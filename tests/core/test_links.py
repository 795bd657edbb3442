"""Absolute links (core.links): SITE_URL when configured, else the host of the request being
served, else the default address; a streamed body is made with its request known."""

from __future__ import annotations

from django.http import HttpResponse, StreamingHttpResponse
from django.test import RequestFactory

from core import links


def test_it_uses_site_url_when_configured(settings):
    settings.SITE_URL = "https://imprint.example.com/"
    request = RequestFactory().get("/", HTTP_HOST="127.0.0.1:8765")
    assert links.absolute_url("/account/", request) == "https://imprint.example.com/account/"


def test_it_uses_the_requests_host_and_port_without_site_url(settings):
    settings.SITE_URL = ""
    request = RequestFactory().get("/", HTTP_HOST="127.0.0.1:8765")
    assert links.absolute_url("/account/", request) == "http://127.0.0.1:8765/account/"
    assert links.site_root(request) == "http://127.0.0.1:8765"


def test_outside_a_request_it_falls_back_to_the_default_address(settings):
    settings.SITE_URL = ""
    assert links.absolute_url("/x/") == links.DEFAULT_SITE_URL + "/x/"


def test_the_middleware_makes_the_request_known_to_code_that_takes_none(settings):
    settings.SITE_URL = ""
    request = RequestFactory().get("/", HTTP_HOST="localhost:9001")
    seen = []
    links.CurrentRequestMiddleware(lambda r: seen.append(links.absolute_url("/a/")) or HttpResponse())(request)
    assert seen == ["http://localhost:9001/a/"]
    assert links.absolute_url("/a/") == links.DEFAULT_SITE_URL + "/a/"  # and forgets it afterwards


def test_a_streamed_body_is_made_with_its_request_known(settings):
    settings.SITE_URL = ""
    request = RequestFactory().get("/", HTTP_HOST="localhost:9002")

    def chunks():
        yield links.absolute_url("/first/")
        yield links.absolute_url("/second/")

    response = links.CurrentRequestMiddleware(lambda r: StreamingHttpResponse(chunks()))(request)
    assert b"".join(response.streaming_content) == b"http://localhost:9002/first/http://localhost:9002/second/"
