"""Sign-up, log in, log out, roles, e-mail verification and staff-only admin."""

import re
from urllib.parse import urlparse

import pytest
from django.core import mail

from accounts.models import User

pytestmark = pytest.mark.django_db


def test_it_signs_up_a_trainer_and_customer_and_logs_them_in(client):
    response = client.post("/account/signup/", {
        "username": "nora", "email": "Nora@Example.com", "password1": "a-Long-pass-42",
        "password2": "a-Long-pass-42", "is_trainer": "on", "is_customer": "on"}, follow=True)
    assert response.status_code == 200
    user = User.objects.get(username="nora")
    assert user.email == "nora@example.com"
    assert user.roles == ["trainer", "customer"]
    assert response.context["user"] == user
    assert b"Trainer studio" in response.content and b"My licences" in response.content


def test_sign_up_requires_a_role(client):
    response = client.post("/account/signup/", {
        "username": "nora", "email": "nora@example.com", "password1": "a-Long-pass-42",
        "password2": "a-Long-pass-42"})
    assert response.status_code == 200
    assert "Choose at least one role" in response.content.decode()
    assert not User.objects.filter(username="nora").exists()


def test_sign_up_refuses_a_taken_email(client, customer):
    response = client.post("/account/signup/", {
        "username": "other", "email": customer.email.upper(), "password1": "a-Long-pass-42",
        "password2": "a-Long-pass-42", "is_customer": "on"})
    assert "already exists" in response.content.decode()
    assert User.objects.count() == 1


def test_sign_up_sends_a_verification_link_that_confirms_the_address(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/account/signup/", {
            "username": "vera", "email": "vera@example.com", "password1": "a-Long-pass-42",
            "password2": "a-Long-pass-42", "is_customer": "on"})
    assert len(mail.outbox) == 1
    link = re.search(r"https?://\S+/account/verify/\S+/", mail.outbox[0].body).group(0)
    client.get(urlparse(link).path)
    assert User.objects.get(username="vera").email_verified_at is not None


def test_a_forged_verification_link_is_refused(client, make_user):
    customer = make_user("carl", verified=False)
    response = client.get("/account/verify/forged-token/", follow=True)
    assert "invalid or has expired" in response.content.decode()
    customer.refresh_from_db()
    assert customer.email_verified_at is None


def test_it_logs_in_and_out(client, customer):
    response = client.post("/account/login/", {"username": "carl", "password": "pw-Imprint-123"})
    assert response.status_code == 302
    assert client.get("/").context["user"] == customer
    client.post("/account/logout/")
    assert not client.get("/").context["user"].is_authenticated


def test_a_wrong_password_is_refused_with_a_message(client, customer):
    response = client.post("/account/login/", {"username": "carl", "password": "nope"})
    assert response.status_code == 200
    assert "enter a correct username and password" in response.content.decode()


def test_role_pages_admit_their_role_only(client, trainer, customer, staff_user):
    pages = {"/studio/": trainer, "/licences/": customer, "/compliance/review/": staff_user}
    for url, owner in pages.items():
        client.force_login(owner)
        assert client.get(url).status_code == 200, url
        for other in {trainer, customer, staff_user} - {owner}:
            client.force_login(other)
            response = client.get(url)
            assert response.status_code == 403, (url, other)
    client.logout()
    assert client.get("/studio/").status_code == 302  # anonymous: to the login page


def test_a_customer_can_turn_on_the_trainer_role(client, customer):
    client.force_login(customer)
    assert client.get("/studio/").status_code == 403
    client.post("/account/", {"is_trainer": "on", "is_customer": "on"})
    assert client.get("/studio/").status_code == 200


def test_staff_get_the_admin_and_others_are_refused(client, customer, staff_user):
    client.force_login(customer)
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.force_login(staff_user)
    assert client.get("/admin/").status_code == 200


def test_password_reset_sends_a_working_link(client, customer):
    client.post("/account/password-reset/", {"email": customer.email})
    assert len(mail.outbox) == 1
    path = re.search(r"/account/reset/\S+/\S+/", mail.outbox[0].body).group(0)
    form_page = client.get(path, follow=True)
    response = client.post(form_page.redirect_chain[-1][0], {
        "new_password1": "a-Brand-new-77", "new_password2": "a-Brand-new-77"})
    assert response.status_code == 302
    assert client.login(username="carl", password="a-Brand-new-77")
