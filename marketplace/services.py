"""Marketplace writes: publishing listings and offers, and selling them.

A purchase has three steps, because Stripe calls never happen inside a database transaction:
`purchase_start` (order row, then the PaymentIntent or SetupIntent at Stripe, then its id saved),
the customer's card confirmed in the page with Stripe.js, and the signed webhook (billing's
`stripe_event_process`, whose payment_succeeded signal reaches marketplace.receivers), which alone
turns a paid order into an active grant. The money's rows (payouts, subscriptions) are billing's.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.links import absolute_url
from accounts.services import user_require_verified_email
from audit.services import audit_append
from billing.customers import payout_account_active
from billing.gateway import payments_in_test_mode
from billing.models import PayoutEntry, Subscription
from billing.payouts import payout_record, payout_reverse
from billing.subscriptions import subscription_open
from billing.tasks import subscription_cancel, subscription_create
from core.markdown_cards import front_matter_check
from inference.precision_choice import precision_check_request
from licensing.models import Grant
from licensing.services import (
    acceptance_record,
    grant_activate,
    grant_create_pending,
    grant_set_state,
    terms_create,
)
from licensing.selectors import terms_url
from training.modelcard import card_with_offered_terms
from training.models import ModelVersion, TrainingJob
from training.services.access import version_held_exclusively
from training.services.versions import version_memorisation_acknowledge, version_memorisation_unacknowledged

from .errors import (
    ListingInvalid,
    ListingNotFound,
    MemorisationUnacknowledged,
    MeteredOfferHeld,
    ModelVersionNotOwned,
    ModelVersionNotReady,
    OfferNotFound,
    OrderExpired,
    OrderNotFound,
    OrderNotPayable,
    PaymentDeclined,
    PriceInvalid,
    TermsChanged,
    VersionHeldExclusively,
    WrongPaymentProvider,
)
from .models import Listing, Offer, Order
from .pricing import meter_event_name

log = logging.getLogger(__name__)
CURRENCIES = ("usd", "eur", "gbp", "chf", "cad", "aud", "jpy")
MAX_FEE_CENTS = 10_000_000  # 100,000.00 in the currency: a typo guard, not a business rule


# --- Listings --------------------------------------------------------------------------------

def _clean_samples(samples) -> list[str]:
    if samples is None:
        return []
    if not isinstance(samples, list) or not all(isinstance(s, str) for s in samples):
        raise ListingInvalid("Samples are a list of texts.", param="samples")
    return [s.strip() for s in samples if s.strip()][:20]


@transaction.atomic
def listing_publish(*, trainer, model_version_id, title: str, description: str = "",
                    card: str | None = None, samples: list[str] | None = None,
                    acknowledge_memorisation: bool = False) -> Listing:
    """Publish the trainer's own model version (from a succeeded job) as a listing, or publish
    its existing listing again. The card defaults to the version's generated card. Its watermark
    detection power is measured after commit on the inference queue (WATERMARK_POWER_ON_PUBLISH),
    and so is the check of the precision it is to be served at, when that is below fp32.

    A version whose samples copy its training data (a memorisation warning) is published only
    with `acknowledge_memorisation`, recorded once on the version, its card and the audit log.

    Raises ModelVersionNotOwned (also for unknown ids), ModelVersionNotReady, CardInvalid
    (front matter that could expand beyond its text) and MemorisationUnacknowledged."""
    if card is not None:
        front_matter_check(card)
    version = (ModelVersion.objects.select_related("job").select_for_update(of=("self",))
               .filter(pk=model_version_id, owner=trainer).first())
    if version is None:
        raise ModelVersionNotOwned("No such model version of yours.", param="model_version")
    if version.job.state != TrainingJob.State.SUCCEEDED:
        raise ModelVersionNotReady("Only versions of succeeded training jobs can be published.",
                                   param="model_version")
    if version_held_exclusively(version):
        raise VersionHeldExclusively("This version was made for an exclusive commission: it is its customer's "
                                     "alone and cannot be listed.", param="model_version")
    version = _memorisation_acknowledged(version, trainer, acknowledge_memorisation)
    title = (title or "").strip()
    if not title or len(title) > 200:
        raise ListingInvalid("Give the listing a title of at most 200 characters.", param="title")
    listing, _ = Listing.objects.get_or_create(
        model_version=version,
        defaults={"trainer": trainer, "title": title, "card": card or version.card},
    )
    listing.title, listing.description = title, description or listing.description
    if card is not None:
        listing.card = card
    if samples is not None:
        listing.samples = _clean_samples(samples)
    listing.published, listing.published_at = True, listing.published_at or timezone.now()
    listing.card = listing_card_with_terms(listing)
    listing.save()
    audit_append(event="listing.published", actor=trainer, subject=listing,
                 data={"model_version": str(version.pk)})
    # A precision below fp32 is served only once checked on this version: measure it now.
    precision_check_request(version=version)
    if settings.WATERMARK_POWER_ON_PUBLISH:  # buyers see how well the watermark finds its text
        from inference.tasks import watermark_power_measure_task

        transaction.on_commit(lambda: watermark_power_measure_task.delay(str(version.pk)), robust=True)
    return listing


def _memorisation_acknowledged(version: ModelVersion, trainer, acknowledged: bool) -> ModelVersion:
    warning = version_memorisation_unacknowledged(version)
    if warning is None:
        return version
    if not acknowledged:
        raise MemorisationUnacknowledged(
            f"This version's samples copy its training data ({warning['message']}) Publishing it needs your "
            "explicit acknowledgement: acknowledge_memorisation: true in the API, the checkbox on the page, or "
            "--acknowledge-memorisation on the command line.", param="acknowledge_memorisation",
            extra={"figures": warning["figures"]})
    return version_memorisation_acknowledge(version=version, trainer=trainer)


def _own_listing(trainer, listing_id) -> Listing:
    listing = Listing.objects.select_for_update().filter(pk=listing_id, trainer=trainer).first()
    if listing is None:
        raise ListingNotFound("No such listing of yours.", param="listing")
    return listing


@transaction.atomic
def listing_update(*, trainer, listing_id, title: str | None = None, description: str | None = None,
                   card: str | None = None, samples: list[str] | None = None) -> Listing:
    """Edit the trainer's listing (title, description, card, samples). Raises ListingNotFound and
    CardInvalid (front matter that could expand beyond its text)."""
    listing = _own_listing(trainer, listing_id)
    if card is not None:
        front_matter_check(card)
    for field, value in (("title", title), ("description", description), ("card", card)):
        if value is not None:
            setattr(listing, field, value)
    if samples is not None:
        listing.samples = _clean_samples(samples)
    if not listing.title.strip():
        raise ListingInvalid("The title may not be empty.", param="title")
    # An edited card still states what is sold: its licence fields are not the trainer's to change.
    listing.card = listing_card_with_terms(listing)
    listing.save()
    return listing


def listing_card_with_terms(listing: Listing) -> str:
    """The listing's card with the terms of its active offers stated in the Hub's convention (and
    the base model's and data's licences beside them)."""
    from django.urls import reverse

    version = listing.model_version
    offers = [{"name": o.name, "terms_id": o.terms_id, "url": terms_url(o.terms_id), "uses": o.terms.uses,
               "ownership": o.terms.document.get("ownership")}
              for o in listing.offers.filter(active=True).select_related("terms").order_by("created_at")]
    return card_with_offered_terms(
        listing.card, offers=offers,
        listing_url=absolute_url(reverse("marketplace:listing_detail", args=[listing.pk])),
        base_model=version.base_model, base_licence=version.base_licence, dataset_name=version.job.dataset.name,
        dataset_licence=version.dataset_licence, dataset_rights_holders=version.job.dataset.rights_holders or ())


def _listing_card_refresh(listing: Listing) -> None:
    listing.card = listing_card_with_terms(listing)
    listing.save(update_fields=["card", "updated_at"])


@transaction.atomic
def listing_unpublish(*, trainer, listing_id) -> Listing:
    """Hide the listing from the catalogue. Existing grants are untouched and keep working.

    Raises ListingNotFound."""
    listing = _own_listing(trainer, listing_id)
    if listing.published:
        listing.published = False
        listing.save(update_fields=["published", "updated_at"])
        audit_append(event="listing.unpublished", actor=trainer, subject=listing)
    return listing


# --- Offers ----------------------------------------------------------------------------------

def _check_price(fee_cents: int, currency: str, metered_cents_per_1k: int | None) -> None:
    if not isinstance(fee_cents, int) or isinstance(fee_cents, bool) or not 0 <= fee_cents <= MAX_FEE_CENTS:
        raise PriceInvalid(f"The fee is a whole number of cents from 0 to {MAX_FEE_CENTS}.", param="fee_cents")
    if currency not in CURRENCIES:
        raise PriceInvalid(f"The currency must be one of {', '.join(CURRENCIES)}.", param="currency")
    if metered_cents_per_1k is not None and (
        not isinstance(metered_cents_per_1k, int) or not 0 < metered_cents_per_1k <= 100_000
    ):
        raise PriceInvalid("The metered price is 1 to 100000 cents per 1,000 tokens.",
                           param="metered_cents_per_1k")
    if fee_cents == 0 and not metered_cents_per_1k:
        raise PriceInvalid("An offer needs a one-time fee, a metered price, or both.", param="fee_cents")
    if 0 < fee_cents < 50:
        # Stripe's minimum charge is about 50 cents in most currencies.
        raise PriceInvalid("A one-time fee must be at least 50 cents.", param="fee_cents")


@transaction.atomic
def offer_create(*, trainer, listing_id, name: str, terms: dict, fee_cents: int, currency: str = "usd",
                 metered_cents_per_1k: int | None = None) -> Offer:
    """Add a licence offer to the trainer's listing. The terms are validated and checked against
    the model version's base and dataset licences (restrictions of RAIL inputs flow down).

    Raises ListingNotFound, PriceInvalid, TermsInvalid, TermsNotAllowedByInputs."""
    listing = _own_listing(trainer, listing_id)
    currency = (currency or "").lower()
    _check_price(fee_cents, currency, metered_cents_per_1k)
    licence_terms = terms_create(raw=terms, model_version=listing.model_version, created_by=trainer)
    offer = Offer.objects.create(listing=listing, name=(name or "Standard")[:100], terms=licence_terms,
                                 fee_cents=fee_cents, currency=currency,
                                 metered_cents_per_1k=metered_cents_per_1k)
    audit_append(event="offer.created", actor=trainer, subject=offer,
                 data={"terms": licence_terms.sha256, "fee_cents": fee_cents, "currency": currency,
                       "metered_cents_per_1k": metered_cents_per_1k})
    _listing_card_refresh(listing)
    return offer


def offer_is_sold(offer: Offer) -> bool:
    return offer.orders.exclude(state=Order.State.FAILED).exclude(state=Order.State.PENDING).exists()


@transaction.atomic
def offer_revise(*, trainer, offer_id, terms: dict, fee_cents: int, currency: str = "usd",
                 metered_cents_per_1k: int | None = None, name: str | None = None) -> Offer:
    """Change an offer's terms or price. An offer nobody bought is changed in place; a sold offer
    is immutable, so a new version supersedes it and its buyers keep the terms they bought.

    Raises OfferNotFound, PriceInvalid, TermsInvalid, TermsNotAllowedByInputs."""
    offer = (Offer.objects.select_for_update().select_related("listing")
             .filter(pk=offer_id, listing__trainer=trainer, active=True).first())
    if offer is None:
        raise OfferNotFound("No such active offer of yours.", param="offer")
    currency = (currency or "").lower()
    _check_price(fee_cents, currency, metered_cents_per_1k)
    licence_terms = terms_create(raw=terms, model_version=offer.listing.model_version, created_by=trainer)
    if not offer_is_sold(offer):
        offer.terms, offer.fee_cents, offer.currency = licence_terms, fee_cents, currency
        offer.metered_cents_per_1k, offer.name = metered_cents_per_1k, name or offer.name
        offer.save()
        audit_append(event="offer.revised", actor=trainer, subject=offer, data={"terms": licence_terms.sha256})
        _listing_card_refresh(offer.listing)
        return offer
    offer.active = False
    offer.save(update_fields=["active"])
    new = Offer.objects.create(listing=offer.listing, name=name or offer.name, terms=licence_terms,
                               version=offer.version + 1, supersedes=offer, fee_cents=fee_cents,
                               currency=currency, metered_cents_per_1k=metered_cents_per_1k)
    audit_append(event="offer.new_version", actor=trainer, subject=new,
                 data={"supersedes": str(offer.pk), "terms": licence_terms.sha256})
    _listing_card_refresh(offer.listing)
    return new


@transaction.atomic
def offer_withdraw(*, trainer, offer_id) -> Offer:
    """Stop selling an offer. Grants bought under it are untouched. Raises OfferNotFound."""
    offer = Offer.objects.select_for_update().filter(pk=offer_id, listing__trainer=trainer).first()
    if offer is None:
        raise OfferNotFound("No such offer of yours.", param="offer")
    if offer.active:
        offer.active = False
        offer.save(update_fields=["active"])
        audit_append(event="offer.withdrawn", actor=trainer, subject=offer)
        _listing_card_refresh(offer.listing)
    return offer


# --- Purchases -------------------------------------------------------------------------------

@dataclass
class Checkout:
    """What the payment page needs: the order, and for Stripe the intent's client secret."""

    order: Order
    client_secret: str = ""
    intent_kind: str = ""  # "payment" (PaymentIntent) or "setup" (SetupIntent) or "" (test mode)


