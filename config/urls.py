from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts.api import AccountMeApi
from inference.urls import api_urlpatterns as inference_api_urlpatterns

from .health import health_view

urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    path("health/", health_view, name="health"),
    path("admin/", admin.site.urls),
    path("account/", include("accounts.urls")),
    path("studio/", include("training.urls")),
    path("api/v1/account/", AccountMeApi.as_view(), name="api_account_me"),
    path("api/v1/training/", include("training.api_urls")),
    path("", include("licensing.urls")),
    path("", include("marketplace.urls")),
    path("", include("compliance.urls")),
    path("", include("audit.urls")),
    path("", include("inference.urls")),
    path("", include((inference_api_urlpatterns, "inference_api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api_schema"), name="api_docs"),
]

# An outage met outside a view is a 503 with Retry-After; an API path never gets an HTML page.
handler500 = "core.outages.server_error"
