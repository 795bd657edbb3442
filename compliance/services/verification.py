"""Public verification (the verify page and API): limited per caller, and a failing receipt raises a
flag about whoever presented it."""

from __future__ import annotations

from django.conf import settings

from core.ratelimit import authorize_verification
from inference.verification import verification_run

from ..errors import VerificationInvalid, VerificationRateLimited
from .flags import Presenter, flags_from_verification

MAX_TEXT_CHARS = 200_000
MAX_RECEIPT_CHARS = 20_000
MAX_PROMPT_CHARS = 100_000


def _verification_windows(presenter: Presenter) -> list[tuple[str, int, str]]:
    """(subject, hourly limit, who) of every window a verification counts against: always the
    address; the account of a signed-in user or of a presented key's owner; and the key itself. A key
    narrows the limit, never widens it: the owner's keys share one account limit, and each is still
    counted against the address it comes from."""
    windows = [(f"ip:{presenter.ip or 'unknown'}", settings.COMPLIANCE_VERIFICATIONS_PER_IP_PER_HOUR, "one address")]
    owner_id = presenter.api_key.owner_id if presenter.api_key is not None else getattr(presenter.user, "pk", None)
    if owner_id is not None:
        windows.append((f"account:{owner_id}", settings.COMPLIANCE_VERIFICATIONS_PER_ACCOUNT_PER_HOUR,
                        "one account"))
    if presenter.api_key is not None:
        windows.append((f"key:{presenter.api_key.pk}", settings.COMPLIANCE_VERIFICATIONS_PER_KEY_PER_HOUR,
                        "one API key"))
    return windows


def verification_ratelimit_consume(*, presenter: Presenter) -> None:
    """Count one verification against each of the caller's hourly limits: its address
    (COMPLIANCE_VERIFICATIONS_PER_IP_PER_HOUR, default 60), its account when signed in or presenting
    a key (COMPLIANCE_VERIFICATIONS_PER_ACCOUNT_PER_HOUR, default 600, shared by all the owner's
    keys) and the key (COMPLIANCE_VERIFICATIONS_PER_KEY_PER_HOUR, default 600). Raises
    VerificationRateLimited (429, with Retry-After) when any is exceeded, naming the first."""
    for subject, limit, who in _verification_windows(presenter):
        window = authorize_verification(subject=subject, per_hour=int(limit))
        if window.exceeded:
            raise VerificationRateLimited(
                f"At most {limit} verifications an hour from {who}; try again in {window.reset_seconds} s.",
                headers={"Retry-After": str(window.reset_seconds)})


def _verification_clean(*, text: str, receipt: str, prompt: str) -> None:
    if not text or len(text) > MAX_TEXT_CHARS:
        raise VerificationInvalid(f"Paste a text of at most {MAX_TEXT_CHARS} characters.", param="text")
    if len(receipt) > MAX_RECEIPT_CHARS:
        raise VerificationInvalid("That receipt is too long to be an Imprint receipt.", param="receipt")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise VerificationInvalid(f"Paste a prompt of at most {MAX_PROMPT_CHARS} characters.", param="prompt")


def verification_submit(*, text: str, receipt: str = "", prompt: str = "", source: str,
                        presenter: Presenter) -> dict:
    """Verify a text (and its receipt and prompt, when given) for anyone, within the caller's limit;
    a receipt that fails raises (or refreshes) one flag about the presenter. Returns
    `verification_run`'s result. Nothing is counted or flagged for an invalid input.

    Raises VerificationInvalid (400) and VerificationRateLimited (429)."""
    text, receipt, prompt = text or "", (receipt or "").strip(), prompt or ""
    _verification_clean(text=text, receipt=receipt, prompt=prompt)
    verification_ratelimit_consume(presenter=presenter)
    result = verification_run(text=text, receipt=receipt or None, prompt=prompt or None)
    flags_from_verification(result=result, text=text, receipt=receipt, source=source, presenter=presenter)
    return result