@transaction.atomic
def order_create(*, customer, offer_id, accepted_terms_sha256: str, ip_address: str | None,
                 user_agent: str = "", provider: str) -> Order:
    """Record the customer's acceptance of exactly the offer's terms and a pending order.

    Raises EmailNotVerified (accounts), OfferNotFound (unknown, withdrawn or unpublished),
    MeteredOfferHeld and TermsChanged."""
    user_require_verified_email(user=customer)
    offer = (Offer.objects.select_related("listing", "terms")
             .filter(pk=offer_id, active=True, listing__published=True).first())
    if offer is None or version_held_exclusively(offer.listing.model_version):
        raise OfferNotFound("This offer is not on sale.", param="offer")
    metered_offer_held_check(customer=customer, offer=offer)
    if accepted_terms_sha256 != offer.terms_id:
        raise TermsChanged("The licence terms changed since you read them; review them again.",
                           param="accepted_terms")
    acceptance = acceptance_record(user=customer, terms=offer.terms, ip_address=ip_address,
                                   user_agent=user_agent)
    order = Order.objects.create(customer=customer, offer=offer, terms=offer.terms, acceptance=acceptance,
                                 provider=provider, amount_cents=offer.fee_cents, currency=offer.currency)
    audit_append(event="order.created", actor=customer, subject=order,
                 data={"offer": str(offer.pk), "amount_cents": offer.fee_cents, "currency": offer.currency,
                       "provider": provider})
    return order


