from django.urls import path

from . import views

app_name = "audit"

urlpatterns = [
    path("audit/anchors.json", views.anchors_view, name="anchors"),
    # Staff: the log itself, beside the compliance review pages.
    path("compliance/audit/", views.log_view, name="log"),
    path("compliance/audit/verify/", views.verify_view, name="verify"),
]
