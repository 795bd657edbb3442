from django.urls import path

from . import views

app_name = "audit"

urlpatterns = [
    path("audit/anchors.json", views.anchors_view, name="anchors"),
]
