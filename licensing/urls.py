"""Pages of licensing (namespace "licensing"): the customer's licences and API keys under
/licences/, and licence terms at stable URLs. Terms URLs already printed in licence stamps and
receipts (/verify/terms/…, /compliance/terms/…) redirect permanently to the one terms page."""

from django.urls import include, path
from django.views.generic import RedirectView

from . import views

app_name = "licensing"
urlpatterns = [
    path("licences/<uuid:grant_id>/", views.grant_detail, name="grant_detail"),
    path("licences/<uuid:grant_id>/licence.json", views.grant_download, name="grant_download"),
    path("licences/keys/", views.api_keys, name="api_keys"),
    path("licences/keys/<uuid:key_id>/revoke/", views.api_key_revoke, name="key_revoke"),
    # Stable per-version URLs of licence terms (the id is the terms' SHA-256).
    path("licences/terms/<str:sha256>.json", views.terms_json, name="terms_json"),
    path("licences/terms/<str:sha256>/", views.terms_text, name="terms_text"),
    path("verify/terms/<str:sha256>/", RedirectView.as_view(pattern_name="licensing:terms_text", permanent=True,
                                                             query_string=True), name="terms_text_stamped"),
    path("compliance/terms/<str:sha256>/", RedirectView.as_view(pattern_name="licensing:terms_text",
                                                                 permanent=True, query_string=True),
         name="terms_text_former"),
    path("compliance/terms/<str:sha256>.json", RedirectView.as_view(pattern_name="licensing:terms_json",
                                                                     permanent=True), name="terms_json_former"),
    path("api/v1/licences/", include("licensing.api_urls")),
]
