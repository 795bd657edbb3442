"""Billing's own errors: what the payment provider said, without its SDK's classes.

The gateway translates every Stripe error into one of these, so callers (and Celery's autoretry)
depend on billing, never on the SDK."""

from __future__ import annotations

from core.errors import Conflict


class GatewayError(Exception):
    """The payment provider refused or failed a call. `user_message` is the provider's text meant
    for the customer (empty when it gave none); `http_status` its HTTP status, if any."""

    def __init__(self, message: str, *, user_message: str = "", http_status: int | None = None):
        super().__init__(message)
        self.user_message = user_message
        self.http_status = http_status

    @property
    def shown(self) -> str:
        """The text to show a person: the provider's own message for them, else the error."""
        return self.user_message or str(self) or type(self).__name__


class GatewayTransient(GatewayError):
    """Worth retrying as is: the network, a rate limit or a 5xx at the provider."""


class CardDeclined(GatewayError):
    """The customer's card was declined (or needs another card)."""


class SignatureInvalid(GatewayError):
    """A webhook body whose signature does not verify with our secret."""


class HeldPaymentRefused(Conflict):
    """A held payment asked to do what its state does not allow (charge twice, release unpaid money)."""

    code = "held_payment_refused"
