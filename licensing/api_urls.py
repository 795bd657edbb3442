"""JSON API of licensing, mounted under /api/v1/licences/."""

from django.urls import path

from . import api

urlpatterns = [
    path("grants/", api.GrantListApi.as_view(), name="api_grant_list"),
    path("grants/<uuid:grant_id>/", api.GrantDetailApi.as_view(), name="api_grant_detail"),
    path("grants/<uuid:grant_id>/licence/", api.GrantLicenceDownloadApi.as_view(), name="api_grant_download"),
    path("keys/", api.ApiKeyListCreateApi.as_view(), name="api_key_list"),
    path("keys/<uuid:key_id>/revoke/", api.ApiKeyRevokeApi.as_view(), name="api_key_revoke"),
    path("terms/preview/", api.TermsPreviewApi.as_view(), name="api_terms_preview"),
    path("terms/<str:sha256>/", api.TermsDetailApi.as_view(), name="api_terms_detail"),
]