def metered_offer_held_check(*, customer, offer: Offer) -> None:
    """Raises MeteredOfferHeld when `offer` is metered and the customer has a live subscription
    on it. Checked when the order is placed, when it is charged and, under the offer's row lock,
    when it is paid; the subscription's unique constraint is the last line."""
    if offer.is_metered and Subscription.objects.filter(order__customer=customer, order__offer=offer).exclude(
            state=Subscription.State.ENDED).exists():
        raise MeteredOfferHeld("You already hold a metered licence under this offer; its usage is billed "
                               "on your current subscription.", param="offer")


def _paid_effects(order: Order, *, reference: str, via_connect: bool) -> Grant:
    """Inside the caller's transaction: pending grant → active, payout split (billing.fees), audit."""
    grant = grant_create_pending(customer=order.customer, model_version=order.offer.listing.model_version,
                                 terms=order.terms, acceptance=order.acceptance,
                                 price_paid_cents=order.amount_cents, currency=order.currency,
                                 metered=order.offer.is_metered)
    grant, _ = grant_activate(grant_id=grant.pk, reason=f"order {order.pk} paid")
    order.grant, order.state, order.paid_at, order.failure_message = grant, Order.State.PAID, timezone.now(), ""
    order.save(update_fields=["grant", "state", "paid_at", "failure_message"])
    payout_record(order_id=order.pk, payee_id=order.offer.listing.trainer_id, kind=PayoutEntry.Kind.SALE,
                  reference=reference, gross_cents=order.amount_cents, currency=order.currency,
                  via_connect=via_connect)
    audit_append(event="order.paid", subject=order,
                 data={"grant": str(grant.pk), "reference": reference, "amount_cents": order.amount_cents,
                       "currency": order.currency})
    if order.offer.is_metered:
        _metered_billing_open(order)
    return grant


