"""CSRF on every form: a signed-in browser session that POSTs without the CSRF token is refused
everywhere, except the endpoints that authenticate otherwise (signed Stripe webhooks, API keys)."""

import pytest
from django.test import Client
from django.urls import reverse

from tests.security.test_object_permissions import _kwargs, _walk, owner_world  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db

# Authenticated by something other than a browser session, so a forged cross-site form gains nothing.
NOT_SESSION_AUTHENTICATED = {
    "marketplace:stripe_webhook",  # Stripe's signature (construct_event) authenticates it
    "inference_api:api_generations", "inference_api:openai_completions",  # Bearer API keys
    "inference_api:openai_models",
    "inference_api:openai_chat_completions",  # reads no credential at all: always the same refusal
    "compliance:api_verifications",  # public and anonymous: it reads no session, so a forgery gains nothing
}


def all_patterns():
    from django.urls import URLPattern, URLResolver, get_resolver

    def walk(patterns, namespace=None):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, p.namespace or namespace)
            elif isinstance(p, URLPattern) and p.name:
                params = list(p.pattern.converters) or list(getattr(p.pattern, "regex").groupindex)
                yield (f"{namespace}:{p.name}" if namespace else p.name), params

    return [(n, p) for n, p in walk(get_resolver().url_patterns) if not n.startswith("admin:")]


def test_every_post_without_the_csrf_token_is_refused(owner_world):
    owner = owner_world["objects"]["job"].owner
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner)
    checked = 0
    for name, params in all_patterns():
        if name in NOT_SESSION_AUTHENTICATED or name in ("accounts:verify", "accounts:password_reset_confirm"):
            continue
        url = reverse(name, kwargs=_kwargs(name, params, owner_world) if params else None)
        response = browser.post(url, {"anything": "1"})
        assert response.status_code == 403, f"POST {url} ({name}) without a CSRF token gave {response.status_code}"
        checked += 1
    assert checked >= 60


def test_the_excepted_endpoints_really_exist(owner_world):
    names = {n for n, _ in all_patterns()}
    assert NOT_SESSION_AUTHENTICATED <= names
