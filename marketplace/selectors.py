"""Marketplace reads. Catalogue queries are a fixed number whatever the number of listings:
one for the page of listings (with their model version and trainer joined, the lowest price
annotated) and one prefetch for the offers and their terms."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Count, Exists, Min, OuterRef, Prefetch, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from billing.models import PayoutEntry
from billing.selectors import metered_estimate_cents
from licensing.models import Grant
from licensing.terms import OWNERSHIP_DEFAULT, OWNERSHIP_TEXT, USE_LABELS, licence_label

from .errors import ListingNotFound
from .models import Listing, Offer, Order


def _active_offers() -> QuerySet[Offer]:
    return Offer.objects.filter(active=True).select_related("terms").order_by("fee_cents", "created_at")


def _on_sale() -> QuerySet[Listing]:
    """Published listings with at least one offer to buy: one without is still a draft."""
    return Listing.objects.filter(published=True).filter(
        Exists(Offer.objects.filter(listing=OuterRef("pk"), active=True)))


def catalogue_listings(*, text: str = "", base_model: str = "", use: str = "",
                       max_price_cents: int | None = None) -> QuerySet[Listing]:
    """Listings on sale (published, with an active offer) matching the filters, each with
    `active_offers` prefetched and `min_fee_cents` (the lowest one-time fee of its active offers)
    annotated."""
    qs = _on_sale()
    if text:
        qs = qs.filter(Q(title__icontains=text) | Q(description__icontains=text) | Q(card__icontains=text))
    if base_model:
        qs = qs.filter(model_version__base_model__iexact=base_model)
    offer_filter = Q(offers__active=True)
    if use:
        # uses_index is " personal research ": the spaces make "personal" not match "impersonal".
        offer_filter &= Q(offers__terms__uses_index__contains=f" {use} ")
    if max_price_cents is not None:
        offer_filter &= Q(offers__fee_cents__lte=max_price_cents)
    if use or max_price_cents is not None:
        qs = qs.filter(pk__in=Listing.objects.filter(offer_filter).values("pk"))
    return (
        qs.select_related("model_version", "trainer")
        .annotate(min_fee_cents=Min("offers__fee_cents", filter=Q(offers__active=True)))
        .prefetch_related(Prefetch("offers", queryset=_active_offers(), to_attr="active_offers"))
        .order_by("-published_at", "-created_at")
    )


def catalogue_base_models() -> list[str]:
    return list(_on_sale().order_by()
                .values_list("model_version__base_model", flat=True).distinct())


def listing_public(*, listing_id) -> Listing:
    """A published listing with its offers. Raises ListingNotFound (unpublished ones included)."""
    listing = (Listing.objects.filter(pk=listing_id, published=True)
               .select_related("model_version", "trainer")
               .prefetch_related(Prefetch("offers", queryset=_active_offers(), to_attr="active_offers"))
               .first())
    if listing is None:
        raise ListingNotFound("No such model on sale.")
    return listing


def offer_facts(offer: Offer) -> list[tuple[str, str]]:
    """What an offer's terms allow, in words, as (label, sentence) pairs: uses, quota, rate,
    ownership of outputs, samples, duration, the licence, the attribution asked for and each
    restriction."""
    doc = offer.terms.document
    uses = [USE_LABELS.get(u, u) for u in doc.get("uses") or []]
    quota = doc.get("quota") or {}
    per = {"month": " a month", "total": " in total"}.get(quota.get("period"), "")
    samples = doc.get("samples") or {}
    days = doc.get("duration_days")
    ownership = OWNERSHIP_TEXT.get(doc.get("ownership") or OWNERSHIP_DEFAULT, "")
    return [
        # Commas only: a label may hold "and" itself ("teaching and education").
        ("Permitted uses", ", ".join(uses).capitalize() if uses else "None named"),
        ("Quota", f"{quota['tokens']:,} tokens{per}" if quota.get("tokens") else "No quota"),
        ("Rate", f"{doc['rate_limit_per_minute']:,} requests a minute" if doc.get("rate_limit_per_minute")
         else "No limit"),
        ("Outputs", ownership[:1].upper() + ownership[1:]),
        ("Samples", ("May be published" + (" and resold" if samples.get("resell") else ", not resold"))
         if samples.get("publish") else "May not be published"),
        ("Duration", f"{days:,} days from purchase" if days else "Perpetual"),
        ("Licence", licence_label(doc["licence_id"]) if doc.get("licence_id") and doc["licence_id"] != "custom"
         else "Imprint licence (custom terms)"),
    ] + ([("Attribution", f"“{doc['attribution']}”")] if doc.get("attribution") else []) + [
        ("Restriction", r) for r in doc.get("restrictions") or []]


def listings_of_trainer(trainer) -> QuerySet[Listing]:
    return (Listing.objects.filter(trainer=trainer).select_related("model_version")
            .prefetch_related(Prefetch("offers", queryset=Offer.objects.select_related("terms")
                                       .order_by("-active", "name", "-version")))
            .annotate(paid_orders=Count("offers__orders", filter=Q(offers__orders__state=Order.State.PAID)))
            .order_by("-created_at"))


def orders_of_customer(user) -> QuerySet[Order]:
    return Order.objects.filter(customer=user).select_related("offer__listing", "grant").order_by("-created_at")


def customer_spend(user) -> dict[str, int]:
    """Cents paid per currency: paid orders and disputed ones (still charged); refunds are not spend."""
    rows = (Order.objects.filter(customer=user, state__in=[Order.State.PAID, Order.State.DISPUTED])
            .values("currency").annotate(total=Sum("amount_cents")).order_by("currency"))
    return {r["currency"]: r["total"] for r in rows}


def _days(days: int) -> list[date]:
    today = timezone.now().date()
    return [today - timedelta(days=n) for n in range(days - 1, -1, -1)]


def trainer_sales_by_day(trainer, *, days: int = 30) -> dict:
    """{"days": [...], "sales": [count...], "revenue": {model title: [trainer cents per day]}}."""
    since = timezone.now() - timedelta(days=days)
    axis = _days(days)
    sales = dict.fromkeys(axis, 0)
    revenue: dict[str, dict[date, int]] = defaultdict(lambda: dict.fromkeys(axis, 0))
    rows = (PayoutEntry.objects.filter(trainer=trainer, created_at__gte=since)
            .exclude(kind=PayoutEntry.Kind.REFUND).annotate(day=TruncDate("created_at"))
            .values("day", "order__offer__listing__title")
            .annotate(n=Count("id"), cents=Sum("trainer_cents")).order_by("day"))
    for row in rows:
        if row["day"] in sales:
            sales[row["day"]] += row["n"]
            revenue[row["order__offer__listing__title"]][row["day"]] += row["cents"]
    return {"days": axis, "sales": [sales[d] for d in axis],
            "revenue": {title: [per_day[d] for d in axis] for title, per_day in sorted(revenue.items())}}


def trainer_active_grants_by_day(trainer, *, days: int = 30) -> dict:
    """Grants active at the end of each day, over the trainer's model versions."""
    axis = _days(days)
    grants = list(Grant.objects.filter(model_version__owner=trainer, activated_at__isnull=False)
                  .values_list("activated_at", "expires_at", "state"))
    counts = []
    for day in axis:
        end = timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))
        counts.append(sum(1 for start, expires, _ in grants if start < end and (expires is None or expires >= end)))
    # Revoked/suspended grants are not in use today, whatever their history.
    if counts:
        counts[-1] = sum(1 for *_, state in grants if state == Grant.State.ACTIVE)
    return {"days": axis, "active": counts}