def _metered_billing_open(order: Order) -> None:
    """Inside the activation's transaction: the grant's subscription row, so a metered grant never
    exists without one. With Stripe it is created there after this commit (a Stripe call never runs
    inside a transaction), retried by the task and the sweep until Stripe accepts it."""
    connect = payout_account_active(order.offer.listing.trainer) if order.provider == Order.Provider.STRIPE else None
    sub = subscription_open(order_id=order.pk, grant_id=order.grant_id, provider=order.provider,
                            connect_account=connect or "", customer_id=order.customer_id,
                            meter_event_name=meter_event_name(order.offer))
    if sub.state == sub.State.PENDING:
        transaction.on_commit(lambda: subscription_create.delay(sub.pk), robust=True)


# --- Whether an order may still be paid ---------------------------------------------------------

# Pending is the normal case; failed, because a declined card may be followed by a good one.
PAYABLE_STATES = (Order.State.PENDING, Order.State.FAILED)


def order_expires_at(order: Order) -> datetime | None:
    """When a pending order stops being payable (ORDER_EXPIRY_MINUTES after it was placed; 0: never)."""
    minutes = settings.ORDER_EXPIRY_MINUTES
    return order.created_at + timedelta(minutes=minutes) if minutes and order.created_at else None


def order_payable_check(order: Order) -> None:
    """Everything that must still hold when an order is paid, on every path (local test mode, the
    Stripe charge, the webhook that activates): the order is pending (or failed) and not expired,
    its offer is still on sale on a published listing, and it was placed in the payment mode that is
    configured now. Raises OrderExpired, OrderNotPayable and WrongPaymentProvider (all 409)."""
    expires_at = order_expires_at(order)
    if order.state == Order.State.EXPIRED or (expires_at and timezone.now() >= expires_at):
        raise OrderExpired("This order expired before it was paid; buy the licence again.", param="order")
    if order.state not in PAYABLE_STATES:
        raise OrderNotPayable(f"This order is {order.state} and can no longer be paid.", param="order")
    if version_held_exclusively(order.offer.listing.model_version):
        raise OrderNotPayable("This model was made for one customer alone and is not for sale.", param="order")
    if not order.offer.active or not order.offer.listing.published:
        raise OrderNotPayable("This offer is no longer on sale, so the order cannot be paid.", param="order")
    if (order.provider == Order.Provider.LOCAL_TEST) != payments_in_test_mode():
        raise WrongPaymentProvider("Payments are set up differently than when this order was placed; "
                                   "buy the licence again.", param="order")
    # Two orders placed before either was paid both passed this at order_create.
    metered_offer_held_check(customer=order.customer, offer=order.offer)


