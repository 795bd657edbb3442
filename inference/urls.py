"""URLs of inference. config/urls.py includes `api_urlpatterns` at the site root (the OpenAI-style
paths /v1/... must sit there for the `openai` client), and `urlpatterns` under the "inference"
namespace for the pages."""

from django.urls import path

from . import api, views

app_name = "inference"

urlpatterns = [
    path("playground/", views.playground, name="playground"),
]

api_urlpatterns = [
    path(".well-known/jwks.json", views.jwks_view, name="jwks"),
    path("api/v1/generations", api.GenerationCreateApi.as_view(), name="api_generations"),
    path("v1/completions", api.CompletionCreateApi.as_view(), name="openai_completions"),
    path("v1/models", api.ModelListApi.as_view(), name="openai_models"),
    path("v1/chat/completions", api.ChatCompletionApi.as_view(), name="openai_chat_completions"),
    # Beside the trainer's other version endpoints (training.api_urls); served here, where the
    # precisions and their checks live.
    path("api/v1/training/versions/<uuid:pk>/serving-precision/", api.VersionServingPrecisionApi.as_view(),
         name="training_api_version_serving_precision"),
]
