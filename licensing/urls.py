from django.urls import path

from . import views

app_name = "licensing"
urlpatterns = [
    path("review/", views.review_queue, name="review_queue"),
    # Stable per-version URLs of licence terms (the id is the terms' SHA-256).
    path("terms/<str:sha256>.json", views.terms_json, name="terms_json"),
    path("terms/<str:sha256>/", views.terms_text, name="terms_text"),
]
