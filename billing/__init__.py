"""Billing: the one home for money.

- `gateway` is the only module that talks to Stripe (plain dataclasses in, plain dataclasses and
  billing's own errors out); `fees` holds the platform fee rule; `payouts` writes the ledger.
- `subscriptions` runs a metered grant's monthly billing, `metering` delivers inference's meter
  events, `local` is the test mode without Stripe keys, `reconciliation` checks they all agree.
- `webhooks` verifies, de-duplicates and dispatches Stripe's events; facts about payments leave
  through `signals`, which the marketplace (or any app above) receives.
"""
