"""Listings, licence offers and purchases (the money itself is the billing app's).

Payments (settings from the environment, see config/settings.py):
- STRIPE_SECRET_KEY unset: the embedded default's local test-mode provider (labelled on every page;
  test cards 4242… succeed, others decline; grants activate through the same services).
- STRIPE_SECRET_KEY, STRIPE_PUBLISHABLE_KEY, STRIPE_WEBHOOK_SECRET set: Stripe. Register the webhook
  endpoint /stripe/webhook/ for payment_intent.succeeded, payment_intent.payment_failed,
  setup_intent.succeeded, charge.refunded, charge.dispute.created and account.updated.
- STRIPE_API_BASE points the SDK (and the page's Stripe.js) at localstripe for local development.

Flow: checkout.purchase_start (order + SetupIntent) → Stripe.js confirmCardSetup in the page →
checkout.order_charge (PaymentIntent on the saved card; 3-D Secure via confirmCardPayment) →
billing.webhooks (payment_intent.succeeded, signature checked, de-duplicated) → the payment_succeeded
signal → receivers.payment_succeeded → grant active + payout entry (billing.payouts) + audit.
Metered offers are post-paid through Billing Meters: pricing.py creates each offer's meter and price
and tells billing what a grant is billed at; billing.metering delivers inference's meter events.
"""