ORDER_NOT_PAYABLE = (OrderExpired, OrderNotPayable, WrongPaymentProvider, MeteredOfferHeld)


@contextmanager
def order_failed_when_held(order_id):
    """Around a payment attempt: when the metered-offer rule refuses it, the order is marked failed
    with the rule's message (nothing was charged) before MeteredOfferHeld goes on up."""
    try:
        yield
    except MeteredOfferHeld as exc:
        order_mark_failed(order_id=order_id, message=exc.message)
        raise


@transaction.atomic
def order_mark_paid(*, order_id, reference: str, amount_cents: int, currency: str,
                    via_connect: bool = False) -> tuple[Order, bool]:
    """The payment for `order_id` succeeded: activate its grant (once). Returns (order, changed);
    a second notice for the same order changes nothing. An amount or currency that does not match
    the price the order was placed at is refused and logged (nothing changes).

    Raises OrderExpired, OrderNotPayable, WrongPaymentProvider, MeteredOfferHeld
    (`order_payable_check`)."""
    # The offer and listing rows are locked too, so a withdrawal or unpublish cannot slip in between
    # the check and the activation, and two orders of one metered offer are paid one after the
    # other: the second sees the first's subscription.
    order = (Order.objects.select_for_update(of=("self", "offer", "offer__listing"))
             .select_related("offer__listing__model_version", "terms", "customer").get(pk=order_id))
    if order.state == Order.State.PAID or order.grant_id is not None:
        return order, False
    if (amount_cents, currency.lower()) != (order.amount_cents, order.currency):
        log.error("order %s: paid %s %s but the order is %s %s; not activating",
                  order.pk, amount_cents, currency, order.amount_cents, order.currency)
        return order, False
    order_payable_check(order)
    _paid_effects(order, reference=reference, via_connect=via_connect)
    return order, True


