"""Marketplace pages: catalogue and model pages, checkout, the customer's licences and spend, and
the trainer's listings and dashboard. Views validate input, call one service, render."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.roles import role_required
from billing.customers import payout_account_onboard
from billing.errors import GatewayError, SignatureInvalid
from billing.gateway import payments_in_test_mode
from billing.models import PayoutAccount
from billing.webhooks import webhook_receive
from core import charts
from core.errors import DomainError, domain_error_body
from core.http import client_ip, local_next
from core.links import absolute_url
from inference.power import watermark_power_summary
from inference.precision import precision_choices, precision_summary
from inference.precision_choice import version_precision_set
from licensing.selectors import grants_for_customer
from licensing.terms import render_terms_text
from training.models import ModelVersion, TrainingJob

from . import selectors
from .checkout import checkout_resume, order_charge, purchase_start
from .errors import OrderNotFound
from .forms import (
    COMMON_LICENCE_IDS,
    CatalogueSearchForm,
    ListingEditForm,
    OfferForm,
    PublishForm,
    ServingPrecisionForm,
)
from .models import Listing, Order
from .services import (
    TEST_CARD_DECLINED,
    TEST_CARD_SUCCEEDS,
    listing_publish,
    listing_unpublish,
    listing_update,
    offer_create,
    offer_withdraw,
    order_expires_at,
    order_pay_local_test,
)

log = logging.getLogger(__name__)
CATALOGUE_PAGE_SIZE = 100


# --- Public ----------------------------------------------------------------------------------

def catalogue(request):
    """Public catalogue of published models, searchable by text, base model, use and price."""
    form = CatalogueSearchForm(request.GET or None)
    listings = selectors.catalogue_listings(**form.filters())
    page = Paginator(listings, CATALOGUE_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "marketplace/catalogue.html", {
        "form": form, "page": page, "listings": page.object_list,
        "base_models": selectors.catalogue_base_models(),
    })


def listing_detail(request, listing_id):
    """A model page: card, samples and the offers with their terms side by side."""
    try:
        listing = selectors.listing_public(listing_id=listing_id)
    except DomainError as exc:
        raise Http404(str(exc)) from exc
    from .try_it import MAX_PROMPT_CHARS, try_it_remaining

    offers = [(offer, render_terms_text(offer.terms.document, sha256=offer.terms_id))
              for offer in listing.active_offers]
    return render(request, "marketplace/listing_detail.html", {
        "listing": listing, "offers": offers, "max_prompt": MAX_PROMPT_CHARS,
        "try_remaining": try_it_remaining(visitor=client_ip(request) or "unknown"),
        "watermark_power": watermark_power_summary(listing.model_version),
        "serving_precision": precision_summary(listing.model_version),
    })


@require_POST
def listing_try(request, listing_id):
    """The "try it" box: a short continuation for any visitor, within a daily token budget."""
    from .try_it import try_it_generate

    try:
        listing = selectors.listing_public(listing_id=listing_id)
        result = try_it_generate(listing=listing, prompt=request.POST.get("prompt", ""),
                                 visitor=client_ip(request) or "unknown")
    except DomainError as exc:
        response = JsonResponse(domain_error_body(exc), status=exc.status_code)
        for name, value in exc.headers.items():
            response[name] = value  # retry-after when the trial is busy
        return response
    return JsonResponse(result)


# --- Checkout --------------------------------------------------------------------------------

@role_required("customer")
@require_POST
def offer_buy(request, offer_id):
    if not request.POST.get("accept"):
        messages.error(request, "Tick the box to accept the licence terms before buying.")
        return redirect(local_next(request, request.POST.get("next")) or "marketplace:catalogue")
    try:
        checkout = purchase_start(customer=request.user, offer_id=offer_id,
                                  accepted_terms_sha256=request.POST.get("accepted_terms", ""),
                                  ip_address=client_ip(request),
                                  user_agent=request.headers.get("User-Agent", ""))
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect(local_next(request, request.POST.get("next")) or "marketplace:catalogue")
    return redirect("marketplace:order_pay", order_id=checkout.order.pk)


def _stripe_js_url() -> str:
    # localstripe serves a Stripe.js stand-in; production loads Stripe.js from Stripe itself.
    if settings.STRIPE_API_BASE:
        return settings.STRIPE_API_BASE.rstrip("/") + "/js.stripe.com/v3/"
    return "https://js.stripe.com/v3/"


@role_required("customer")
def order_pay(request, order_id):
    """The payment page: Stripe.js confirms the card in the page, or the local test-mode form."""
    try:
        checkout = checkout_resume(order_id=order_id, customer=request.user)
    except OrderNotFound as exc:
        raise Http404(str(exc)) from exc
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("marketplace:customer_home")
    order = checkout.order
    if order.state == Order.State.PAID:
        return redirect("marketplace:order_detail", order_id=order.pk)
    return render(request, "marketplace/order_pay.html", {
        "order": order, "checkout": checkout, "stripe_js_url": _stripe_js_url(),
        "expires_at": order_expires_at(order),
        "publishable_key": settings.STRIPE_PUBLISHABLE_KEY or "pk_test_imprint_localstripe",
        "test_card_ok": TEST_CARD_SUCCEEDS, "test_card_declined": TEST_CARD_DECLINED,
    })


@role_required("customer")
@require_POST
def order_charge_view(request, order_id):
    """Called by the payment page once Stripe.js has confirmed the card: charge the fee."""
    try:
        charge = order_charge(order_id=order_id, customer=request.user)
    except OrderNotFound as exc:
        raise Http404(str(exc)) from exc
    except DomainError as exc:
        return JsonResponse({"error": {"code": exc.code, "message": exc.message}}, status=exc.status_code)
    return JsonResponse({"status": charge.status, "client_secret": charge.client_secret,
                         "next": reverse("marketplace:order_detail", args=[charge.order.pk])})


@role_required("customer")
@require_POST
def order_pay_test_mode(request, order_id):
    """Local test mode only: pay with a test card. No money moves, and the page says so."""
    try:
        order_pay_local_test(order_id=order_id, customer=request.user,
                             card_number=request.POST.get("card_number", ""))
    except OrderNotFound as exc:
        raise Http404(str(exc)) from exc
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("marketplace:order_pay", order_id=order_id)
    messages.success(request, "Payment received (local test mode). Your licence is active.")
    return redirect("marketplace:order_detail", order_id=order_id)


def _own_order(request, order_id) -> Order:
    order = (Order.objects.select_related("offer__listing", "grant", "terms")
             .filter(pk=order_id, customer=request.user).first())
    if order is None:
        raise Http404("No such order of yours.")
    return order


@role_required("customer")
def order_detail(request, order_id):
    order = _own_order(request, order_id)
    return render(request, "marketplace/order_detail.html", {"order": order, "expires_at": order_expires_at(order)})


@role_required("customer")
def order_status(request, order_id):
    """Polled by the order page until the webhook has settled the order."""
    order = _own_order(request, order_id)
    return JsonResponse({"state": order.state, "message": order.failure_message,
                         "grant": str(order.grant_id) if order.grant_id else None})


@csrf_exempt
@require_POST
def stripe_webhook(request):
    """Stripe's signed events. A missing or wrong signature is a 400 and changes nothing."""
    if not settings.STRIPE_WEBHOOK_SECRET:
        log.error("stripe webhook received but STRIPE_WEBHOOK_SECRET is not set; refusing it")
        return HttpResponseBadRequest("webhook secret not configured")
    try:
        outcome = webhook_receive(body=request.body, signature=request.headers.get("Stripe-Signature", ""))
    except SignatureInvalid as exc:
        log.warning("stripe webhook refused: %s", exc)
        return HttpResponseBadRequest("invalid signature")
    return JsonResponse({"received": True, "outcome": outcome})


