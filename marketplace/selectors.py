"""Marketplace reads. Catalogue queries are a fixed number whatever the number of listings:
one for the page of listings (with their model version and trainer joined, the lowest price
annotated) and one prefetch for the offers and their terms."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta

from django.db.models import Count, Min, Prefetch, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from licensing.models import Grant

from .errors import ListingNotFound
from .models import Listing, Offer, Order, PayoutEntry


def _active_offers() -> QuerySet[Offer]:
    return Offer.objects.filter(active=True).select_related("terms").order_by("fee_cents", "created_at")


def catalogue_listings(*, text: str = "", base_model: str = "", use: str = "",
                       max_price_cents: int | None = None) -> QuerySet[Listing]:
    """Published listings matching the filters, each with `active_offers` prefetched and
    `min_fee_cents` (the lowest one-time fee of its active offers) annotated."""
    qs = Listing.objects.filter(published=True)
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
    return list(Listing.objects.filter(published=True).order_by()
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


def metered_estimate_cents(tokens: int, cents_per_1k: int | None) -> int:
    """What Stripe will bill for `tokens` at `cents_per_1k`, as an estimate rounded to the cent
    (half up). Stripe computes the real amount from the meter; we never charge from this."""
    if not cents_per_1k:
        return 0
    return (tokens * cents_per_1k + 500) // 1000


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
