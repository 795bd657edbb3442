"""Account services: sign-up, roles and e-mail verification."""

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from .models import User

_VERIFY_SALT = "accounts.email-verify"
VERIFY_MAX_AGE_SECONDS = 3 * 24 * 3600


@transaction.atomic
def user_create(*, username: str, email: str, password: str, is_trainer: bool, is_customer: bool) -> User:
    """Create an account with the chosen roles and queue the verification e-mail after commit."""
    user = User(username=username, email=email.lower(), is_trainer=is_trainer, is_customer=is_customer)
    user.set_password(password)
    user.save()
    transaction.on_commit(lambda: user_send_verification(user=user))
    return user


def user_verification_token(*, user: User) -> str:
    return signing.dumps({"u": user.pk, "e": user.email}, salt=_VERIFY_SALT)


def user_send_verification(*, user: User) -> None:
    link = settings.SITE_URL + reverse("accounts:verify", args=[user_verification_token(user=user)])
    send_mail(
        "Confirm your Imprint e-mail address",
        f"Hello {user.username},\n\nConfirm your address by opening:\n{link}\n",
        None,
        [user.email],
    )


def user_verify_email(*, token: str) -> User:
    """Mark the address verified. Raises signing.BadSignature (or SignatureExpired) on a bad link."""
    data = signing.loads(token, salt=_VERIFY_SALT, max_age=VERIFY_MAX_AGE_SECONDS)
    user = User.objects.get(pk=data["u"], email=data["e"])
    if user.email_verified_at is None:
        user.email_verified_at = timezone.now()
        user.save(update_fields=["email_verified_at"])
    return user


def user_set_roles(*, user: User, is_trainer: bool, is_customer: bool) -> User:
    user.is_trainer, user.is_customer = is_trainer, is_customer
    user.save(update_fields=["is_trainer", "is_customer"])
    return user
