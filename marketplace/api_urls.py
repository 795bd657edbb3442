"""JSON API routes of the marketplace (mounted under /api/v1/)."""

from django.urls import path

from . import api

urlpatterns = [
    path("marketplace/listings/", api.CatalogueApi.as_view(), name="api_catalogue"),
    path("marketplace/listings/publish/", api.ListingPublishApi.as_view(), name="api_listing_publish"),
    path("marketplace/listings/<uuid:listing_id>/", api.ListingDetailApi.as_view(), name="api_listing_detail"),
    path("marketplace/listings/<uuid:listing_id>/edit/", api.ListingUpdateApi.as_view(), name="api_listing_update"),
    path("marketplace/listings/<uuid:listing_id>/unpublish/", api.ListingUnpublishApi.as_view(),
         name="api_listing_unpublish"),
    path("marketplace/listings/<uuid:listing_id>/offers/", api.OfferCreateApi.as_view(), name="api_offer_create"),
    path("marketplace/offers/<uuid:offer_id>/revise/", api.OfferReviseApi.as_view(), name="api_offer_revise"),
    path("marketplace/offers/<uuid:offer_id>/purchase/", api.OfferPurchaseApi.as_view(), name="api_offer_purchase"),
    path("marketplace/orders/<uuid:order_id>/", api.OrderDetailApi.as_view(), name="api_order_detail"),
    path("marketplace/orders/<uuid:order_id>/charge/", api.OrderChargeApi.as_view(), name="api_order_charge"),
]
