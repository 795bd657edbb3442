"""Account services: sign-up, roles, e-mail verification, and the throttles of account actions."""

import secrets

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from core import ratelimit
from core.links import absolute_url, site_root
from core.credentials import credential_hash, credential_touch

from .errors import (
    EmailNotVerified,
    TokenInvalid,
    TokenNotFound,
    TokenOwnerInactive,
    TokenScopeMissing,
    TokenScopesInvalid,
    TooManyAttempts,
)
from .models import PersonalAccessToken, User
from .signals import token_refused

_VERIFY_SALT = "accounts.email-verify"
VERIFY_MAX_AGE_SECONDS = 3 * 24 * 3600


@transaction.atomic
def user_create(*, username: str, email: str, password: str, is_trainer: bool, is_customer: bool) -> User:
    """Create an account with the chosen roles and queue the verification e-mail after commit."""
    user = User(username=username, email=email.lower(), is_trainer=is_trainer, is_customer=is_customer)
    user.set_password(password)
    user.save()
    site = site_root()  # the site the account signed up on, known now; the e-mail goes after commit
    transaction.on_commit(lambda: user_send_verification(user=user, site=site))
    return user


def user_verification_token(*, user: User) -> str:
    return signing.dumps({"u": user.pk, "e": user.email}, salt=_VERIFY_SALT)


def user_send_verification(*, user: User, site: str | None = None) -> None:
    """E-mail `user` the link that confirms their address, on `site` (default: core.links.site_root)."""
    link = (site or site_root()) + reverse("accounts:verify", args=[user_verification_token(user=user)])
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


def user_lock(*, user: User) -> None:
    """Within the caller's transaction, lock `user`'s row, so that two requests of one account that
    check a per-account limit before writing (jobs, uploads in flight, API keys) take turns: neither
    can count before the other has written."""
    list(User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True))


def user_require_verified_email(*, user: User) -> None:
    """Nothing when `user` has confirmed their e-mail address. Raises EmailNotVerified, whose
    message and `verify_url` lead to the page that sends the link again."""
    if user.email_verified_at is not None:
        return
    account_url = absolute_url(reverse("accounts:account"))
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


# --- Personal access tokens ------------------------------------------------------------------

# Distinct from licensing's API keys (`imp_…`), so each credential is recognised by its prefix
# and a token pasted where a key belongs (or the reverse) is refused, not tried as the other.
TOKEN_PREFIX = "ipat_"
TOKEN_SCOPES = tuple(PersonalAccessToken.Scope.values)
TOKEN_ANY_SCOPE = "*"  # an endpoint any valid token may call (who am I)


@transaction.atomic
def token_create(*, owner: User, name: str, scopes: list[str]) -> tuple[PersonalAccessToken, str]:
    """Create a token and return (token, plaintext); the plaintext exists only in this return
    value. Raises TokenScopesInvalid for no scope or an unknown one."""
    chosen = sorted(set(scopes))
    unknown = [s for s in chosen if s not in TOKEN_SCOPES]
    if not chosen or unknown:
        raise TokenScopesInvalid(
            f"Choose scopes among {', '.join(TOKEN_SCOPES)}" + (f" (unknown: {', '.join(unknown)})." if unknown else "."),
            param="scopes")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = PersonalAccessToken.objects.create(owner=owner, name=name.strip()[:100] or "token",
                                               prefix=plaintext[:12], token_hash=credential_hash(plaintext),
                                               scopes=chosen)
    return token, plaintext


def token_authenticate(plaintext: str) -> PersonalAccessToken:
    """The active token for `plaintext`, its last-used time updated (at most once a minute).
    Raises TokenInvalid (unknown or revoked) or TokenOwnerInactive (deactivated account); both
    refusals of a real token are announced on `token_refused` for the audit log."""
    token = (PersonalAccessToken.objects.select_related("owner").filter(token_hash=credential_hash(plaintext)).first()
             if plaintext.startswith(TOKEN_PREFIX) else None)
    if token is None:
        raise TokenInvalid("Invalid personal access token.")
    if token.revoked_at is not None:
        _announce_refusal("token.used_after_revocation", token)
        raise TokenInvalid("This personal access token has been revoked.")
    if not token.owner.is_active:
        _announce_refusal("token.used_by_inactive_account", token)
        raise TokenOwnerInactive("This token's account has been deactivated.")
    credential_touch(token)
    return token


def _announce_refusal(event: str, token: PersonalAccessToken) -> None:
    token_refused.send_robust(sender=PersonalAccessToken, event=event, actor=token.owner,
                              data={"prefix": token.prefix, "token": token.pk})


def token_require_scope(*, token: PersonalAccessToken, scope: str, write: bool) -> None:
    """Nothing when `token` may do this: `scope` for any request, or "read" for one that only
    reads. Raises TokenScopeMissing naming the scope needed."""
    if scope == TOKEN_ANY_SCOPE or scope in token.scopes or (not write and PersonalAccessToken.Scope.READ in token.scopes):
        return
    raise TokenScopeMissing(
        f"This token lacks the '{scope}' scope{'' if write else ' (or read)'}; create one with it on your account page.",
        extra={"required_scope": scope, "token_scopes": token.scopes})


@transaction.atomic
def token_revoke(*, owner: User, token_id: int) -> PersonalAccessToken:
    """Revoke one of `owner`'s tokens (idempotent). Raises TokenNotFound when it is not theirs."""
    token = PersonalAccessToken.objects.select_for_update().filter(pk=token_id, owner=owner).first()
    if token is None:
        raise TokenNotFound("No such token.", param="token")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token