def trainer_totals(trainer) -> dict:
    """Per currency: sales, gross, platform fee, trainer share, how much went through Connect, and
    what is owed. Refund entries count negatively."""
    rows = (PayoutEntry.objects.filter(trainer=trainer).values("currency", "kind")
            .annotate(gross=Sum("gross_cents"), fee=Sum("platform_fee_cents"), share=Sum("trainer_cents"),
                      via_connect=Sum("trainer_cents", filter=Q(via_connect=True)), n=Count("id"))
            .order_by("currency", "kind"))
    totals: dict[str, dict] = {}
    for row in rows:
        sign = -1 if row["kind"] == PayoutEntry.Kind.REFUND else 1
        t = totals.setdefault(row["currency"], {"sales": 0, "refunds": 0, "gross": 0, "fee": 0, "share": 0,
                                                "via_connect": 0})
        t["refunds" if sign < 0 else "sales"] += row["n"]
        for field in ("gross", "fee", "share", "via_connect"):
            t[field] += sign * (row[field] or 0)
    for t in totals.values():
        t["owed"] = t["share"] - t["via_connect"]
    return totals


def trainer_tokens_by_model(trainer) -> list[dict]:
    """Tokens generated under the trainer's grants, per model version (from the grants' counters)."""
    return list(Grant.objects.filter(model_version__owner=trainer).values("model_version__name")
                .annotate(tokens=Sum("used_tokens"), grants=Count("id")).order_by("model_version__name"))


