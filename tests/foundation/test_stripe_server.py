"""The localstripe fixture is a real Stripe-compatible process the official SDK talks to."""


def test_the_stripe_sdk_talks_to_localstripe(stripe_client):
    customer = stripe_client.v1.customers.create(params={"email": "buyer@example.com"})
    fetched = stripe_client.v1.customers.retrieve(customer.id)
    assert fetched["email"] == "buyer@example.com"
    assert customer.id.startswith("cus_")
