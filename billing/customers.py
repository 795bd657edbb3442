"""Stripe Customers (who pays) and Connect accounts (who is paid)."""

from __future__ import annotations

from django.db import IntegrityError

from . import gateway
from .models import BillingCustomer, PayoutAccount


def billing_customer_ensure(user) -> str:
    """The user's Stripe Customer id, created at Stripe the first time.

    Raises billing.errors.GatewayError when Stripe fails."""
    existing = BillingCustomer.objects.filter(user=user).first()
    if existing is not None:
        return existing.stripe_customer_id
    customer_id = gateway.customer_create(user_id=user.pk, email=user.email,
                                          name=user.get_full_name() or user.username)
    try:
        BillingCustomer.objects.create(user=user, stripe_customer_id=customer_id)
    except IntegrityError:
        # A concurrent checkout created it first; the idempotency key made Stripe return the same one.
        return BillingCustomer.objects.get(user=user).stripe_customer_id
    return customer_id


def billing_customer_card_set(*, user_id, payment_method: str) -> None:
    """The card the customer saved last is the one later off-session charges use."""
    BillingCustomer.objects.filter(user_id=user_id).update(default_payment_method=payment_method)


def payout_account_active(user) -> str | None:
    """The user's Connect account id once it can receive transfers, else None (then the payouts
    ledger shows what they are owed)."""
    account = PayoutAccount.objects.filter(user=user, transfers_active=True).first()
    return account.stripe_account_id if account else None


def payout_account_onboard(*, trainer, refresh_url: str, return_url: str) -> str:
    """The URL of Stripe's onboarding for the trainer's Connect (Express) account, creating the
    account the first time. Charges go to it only once Stripe reports transfers active
    (account.updated webhook). Raises billing.errors.GatewayError."""
    account = PayoutAccount.objects.filter(user=trainer).first()
    if account is None:
        created = gateway.connect_account_create(user_id=trainer.pk, email=trainer.email)
        account, _ = PayoutAccount.objects.get_or_create(user=trainer, defaults={"stripe_account_id": created})
    return gateway.connect_onboarding_link(account=account.stripe_account_id, refresh_url=refresh_url,
                                           return_url=return_url)


def payout_account_update(*, stripe_account_id: str, transfers_active: bool) -> bool:
    """Stripe says whether the account can receive transfers. False for an unknown account."""
    return bool(PayoutAccount.objects.filter(stripe_account_id=stripe_account_id)
                .update(transfers_active=transfers_active))