def trainer_tokens_by_day(trainer, *, days: int = 30) -> dict:
    """Tokens generated per day per model, from the inference usage ledger."""
    from inference.models import UsageEntry

    axis = _days(days)
    since = timezone.now() - timedelta(days=days)
    per_model: dict[str, dict[date, int]] = defaultdict(lambda: dict.fromkeys(axis, 0))
    rows = (UsageEntry.objects.filter(grant__model_version__owner=trainer, created_at__gte=since)
            .annotate(day=TruncDate("created_at")).values("day", "grant__model_version__name")
            .annotate(tokens=Sum("total_tokens")).order_by("day"))
    for row in rows:
        if row["day"] in per_model[row["grant__model_version__name"]]:
            per_model[row["grant__model_version__name"]][row["day"]] += row["tokens"]
    return {"days": axis, "tokens": {name: [d[day] for day in axis] for name, d in sorted(per_model.items())}}


def metered_usage_by_grant(grants) -> dict:
    """{grant id: (ledger tokens, estimated cents)} for grants bought on metered offers."""
    from inference.models import UsageEntry

    prices = {o.grant_id: (o.offer.metered_cents_per_1k, o.currency)
              for o in Order.objects.filter(grant__in=grants, offer__metered_cents_per_1k__isnull=False)
              .select_related("offer")}
    if not prices:
        return {}
    rows = (UsageEntry.objects.filter(grant_id__in=prices).values("grant_id")
            .annotate(tokens=Sum("total_tokens")).order_by())
    return {r["grant_id"]: (r["tokens"], metered_estimate_cents(r["tokens"], prices[r["grant_id"]][0]),
                            prices[r["grant_id"]][1]) for r in rows}


# --- Statements --------------------------------------------------------------------------------

def _usage_tokens(grant_id, start, end) -> int:
    from inference.models import UsageEntry

    rows = UsageEntry.objects.filter(grant_id=grant_id, created_at__gte=start)
    if end is not None:
        rows = rows.filter(created_at__lt=end)
    return rows.aggregate(t=Sum("total_tokens"))["t"] or 0


def customer_statement(user) -> list[dict]:
    """Per metered licence of the customer: each month (invoice period) with the ledger's tokens,
    the unit price, tokens × price, and the invoice (tokens billed, amount, state); the current
    month so far comes first, not invoiced yet. Integer cents throughout."""
    from billing.models import Subscription

    subs = (Subscription.objects.filter(order__customer=user).select_related("order__offer__listing", "grant")
            .prefetch_related("invoices").order_by("-created_at"))
    statement = []
    for sub in subs:
        price, currency = sub.order.offer.metered_cents_per_1k, sub.order.offer.currency
        months = []
        if sub.current_period_start and sub.state != sub.State.ENDED:
            tokens = _usage_tokens(sub.grant_id, sub.current_period_start, None)
            months.append({"start": sub.current_period_start, "end": None, "tokens": tokens,
                           "usage_cents": metered_estimate_cents(tokens, price), "invoice": None})
        for invoice in sorted(sub.invoices.all(), key=lambda i: i.period_start, reverse=True):
            tokens = _usage_tokens(sub.grant_id, invoice.period_start, invoice.period_end)
            months.append({"start": invoice.period_start, "end": invoice.period_end, "tokens": tokens,
                           "usage_cents": metered_estimate_cents(tokens, price), "invoice": invoice})
        statement.append({"subscription": sub, "listing": sub.order.offer.listing, "offer": sub.order.offer,
                          "price": price, "currency": currency, "months": months,
                          "invoiced_cents": sum(i.amount_cents for i in sub.invoices.all()),
                          "paid_cents": sum(i.amount_cents for i in sub.invoices.all() if i.state == "paid")})
    return statement


def _month(moment) -> date:
    return moment.astimezone(UTC).date().replace(day=1) if moment else None


def trainer_statement(trainer) -> dict:
    """The trainer's money per month and currency, from the payouts ledger: one-time revenue,
    metered revenue, refunds, the platform's fees, the trainer's share, what Stripe Connect paid out
    and what is owed. Every figure is integer cents, and share = gross − refunds − fees holds on
    every row. Returns {"months": [row, ...], "totals": {currency: row}, "entries": [...]}."""
    fields = ("one_time", "metered", "refunds", "fee", "share", "via_connect", "owed")
    months: dict[tuple, dict] = {}
    totals: dict[str, dict] = {}
    entries = list(PayoutEntry.objects.filter(trainer=trainer).select_related("order__offer__listing",
                                                                              "held_payment__commission")
                   .order_by("-created_at"))
    for entry in entries:
        sign = -1 if entry.kind == PayoutEntry.Kind.REFUND else 1
        for row in (months.setdefault((_month(entry.created_at), entry.currency), dict.fromkeys(fields, 0)),
                    totals.setdefault(entry.currency, dict.fromkeys(fields, 0))):
            # A commission's release is one-time revenue too (its entry names the held payment).
            column = {"sale": "one_time", "commission": "one_time", "metered": "metered",
                      "refund": "refunds"}[entry.kind]
            row[column] += entry.gross_cents
            row["fee"] += sign * entry.platform_fee_cents
            row["share"] += sign * entry.trainer_cents
            row["via_connect"] += sign * entry.trainer_cents if entry.via_connect else 0
            row["owed"] = row["share"] - row["via_connect"]
    ordered = [{"month": month, "currency": currency, **row}
               for (month, currency), row in sorted(months.items(), key=lambda kv: (kv[0][0], kv[0][1]), reverse=True)]
    return {"months": ordered, "totals": totals, "entries": entries[:200]}


