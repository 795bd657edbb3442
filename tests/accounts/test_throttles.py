"""Log-in, sign-up, password reset and "send the link again" are throttled per account and per
client address: guessing, spraying and mail bombing end in a 429 with a clear message."""

import pytest
from django.core import mail

from accounts.models import User

pytestmark = pytest.mark.django_db


def _login(client, username, password, ip="203.0.113.7"):
    return client.post("/account/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_password_guessing_is_throttled_per_account_from_any_address(client, customer, settings):
    settings.ACCOUNT_LOGINS_PER_ACCOUNT_PER_HOUR = 5
    for n in range(5):
        assert _login(client, "carl", f"guess-{n}", ip=f"198.51.100.{n}").status_code == 200
    # The sixth guess is refused before the password is checked, even the right one, from a new address.
    response = _login(client, "CARL", "pw-Imprint-123", ip="198.51.100.99")
    assert response.status_code == 429
    assert "Too many log-in attempts" in response.content.decode()
    assert int(response["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session
    # Another account is not locked by carl's guesses.
    other = User.objects.create_user("dora", "dora@example.com", "pw-Imprint-123")
    assert _login(client, "dora", "pw-Imprint-123", ip="198.51.100.99").status_code == 302
    assert client.session["_auth_user_id"] == str(other.pk)


def test_password_spraying_is_throttled_per_client_address(client, make_user, settings):
    settings.ACCOUNT_LOGINS_PER_IP_PER_HOUR = 4
    for n in range(4):
        make_user(f"victim{n}")
        assert _login(client, f"victim{n}", "Winter2026!").status_code == 200
    make_user("victim9")
    response = _login(client, "victim9", "pw-Imprint-123")
    assert response.status_code == 429 and "Too many log-in attempts" in response.content.decode()
    assert _login(client, "victim9", "pw-Imprint-123", ip="192.0.2.1").status_code == 302


def _signup(client, n, ip="203.0.113.7", email=None):
    return client.post("/account/signup/", {
        "username": f"bot{n}", "email": email or f"bot{n}@example.com", "password1": "a-Long-pass-42",
        "password2": "a-Long-pass-42", "is_customer": "on"}, REMOTE_ADDR=ip)


def test_sign_ups_are_throttled_per_client_address(client, settings):
    settings.ACCOUNT_SIGNUPS_PER_IP_PER_HOUR = 3
    for n in range(3):
        assert _signup(client, n).status_code == 302
        client.logout()
    response = _signup(client, 3)
    assert response.status_code == 429 and "Too many sign-ups" in response.content.decode()
    assert not User.objects.filter(username="bot3").exists()
    assert _signup(client, 3, ip="192.0.2.1").status_code == 302


def test_password_reset_mails_to_one_address_are_throttled(client, customer, settings):
    settings.ACCOUNT_EMAILS_PER_ADDRESS_PER_HOUR = 3
    for n in range(3):
        response = client.post("/account/password-reset/", {"email": customer.email}, REMOTE_ADDR=f"198.51.100.{n}")
        assert response.status_code == 302
    response = client.post("/account/password-reset/", {"email": customer.email.upper()}, REMOTE_ADDR="192.0.2.1")
    assert response.status_code == 429 and "Too many e-mail requests" in response.content.decode()
    assert len(mail.outbox) == 3


def test_password_reset_requests_are_throttled_per_client_address(client, make_user, settings):
    settings.ACCOUNT_EMAIL_REQUESTS_PER_IP_PER_HOUR = 3
    for n in range(3):
        make_user(f"u{n}")
        assert client.post("/account/password-reset/", {"email": f"u{n}@example.com"}).status_code == 302
    make_user("u9")
    response = client.post("/account/password-reset/", {"email": "u9@example.com"})
    assert response.status_code == 429
    assert len(mail.outbox) == 3


def test_sending_the_verification_link_again_is_throttled(client, make_user, settings):
    settings.ACCOUNT_EMAILS_PER_ADDRESS_PER_HOUR = 2
    client.force_login(make_user("uma", verified=False))
    for _ in range(2):
        assert client.post("/account/verify-again/").status_code == 302
    response = client.post("/account/verify-again/")
    assert response.status_code == 429 and "Too many e-mail requests" in response.content.decode()
    assert len(mail.outbox) == 2


def test_guessing_through_the_admin_log_in_is_throttled_too(client, staff_user, settings):
    settings.ACCOUNT_LOGINS_PER_ACCOUNT_PER_HOUR = 3
    for n in range(3):
        client.post("/admin/login/", {"username": "sam", "password": f"guess-{n}"}, REMOTE_ADDR=f"198.51.100.{n}")
    client.post("/admin/login/", {"username": "sam", "password": "pw-Imprint-123"}, REMOTE_ADDR="192.0.2.1")
    assert "_auth_user_id" not in client.session
    response = _login(client, "sam", "pw-Imprint-123", ip="192.0.2.2")
    assert response.status_code == 429


@pytest.mark.django_db(transaction=True)
def test_parallel_guesses_get_no_more_tries_than_the_limit(make_user, settings):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections
    from django.test import Client

    settings.ACCOUNT_LOGINS_PER_ACCOUNT_PER_HOUR = 5
    make_user("carl")

    def guess(n):
        try:
            return Client().post("/account/login/", {"username": "carl", "password": f"guess-{n}"},
                                 REMOTE_ADDR=f"198.51.100.{n}").status_code
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(guess, range(24)))
    assert statuses.count(200) == 5 and statuses.count(429) == 19, statuses
