"""JSON API routes of the marketplace (mounted under /api/v1/)."""

from django.urls import path

from . import api, commission_api

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
    path("marketplace/commissions/", commission_api.CommissionListCreateApi.as_view(), name="api_commissions"),
    path("marketplace/commissions/<uuid:commission_id>/", commission_api.CommissionDetailApi.as_view(),
         name="api_commission_detail"),
    path("marketplace/commissions/<uuid:commission_id>/proposals/", commission_api.ProposalCreateApi.as_view(),
         name="api_commission_propose"),
    path("marketplace/proposals/<uuid:proposal_id>/accept/", commission_api.ProposalAcceptApi.as_view(),
         name="api_proposal_accept"),
    path("marketplace/commissions/<uuid:commission_id>/pay-test-mode/",
         commission_api.CommissionPayTestModeApi.as_view(), name="api_commission_pay_test_mode"),
    path("marketplace/commissions/<uuid:commission_id>/<str:action>/", commission_api.CommissionActionApi.as_view(),
         name="api_commission_action"),
]