# --- Commissions ---------------------------------------------------------------------------------

def commission_board(user) -> dict:
    """Open commissions (for trainers), the customer's own, and those the trainer proposed for."""
    from .models import Commission

    base = Commission.objects.select_related("customer", "dataset_upload__dataset").order_by("deadline")
    return {
        "open": list(base.filter(state=Commission.State.OPEN)) if "trainer" in user.roles else [],
        "mine": list(base.filter(customer=user)),
        "proposed": list(base.filter(proposals__trainer=user).distinct()),
    }


# How each audited step of a commission reads on its page: {who} is the account that acted (from
# the entry's actor), {amount} the entry's money; the audit log keeps the machine codes.
_TIMELINE_WORDS = {
    "commission.posted": "Posted by {who} with a budget of {amount}",
    "commission.proposal": "Proposal received from {who}: {amount}",
    "commission.awarded": "{who} accepted {trainer}'s proposal: {amount}",
    "commission.funded": "Training can start: the payment is held",
    "commission.delivered": "Model delivered by {who}; the review window is open",
    "commission.revision_requested": "{who} asked for a revision",
    "commission.disputed": "{who} disputed the delivery",
    "commission.completed": "Completed",
    "commission.cancelled": "Cancelled",
    "held_payment.opened": "Payment requested from {who}: {amount}",
    "held_payment.held": "Payment held: {amount}",
    "held_payment.failed": "Payment failed",
    "held_payment.released": "Payment released to {trainer}: {amount} (less the platform fee)",
    "held_payment.refunded": "Payment refunded to the customer",
}


def commission_timeline(commission) -> list[dict]:
    """The commission's audited events, oldest first, with those of the money held for it, each
    as words (`text`) and the reason or note given (`detail`)."""
    from audit.models import AuditEntry
    from core.templatetags.money import money
    from core.templatetags.words import words

    refs = Q(subject_type="Commission", subject_id=str(commission.pk))
    if commission.held_payment_id:
        refs |= Q(subject_type="HeldPayment", subject_id=str(commission.held_payment_id))
    entries = list(AuditEntry.objects.filter(refs).order_by("id"))
    names = _usernames({e.actor_ref for e in entries} | {e.data.get("trainer", "") for e in entries})
    trainer = commission.accepted_proposal.trainer.username if commission.accepted_proposal_id else "the trainer"
    rows = []
    for entry in entries:
        data = entry.data or {}
        cents = next((data[k] for k in ("amount_cents", "price_cents", "budget_cents") if k in data), None)
        text = _TIMELINE_WORDS.get(entry.event, "").format(
            who=names.get(entry.actor_ref, "Imprint"), trainer=names.get(data.get("trainer", ""), trainer),
            amount=money(cents, data.get("currency") or commission.currency))
        rows.append({"created_at": entry.created_at, "event": entry.event, "text": text or words(entry.event).capitalize(),
                     "detail": data.get("reason") or data.get("note") or ""})
    return rows


def _usernames(refs) -> dict[str, str]:
    from accounts.models import User

    ids = [ref.split(":", 1)[1] for ref in refs if ref and ref.startswith("user:")]
    return {f"user:{pk}": name for pk, name in User.objects.filter(pk__in=ids).values_list("pk", "username")}


def commission_dataset_shown(commission, user) -> bool:
    """Who sees the customer's dataset statistics: the customer, the chosen trainer while lent, and
    proposing trainers when the customer allowed it. Never the file itself."""
    if commission.dataset is None:
        return False
    chosen = commission.accepted_proposal.trainer_id if commission.accepted_proposal_id else None
    if user.pk in (commission.customer_id, chosen) or user.is_staff:
        return True
    return commission.show_dataset_stats and commission.state == "open"


def held_money(user) -> dict:
    """Money the platform holds now that the user paid (as customer) or is to be paid (as trainer)."""
    from billing.held import held_payments_total

    return {"paid_in": held_payments_total(user=user, role="payer"),
            "owed_to_you": held_payments_total(user=user, role="payee")}


def held_payments_of(user, *, role: str) -> list:
    """The user's held payments of commissions (as payer or payee), newest first: the platform's
    liability while held, then where the money went."""
    from billing.models import HeldPayment

    return list(HeldPayment.objects.filter(**{role: user}).select_related("commission").order_by("-created_at")[:50])