REFUND_PROMISED = "The payment will be refunded."
REFUND_DONE = "The payment was refunded."


@transaction.atomic
def order_mark_refund_due(*, order_id, reference: str, amount_cents: int, currency: str, reason: str,
                          message: str = "", refund_now: bool = False) -> Order:
    """Money arrived at Stripe for an order that was no longer payable (`reason`, and `message`
    for the customer): no grant is activated; the order is marked refund_due, audited and logged,
    so staff refund the payment (`reference`) from the Stripe dashboard; or, with `refund_now`,
    the `marketplace.order_refund` task refunds it after commit (staff only when that fails).
    Idempotent."""
    order = Order.objects.select_for_update().get(pk=order_id)
    if order.state in (Order.State.PAID, Order.State.REFUND_DUE, Order.State.REFUNDED):
        return order
    order.state = Order.State.REFUND_DUE
    why = message or f"Paid after it stopped being payable ({reason})."
    order.failure_message = f"{why[:300 - len(REFUND_PROMISED) - 1]} {REFUND_PROMISED}"
    order.save(update_fields=["state", "failure_message"])
    audit_append(event="order.refund_due", subject=order,
                 data={"reference": reference, "amount_cents": amount_cents, "currency": currency, "reason": reason})
    if refund_now:
        transaction.on_commit(lambda: _send_refund(order.pk), robust=True)
    else:
        log.error("order %s: payment %s of %s %s arrived but the order is not payable (%s); refund it",
                  order.pk, reference, amount_cents, currency, reason)
    return order


ORDER_REFUND_TASK = "marketplace.order_refund"


def _send_refund(order_id) -> None:
    from celery import current_app

    current_app.send_task(ORDER_REFUND_TASK, args=[str(order_id)])


@transaction.atomic
def order_mark_refunded(*, order_id, refund_reference: str) -> tuple[Order, bool]:
    """The payment of a refund_due order was refunded (`refund_reference`): the order is refunded,
    keeping why it was, and audited. Returns (order, changed); anything but refund_due is left."""
    order = Order.objects.select_for_update().get(pk=order_id)
    if order.state != Order.State.REFUND_DUE:
        return order, False
    order.state = Order.State.REFUNDED
    order.failure_message = order.failure_message.replace(REFUND_PROMISED, REFUND_DONE)
    order.save(update_fields=["state", "failure_message"])
    audit_append(event="order.refunded", subject=order, data={"refund": refund_reference,
                                                               "reference": order.stripe_payment_intent_id})
    return order, True


def orders_expire_due(*, now: datetime | None = None) -> int:
    """Mark pending orders older than ORDER_EXPIRY_MINUTES expired (each audited). Returns how many.
    Run by the beat sweep; paying checks the time itself, so a late sweep lets nothing through."""
    minutes = settings.ORDER_EXPIRY_MINUTES
    if not minutes:
        return 0
    cutoff = (now or timezone.now()) - timedelta(minutes=minutes)
    due = Order.objects.filter(state=Order.State.PENDING, created_at__lte=cutoff).values_list("pk", flat=True)
    return sum(_order_expire(order_id=pk, cutoff=cutoff) for pk in list(due[:1000]))