# --- The customer's licences and keys --------------------------------------------------------

@role_required("customer")
def customer_home(request):
    """The customer's licences: grants with remaining quota, spend, and recent orders."""
    grants = list(grants_for_customer(request.user))
    metered = selectors.metered_usage_by_grant(grants)
    for grant in grants:
        grant.metered = metered.get(grant.pk)  # (tokens, estimated cents, currency) or None
    return render(request, "marketplace/customer_home.html", {
        "grants": grants,
        "orders": selectors.orders_of_customer(request.user)[:20],
        "spend": selectors.customer_spend(request.user),
    })


@role_required("customer")
def customer_statement(request):
    """Each metered licence's months: usage × unit price next to the invoice, and one-time fees."""
    return render(request, "marketplace/customer_statement.html", {
        "statement": selectors.customer_statement(request.user),
        "orders": selectors.orders_of_customer(request.user).filter(amount_cents__gt=0)[:50],
        "grace_hours": settings.BILLING_GRACE_HOURS, "held": selectors.held_money(request.user),
        "held_payments": selectors.held_payments_of(request.user, role="payer"),
    })


# --- Trainers --------------------------------------------------------------------------------

@role_required("trainer")
def trainer_statement(request):
    """The trainer's money per month: one-time and metered revenue, refunds, fees and payouts."""
    return render(request, "marketplace/trainer_statement.html",
                  {"statement": selectors.trainer_statement(request.user),
                   "payout_account": PayoutAccount.objects.filter(user=request.user).first(),
                   "held": selectors.held_money(request.user),
                   "held_payments": selectors.held_payments_of(request.user, role="payee")})


