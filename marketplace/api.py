"""Marketplace JSON API: catalogue, publishing (trainers), purchases (customers)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.roles import user_with_role
from core.http import client_ip

from . import selectors
from .checkout import order_charge, purchase_start
from .errors import OrderNotFound
from .models import Listing, Offer, Order
from .services import (
    listing_publish,
    listing_unpublish,
    listing_update,
    offer_create,
    offer_revise,
)


def _trainer(request):
    return user_with_role(request.user, "trainer")


def _customer(request):
    return user_with_role(request.user, "customer")


class OfferOutput(serializers.ModelSerializer):
    terms_sha256 = serializers.CharField(source="terms_id")
    terms = serializers.JSONField(source="terms.document")

    class Meta:
        model = Offer
        fields = ["id", "name", "version", "fee_cents", "currency", "metered_cents_per_1k", "active",
                  "terms_sha256", "terms"]


class ListingOutput(serializers.ModelSerializer):
    offers = serializers.SerializerMethodField()
    base_model = serializers.CharField(source="model_version.base_model")

    class Meta:
        model = Listing
        fields = ["id", "title", "description", "card", "samples", "published", "model_version",
                  "base_model", "offers"]

    @extend_schema_field(OfferOutput(many=True))
    def get_offers(self, listing):
        offers = getattr(listing, "active_offers", None)
        if offers is None:
            offers = [o for o in listing.offers.all() if o.active]
        return OfferOutput(offers, many=True).data


class CatalogueApi(APIView):
    permission_classes = [AllowAny]

    class FilterSerializer(serializers.Serializer):
        q = serializers.CharField(required=False, default="")
        base_model = serializers.CharField(required=False, default="")
        use = serializers.CharField(required=False, default="")
        max_price_cents = serializers.IntegerField(required=False, min_value=0, allow_null=True, default=None)

    @extend_schema(operation_id="marketplace_catalogue", parameters=[FilterSerializer],
                   responses=OpenApiTypes.OBJECT)
    def get(self, request):
        f = self.FilterSerializer(data=request.query_params)
        f.is_valid(raise_exception=True)
        listings = selectors.catalogue_listings(text=f.validated_data["q"], base_model=f.validated_data["base_model"],
                                                use=f.validated_data["use"],
                                                max_price_cents=f.validated_data["max_price_cents"])[:200]
        return Response({"data": ListingOutput(listings, many=True).data})


class ListingDetailApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(operation_id="marketplace_listing_detail", responses=ListingOutput)
    def get(self, request, listing_id):
        return Response(ListingOutput(selectors.listing_public(listing_id=listing_id)).data)


class ListingPublishApi(APIView):
    class ListingPublishInput(serializers.Serializer):
        model_version = serializers.UUIDField()
        title = serializers.CharField(max_length=200)
        description = serializers.CharField(required=False, allow_blank=True, default="")
        card = serializers.CharField(required=False, allow_null=True, default=None)
        samples = serializers.ListField(child=serializers.CharField(), required=False, allow_null=True, default=None)
        acknowledge_memorisation = serializers.BooleanField(
            required=False, default=False, help_text="Required (true) when the version carries a memorisation "
            "warning: its samples copy its training data. Recorded on its card and in the audit log.")

    @extend_schema(operation_id="marketplace_listing_publish", request=ListingPublishInput, responses={201: ListingOutput})
    def post(self, request):
        trainer = _trainer(request)
        data = self.ListingPublishInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        listing = listing_publish(trainer=trainer, model_version_id=v["model_version"], title=v["title"],
                                  description=v["description"], card=v["card"], samples=v["samples"],
                                  acknowledge_memorisation=v["acknowledge_memorisation"])
        return Response(ListingOutput(listing).data, status=201)


class ListingUpdateApi(APIView):
    class ListingUpdateInput(serializers.Serializer):
        title = serializers.CharField(max_length=200, required=False)
        description = serializers.CharField(required=False, allow_blank=True)
        card = serializers.CharField(required=False)
        samples = serializers.ListField(child=serializers.CharField(), required=False)

    @extend_schema(operation_id="marketplace_listing_update", request=ListingUpdateInput, responses=ListingOutput)
    def patch(self, request, listing_id):
        trainer = _trainer(request)
        data = self.ListingUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        listing = listing_update(trainer=trainer, listing_id=listing_id, **data.validated_data)
        return Response(ListingOutput(listing).data)


class ListingUnpublishApi(APIView):
    @extend_schema(operation_id="marketplace_listing_unpublish", request=None, responses=ListingOutput)
    def post(self, request, listing_id):
        listing = listing_unpublish(trainer=_trainer(request), listing_id=listing_id)
        return Response(ListingOutput(listing).data)


class OfferInput(serializers.Serializer):
    name = serializers.CharField(max_length=100, default="Standard")
    terms = serializers.JSONField()
    fee_cents = serializers.IntegerField()
    currency = serializers.CharField(max_length=3, default="usd")
    metered_cents_per_1k = serializers.IntegerField(required=False, allow_null=True, default=None)


class OfferCreateApi(APIView):
    @extend_schema(operation_id="marketplace_offer_create", request=OfferInput, responses={201: OfferOutput})
    def post(self, request, listing_id):
        trainer = _trainer(request)
        data = OfferInput(data=request.data)
        data.is_valid(raise_exception=True)
        offer = offer_create(trainer=trainer, listing_id=listing_id, **data.validated_data)
        return Response(OfferOutput(offer).data, status=201)


class OfferReviseApi(APIView):
    @extend_schema(operation_id="marketplace_offer_revise", request=OfferInput, responses=OfferOutput)
    def post(self, request, offer_id):
        trainer = _trainer(request)
        data = OfferInput(data=request.data)
        data.is_valid(raise_exception=True)
        offer = offer_revise(trainer=trainer, offer_id=offer_id, **data.validated_data)
        return Response(OfferOutput(offer).data)


class OrderOutput(serializers.ModelSerializer):
    class Meta:
        model = Order
        fields = ["id", "offer", "state", "provider", "amount_cents", "currency", "grant", "failure_message",
                  "created_at", "paid_at"]


class OfferPurchaseApi(APIView):
    """Start a purchase. Returns the order and, with Stripe, the client secret that Stripe.js
    confirms (`intent_kind` "payment" or "setup"); the grant activates on the webhook."""

    class OfferPurchaseInput(serializers.Serializer):
        accepted_terms_sha256 = serializers.CharField(max_length=64)

    @extend_schema(operation_id="marketplace_offer_purchase", request=OfferPurchaseInput,
                   responses={201: OpenApiTypes.OBJECT})
    def post(self, request, offer_id):
        customer = _customer(request)
        data = self.OfferPurchaseInput(data=request.data)
        data.is_valid(raise_exception=True)
        checkout = purchase_start(customer=customer, offer_id=offer_id,
                                  accepted_terms_sha256=data.validated_data["accepted_terms_sha256"],
                                  ip_address=client_ip(request),
                                  user_agent=request.headers.get("User-Agent", ""))
        return Response({"order": OrderOutput(checkout.order).data, "client_secret": checkout.client_secret,
                         "intent_kind": checkout.intent_kind}, status=201)


class OrderDetailApi(APIView):
    @extend_schema(operation_id="marketplace_order_detail", responses=OrderOutput)
    def get(self, request, order_id):
        order = Order.objects.filter(pk=order_id, customer=request.user).first()
        if order is None:
            raise OrderNotFound("No such order.", param="order")
        return Response(OrderOutput(order).data)


class OrderChargeApi(APIView):
    """After Stripe.js confirmed the card (confirmCardSetup): charge the fee on it. Returns
    "processing" (the webhook activates the grant), "requires_action" (run confirmCardPayment with
    `client_secret`) or "card_saved" (a metered offer without a fee, active now)."""

    @extend_schema(operation_id="marketplace_order_charge", request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, order_id):
        charge = order_charge(order_id=order_id, customer=_customer(request))
        return Response({"status": charge.status, "client_secret": charge.client_secret,
                         "order": OrderOutput(charge.order).data})
