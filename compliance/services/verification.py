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


def verification_ratelimit_consume(*, presenter: Presenter) -> None:
    """Count one verification against the caller's hourly limit: per API key when one was presented
    (COMPLIANCE_VERIFICATIONS_PER_KEY_PER_HOUR, default 600), else per address
    (COMPLIANCE_VERIFICATIONS_PER_IP_PER_HOUR, default 60). Raises VerificationRateLimited (429,
    with Retry-After)."""
    if presenter.api_key is not None:
        subject, limit = f"key:{presenter.api_key.pk}", settings.COMPLIANCE_VERIFICATIONS_PER_KEY_PER_HOUR
        who = "one API key"
    else:
        subject, limit = f"ip:{presenter.ip or 'unknown'}", settings.COMPLIANCE_VERIFICATIONS_PER_IP_PER_HOUR
        who = "one address"
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
