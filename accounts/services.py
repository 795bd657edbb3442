"""Account services: sign-up, roles, e-mail verification, and the throttles of account actions."""

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from core import ratelimit

from .errors import EmailNotVerified, TooManyAttempts
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
    link = site_link(reverse("accounts:verify", args=[user_verification_token(user=user)]))
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


def site_link(path: str) -> str:
    """An absolute link for an e-mail or a message, from SITE_URL: never from the request's Host
    header, which the client chooses (a reset link pointing at an attacker's host leaks the token)."""
    return settings.SITE_URL.rstrip("/") + path


def user_require_verified_email(*, user: User) -> None:
    """Nothing when `user` has confirmed their e-mail address. Raises EmailNotVerified, whose
    message and `verify_url` lead to the page that sends the link again."""
    if user.email_verified_at is not None:
        return
    account_url = site_link(reverse("accounts:account"))
    raise EmailNotVerified(
        f"Confirm your e-mail address first: open the link we sent to {user.email}, or ask for a new "
        f"one on your account page, {account_url}", extra={"verify_url": account_url})


# --- Throttles -------------------------------------------------------------------------------

def _refuse_when_exceeded(what: str, *windows) -> None:
    exceeded = [w for w in windows if w.exceeded]
    if exceeded:
        wait = max(w.reset_seconds for w in exceeded)
        minutes = max(1, round(wait / 60))
        raise TooManyAttempts(f"Too many {what}. Try again in about {minutes} minute{'s' if minutes > 1 else ''}.",
                              retry_after=wait)


def login_authorize(*, username: str, ip: str | None) -> None:
    """Count one log-in attempt against its account and its client address, before the password
    is checked. Raises TooManyAttempts past either hourly limit."""
    _refuse_when_exceeded(
        "log-in attempts",
        ratelimit.authorize_login_account(username=username, per_hour=settings.ACCOUNT_LOGINS_PER_ACCOUNT_PER_HOUR),
        ratelimit.authorize_login_ip(ip=ip, per_hour=settings.ACCOUNT_LOGINS_PER_IP_PER_HOUR))


def signup_authorize(*, email: str, ip: str | None) -> None:
    """Count one sign-up attempt against its client address and the e-mail it would write to.
    Raises TooManyAttempts past either hourly limit."""
    _refuse_when_exceeded(
        "sign-ups",
        ratelimit.authorize_signup_ip(ip=ip, per_hour=settings.ACCOUNT_SIGNUPS_PER_IP_PER_HOUR),
        ratelimit.authorize_account_email(email=email, per_hour=settings.ACCOUNT_EMAILS_PER_ADDRESS_PER_HOUR))


def email_request_authorize(*, email: str, ip: str | None) -> None:
    """Count one request for an account e-mail (password reset, verification again) against the
    address it goes to and the client asking. Raises TooManyAttempts past either hourly limit."""
    _refuse_when_exceeded(
        "e-mail requests",
        ratelimit.authorize_account_email(email=email, per_hour=settings.ACCOUNT_EMAILS_PER_ADDRESS_PER_HOUR),
        ratelimit.authorize_account_email_ip(ip=ip, per_hour=settings.ACCOUNT_EMAIL_REQUESTS_PER_IP_PER_HOUR))
