"""JSON API routes of the marketplace and licensing apps (mounted under /api/v1/)."""

from django.urls import path

from licensing import api as licensing_api

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
    path("licences/grants/", licensing_api.GrantListApi.as_view(), name="api_grant_list"),
    path("licences/grants/<uuid:grant_id>/", licensing_api.GrantDetailApi.as_view(), name="api_grant_detail"),
    path("licences/grants/<uuid:grant_id>/licence/", licensing_api.GrantLicenceDownloadApi.as_view(),
         name="api_grant_download"),
    path("licences/keys/", licensing_api.ApiKeyListCreateApi.as_view(), name="api_key_list"),
    path("licences/keys/<uuid:key_id>/revoke/", licensing_api.ApiKeyRevokeApi.as_view(), name="api_key_revoke"),
    path("licences/terms/preview/", licensing_api.TermsPreviewApi.as_view(), name="api_terms_preview"),
    path("licences/terms/<str:sha256>/", licensing_api.TermsDetailApi.as_view(), name="api_terms_detail"),
]