def _publishable_versions(user):
    return (ModelVersion.objects.filter(owner=user, job__state=TrainingJob.State.SUCCEEDED,
                                        listing__isnull=True).select_related("job"))


@role_required("trainer")
def trainer_dashboard(request):
    """The trainer's listings, sales and revenue over time, active grants and the payout ledger."""
    user = request.user
    sales = selectors.trainer_sales_by_day(user)
    active = selectors.trainer_active_grants_by_day(user)
    tokens = selectors.trainer_tokens_by_day(user)
    labels = [d.strftime("%d %b") for d in sales["days"]]
    return render(request, "marketplace/trainer_dashboard.html", {
        "payout_account": PayoutAccount.objects.filter(user=user).first(),
        "listings": selectors.listings_of_trainer(user),
        "publish_form": PublishForm(versions=_publishable_versions(user)),
        "totals": selectors.trainer_totals(user),
        "tokens": selectors.trainer_tokens_by_model(user),
        "sales_chart": (charts.bar_chart(labels, sales["sales"], title="Sales per day")),
        "revenue_chart": (charts.line_chart(labels, sales["revenue"] or {"(none)": [0] * len(labels)},
                                                     title="Your revenue per model per day",
                                                     fmt=charts.money)),
        "grants_chart": (charts.line_chart(labels, {"active grants": active["active"]},
                                                    title="Active grants")),
        "tokens_chart": (charts.line_chart(labels, tokens["tokens"] or {"(none)": [0] * len(labels)},
                                                    title="Tokens generated per model per day")),
    })


@role_required("trainer")
@require_POST
def payout_account_connect(request):
    """Send the trainer to Stripe's Connect onboarding (not available in local test mode)."""
    if payments_in_test_mode():
        messages.error(request, "Stripe is not configured (local test mode): payouts are shown as owed.")
        return redirect("marketplace:trainer_dashboard")
    here = absolute_url(reverse("marketplace:trainer_dashboard"), request)
    try:
        url = payout_account_onboard(trainer=request.user, refresh_url=here, return_url=here)
    except GatewayError as exc:
        messages.error(request, f"Stripe could not start onboarding: {exc.user_message or exc}")
        return redirect("marketplace:trainer_dashboard")
    return redirect(url)


@role_required("trainer")
@require_POST
def listing_publish_view(request):
    # The page's choice list only holds the trainer's own versions; the service checks ownership.
    version_id = request.POST.get("model_version", "")
    try:
        listing = listing_publish(trainer=request.user, model_version_id=version_id,
                                  title=request.POST.get("title", ""),
                                  description=request.POST.get("description", ""),
                                  acknowledge_memorisation=request.POST.get("acknowledge_memorisation") == "on")
    except DomainError as exc:
        if exc.status_code == 404:
            raise Http404(str(exc)) from exc
        messages.error(request, exc.message)
        return redirect("marketplace:trainer_dashboard")
    messages.success(request, f"{listing.title} is saved as a draft: add an offer below to put it on sale.")
    return redirect("marketplace:listing_edit", listing_id=listing.pk)


def _own_listing_or_404(request, listing_id) -> Listing:
    listing = (Listing.objects.select_related("model_version").prefetch_related("offers__terms")
               .filter(pk=listing_id, trainer=request.user).first())
    if listing is None:
        raise Http404("No such listing of yours.")
    return listing


