"""Personal access tokens: shown once, stored hashed, scoped, revocable, refused for a deactivated
account, and accepted only on the management APIs."""

import hashlib
from datetime import timedelta

import pytest
from django.urls import get_resolver
from django.utils import timezone

from accounts.authentication import view_token_scope
from accounts.models import PersonalAccessToken
from accounts.services import token_create
from audit.models import AuditRefusal

pytestmark = pytest.mark.django_db


def _bearer(plaintext: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {plaintext}"}


def test_a_token_is_shown_once_and_stored_only_as_its_hash(client, trainer):
    client.force_login(trainer)
    page = client.post("/account/tokens/", {"name": "laptop", "scopes": ["read", "training"]})
    token = PersonalAccessToken.objects.get()
    plaintext = page.content.decode().split('id="new-token"')[1].split("<code>")[1].split("</code>")[0]
    assert plaintext.startswith("ipat_") and token.prefix == plaintext[:12]
    assert token.token_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    stored = " ".join(str(v) for v in PersonalAccessToken.objects.values().get().values())
    assert plaintext not in stored
    assert page["Cache-Control"] == "no-store"
    again = client.get("/account/tokens/").content.decode()
    assert plaintext not in again and token.prefix in again


def test_a_token_works_on_the_training_api_and_records_when_it_was_last_used(client, trainer):
    token, plaintext = token_create(owner=trainer, name="cli", scopes=["training"])
    assert token.last_used_at is None
    response = client.get("/api/v1/training/datasets/", **_bearer(plaintext))
    assert response.status_code == 200
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None and timezone.now() - first < timedelta(seconds=5)
    client.get("/api/v1/training/jobs/", **_bearer(plaintext))
    token.refresh_from_db()
    assert token.last_used_at == first  # at most one write a minute: "last used" is not an access log
    me = client.get("/api/v1/account/", **_bearer(plaintext)).json()
    assert me["username"] == trainer.username and me["token"]["scopes"] == ["training"]


@pytest.mark.parametrize("scopes, method, url, status", [
    (["read"], "post", "/api/v1/training/jobs/", 403),  # read cannot write
    (["read"], "get", "/api/v1/training/jobs/", 200),  # but may read
    (["marketplace"], "get", "/api/v1/training/jobs/", 403),  # another app's scope
    (["training"], "post", "/api/v1/marketplace/listings/publish/", 403),
    (["training"], "get", "/api/v1/licences/grants/", 403),
    (["licences"], "get", "/api/v1/licences/grants/", 200),
])
def test_a_token_may_do_only_what_its_scopes_allow(client, make_user, scopes, method, url, status):
    user = make_user("both", trainer=True, customer=True)
    _, plaintext = token_create(owner=user, name="t", scopes=scopes)
    response = getattr(client, method)(url, {}, content_type="application/json", **_bearer(plaintext))
    assert response.status_code == status
    if status == 403:
        error = response.json()["error"]
        assert error["code"] == "insufficient_scope" and error["required_scope"] in url


@pytest.mark.parametrize("url", ["/compliance/api/review/", "/v1/models", "/api/v1/generations"])
def test_a_token_is_no_key_for_generation_or_staff_endpoints(client, make_user, url):
    staff = make_user("root", staff=True)
    _, plaintext = token_create(owner=staff, name="t", scopes=["read", "training", "marketplace", "licences"])
    response = client.get(url, **_bearer(plaintext)) if "models" in url or "review" in url else client.post(
        url, {"prompt": "x", "model": "m"}, content_type="application/json", **_bearer(plaintext))
    assert response.status_code in (401, 403, 404)
    assert response.status_code != 200


def test_every_management_api_view_is_under_a_token_scope():
    """No view of the training, marketplace or licence APIs can be reached by a token without the
    scope check (the check belongs to the authentication, not to each view's permission list)."""
    checked = 0
    for pattern, view in _api_views(get_resolver(), ""):
        if pattern.startswith(("api/v1/training/", "api/v1/marketplace/", "api/v1/licences/")):
            assert view_token_scope(view) in ("training", "marketplace", "licences"), pattern
            checked += 1
    assert checked >= 15


def _api_views(resolver, prefix):
    for entry in resolver.url_patterns:
        if hasattr(entry, "url_patterns"):
            yield from _api_views(entry, prefix + str(entry.pattern))
        elif hasattr(entry.callback, "view_class"):
            yield prefix + str(entry.pattern), entry.callback.view_class()


def test_a_revoked_token_is_refused_and_the_attempt_audited(client, trainer):
    client.force_login(trainer)
    token, plaintext = token_create(owner=trainer, name="old", scopes=["training"])
    client.post(f"/account/tokens/{token.pk}/revoke/")
    client.logout()
    token.refresh_from_db()
    assert token.revoked_at is not None
    response = client.get("/api/v1/training/datasets/", **_bearer(plaintext))
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_token"
    assert AuditRefusal.objects.filter(event="token.used_after_revocation").count() == 1


def test_a_deactivated_accounts_token_is_refused_and_audited(client, trainer):
    _, plaintext = token_create(owner=trainer, name="t", scopes=["training"])
    trainer.is_active = False
    trainer.save()
    response = client.get("/api/v1/training/datasets/", **_bearer(plaintext))
    assert response.status_code == 401 and response.json()["error"]["code"] == "account_inactive"
    assert AuditRefusal.objects.filter(event="token.used_by_inactive_account").exists()


def test_nobody_revokes_a_strangers_token(client, trainer, customer):
    token, plaintext = token_create(owner=customer, name="theirs", scopes=["read"])
    client.force_login(trainer)
    client.post(f"/account/tokens/{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.revoked_at is None
    assert token.prefix not in client.get("/account/tokens/").content.decode()


def test_unknown_scopes_and_made_up_tokens_are_refused(client, trainer):
    from accounts.errors import TokenScopesInvalid

    with pytest.raises(TokenScopesInvalid):
        token_create(owner=trainer, name="t", scopes=["admin"])
    with pytest.raises(TokenScopesInvalid):
        token_create(owner=trainer, name="t", scopes=[])
    response = client.get("/api/v1/training/datasets/", **_bearer("ipat_" + "x" * 43))
    assert response.status_code == 401