@transaction.atomic
def _order_expire(*, order_id, cutoff: datetime) -> bool:
    changed = Order.objects.filter(pk=order_id, state=Order.State.PENDING, created_at__lte=cutoff).update(
        state=Order.State.EXPIRED, failure_message="This order expired before it was paid.")
    if changed:
        audit_append(event="order.expired", subject=Order.objects.get(pk=order_id), data={})
    return bool(changed)


@transaction.atomic
def order_mark_failed(*, order_id, message: str) -> tuple[Order, bool]:
    """The customer's card was declined (or payment otherwise failed). A paid order stays paid:
    a late failure notice for an attempt that was followed by a successful one changes nothing."""
    order = Order.objects.select_for_update().get(pk=order_id)
    if order.state != Order.State.PENDING:
        return order, False
    order.state, order.failure_message = Order.State.FAILED, message[:300]
    order.save(update_fields=["state", "failure_message"])
    audit_append(event="order.failed", subject=order, data={"message": message})
    return order, True


@transaction.atomic
def order_mark_reversed(*, order_id, state: str, reason: str, reverse_sale: bool = True) -> tuple[Order, bool]:
    """A refund (state refunded: grant revoked) or a dispute (state disputed: grant suspended).
    A refunded metered order's subscription is cancelled at Stripe after commit (no more invoices).
    `reverse_sale=False` when the money refunded was a metered invoice, not the one-time fee."""
    order = Order.objects.select_for_update().get(pk=order_id)
    if order.state == state or order.state not in (Order.State.PAID, Order.State.DISPUTED):
        return order, False
    order.state = state
    order.save(update_fields=["state"])
    if state == Order.State.REFUNDED and reverse_sale:
        payout_reverse(order_id=order.pk, kind=PayoutEntry.Kind.SALE)
    if order.grant_id:
        grant_state = Grant.State.REVOKED if state == Order.State.REFUNDED else Grant.State.SUSPENDED
        grant_set_state(grant_id=order.grant_id, state=grant_state, reason=reason)
    audit_append(event=f"order.{state}", subject=order, data={"reason": reason})
    sub = Subscription.objects.filter(order=order).first()
    if state == Order.State.REFUNDED and sub is not None:
        transaction.on_commit(lambda: subscription_cancel.delay(sub.pk), robust=True)
    return order, True


# --- The local test-mode provider (embedded default, no Stripe keys) -------------------------

# The same test card numbers as Stripe's, so nobody mistakes what they are.
TEST_CARD_SUCCEEDS = "4242424242424242"
TEST_CARD_DECLINED = "4000000000000002"


def order_pay_local_test(*, order_id, customer, card_number: str) -> Order:
    """Pay a local-test-mode order with a test card: 4242… succeeds, anything else is declined.
    No money moves; the page says so. The grant activates through the same `order_mark_paid` as a
    Stripe webhook, so this exercises everything but the network.

    Raises OrderNotFound, WrongPaymentProvider, OrderExpired, OrderNotPayable, PaymentDeclined and
    MeteredOfferHeld (the customer holds the metered offer already: the order is then failed)."""
    order = Order.objects.select_related("offer__listing").filter(pk=order_id, customer=customer).first()
    if order is None:
        raise OrderNotFound("No such order of yours.", param="order")
    if order.provider != Order.Provider.LOCAL_TEST:
        raise WrongPaymentProvider("This order is paid through Stripe, not the local test mode.")
    with order_failed_when_held(order.pk):
        order_payable_check(order)
        digits = "".join(ch for ch in card_number if ch.isdigit())
        if digits != TEST_CARD_SUCCEEDS:
            order_mark_failed(order_id=order.pk, message="Your card was declined.")
            raise PaymentDeclined("Your card was declined. (Local test mode: use 4242 4242 4242 4242.)",
                                  param="card_number")
        order, _ = order_mark_paid(order_id=order.pk, reference=f"testmode_{order.pk}",
                                   amount_cents=order.amount_cents, currency=order.currency)
    return order