def _listing_initial(listing: Listing) -> dict:
    return {"title": listing.title, "description": listing.description, "card": listing.card,
            "samples": "\n\n".join(listing.samples)}


def _precision_form(listing: Listing, data=None) -> ServingPrecisionForm:
    return ServingPrecisionForm(data, initial={"precision": listing.model_version.serving_precision},
                                precisions=precision_choices(), default=settings.INFERENCE_PRECISION)


def _edit_page(request, listing: Listing, *, status: int = 200, **forms):
    """The listing's management page; `forms` replaces the blank or current forms it holds."""
    context = {"listing": listing, "form": ListingEditForm(initial=_listing_initial(listing)),
               "offer_form": OfferForm(), "offer_errors": None, "precision_form": _precision_form(listing),
               "serving_precision": precision_summary(listing.model_version), "licence_ids": COMMON_LICENCE_IDS,
               **forms}
    return render(request, "marketplace/listing_edit.html", context, status=status)


@role_required("trainer")
def listing_edit(request, listing_id):
    listing = _own_listing_or_404(request, listing_id)
    form = ListingEditForm(request.POST or None, initial=_listing_initial(listing))
    if request.method == "POST" and form.is_valid():
        try:
            listing_update(trainer=request.user, listing_id=listing.pk, title=form.cleaned_data["title"],
                           description=form.cleaned_data["description"], card=form.cleaned_data["card"],
                           samples=form.samples_list())
        except DomainError as exc:
            form.add_error(exc.param if exc.param in form.fields else None, exc.message)
            return _edit_page(request, listing, status=400, form=form)
        messages.success(request, "Listing saved.")
        return redirect("marketplace:listing_edit", listing_id=listing.pk)
    return _edit_page(request, listing, form=form)


@role_required("trainer")
@require_POST
def listing_precision(request, listing_id):
    """Choose the precision the listing's model version is served at (checked before it is)."""
    listing = _own_listing_or_404(request, listing_id)
    form = _precision_form(listing, request.POST)
    if form.is_valid():
        try:
            summary = version_precision_set(trainer=request.user, version_id=listing.model_version_id,
                                            precision=form.cleaned_data["precision"])
        except DomainError as exc:
            form.add_error("precision", exc.message)
        else:
            messages.success(request, summary["text"])
            return redirect(reverse("marketplace:listing_edit", args=[listing.pk]) + "#serving-precision")
    return _edit_page(request, listing, precision_form=form, status=400)


@role_required("trainer")
@require_POST
def listing_offer_add(request, listing_id):
    listing = _own_listing_or_404(request, listing_id)
    form = OfferForm(request.POST)
    errors = None
    if form.is_valid():
        try:
            offer_create(trainer=request.user, listing_id=listing.pk, name=form.cleaned_data["name"],
                         terms=form.terms_document(), **form.price())
            messages.success(request, "Offer added.")
            return redirect("marketplace:listing_edit", listing_id=listing.pk)
        except DomainError as exc:
            errors = exc.extra.get("fields") or {exc.param or "offer": exc.message}
    return _edit_page(request, listing, offer_form=form, offer_errors=errors, status=400)


@role_required("trainer")
@require_POST
def listing_visibility(request, listing_id):
    listing = _own_listing_or_404(request, listing_id)
    if request.POST.get("action") == "unpublish":
        listing_unpublish(trainer=request.user, listing_id=listing.pk)
        messages.success(request, "Unpublished: hidden from the catalogue; existing licences keep working.")
    else:
        listing_publish(trainer=request.user, model_version_id=listing.model_version_id, title=listing.title)
        messages.success(request, "Published again.")
    return redirect("marketplace:listing_edit", listing_id=listing.pk)


@role_required("trainer")
@require_POST
def offer_withdraw_view(request, offer_id):
    try:
        offer = offer_withdraw(trainer=request.user, offer_id=offer_id)
    except DomainError as exc:
        raise Http404(str(exc)) from exc
    messages.success(request, f"Offer {offer} withdrawn; its buyers keep their licences.")
    return redirect("marketplace:listing_edit", listing_id=offer.listing_id)
