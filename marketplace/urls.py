from django.urls import include, path

from . import views

app_name = "marketplace"
urlpatterns = [
    path("models/", views.catalogue, name="catalogue"),
    path("models/<uuid:listing_id>/", views.listing_detail, name="listing_detail"),
    path("models/<uuid:listing_id>/try/", views.listing_try, name="listing_try"),
    path("offers/<uuid:offer_id>/buy/", views.offer_buy, name="offer_buy"),
    path("orders/<uuid:order_id>/", views.order_detail, name="order_detail"),
    path("orders/<uuid:order_id>/pay/", views.order_pay, name="order_pay"),
    path("orders/<uuid:order_id>/charge/", views.order_charge_view, name="order_charge"),
    path("orders/<uuid:order_id>/pay/test-mode/", views.order_pay_test_mode, name="order_pay_test_mode"),
    path("orders/<uuid:order_id>/status.json", views.order_status, name="order_status"),
    path("stripe/webhook/", views.stripe_webhook, name="stripe_webhook"),
    path("licences/", views.customer_home, name="customer_home"),
    path("licences/statement/", views.customer_statement, name="customer_statement"),
    path("sell/", views.trainer_dashboard, name="trainer_dashboard"),
    path("sell/statement/", views.trainer_statement, name="trainer_statement"),
    path("sell/payouts/connect/", views.payout_account_connect, name="payout_account_connect"),
    path("sell/publish/", views.listing_publish_view, name="listing_publish"),
    path("sell/listings/<uuid:listing_id>/", views.listing_edit, name="listing_edit"),
    path("sell/listings/<uuid:listing_id>/offers/", views.listing_offer_add, name="listing_offer_add"),
    path("sell/listings/<uuid:listing_id>/visibility/", views.listing_visibility, name="listing_visibility"),
    path("sell/listings/<uuid:listing_id>/precision/", views.listing_precision, name="listing_precision"),
    path("sell/offers/<uuid:offer_id>/withdraw/", views.offer_withdraw_view, name="offer_withdraw"),
    path("api/v1/", include("marketplace.api_urls")),
]
