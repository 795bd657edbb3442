from django.urls import path

from . import views

app_name = "marketplace"
urlpatterns = [
    path("models/", views.catalogue, name="catalogue"),
    path("licences/", views.customer_home, name="customer_home"),
]
