"""A listing without an offer is a draft: out of the catalogue, marked so for its trainer. An offer
card says in words what it allows."""

from __future__ import annotations

from marketplace.selectors import catalogue_listings, offer_facts
from tests import factories


def test_a_listing_without_an_active_offer_is_not_in_the_catalogue(db):
    draft = factories.listing()
    on_sale = factories.listing()
    factories.offer(on_sale)
    withdrawn = factories.listing()
    factories.offer(withdrawn).__class__.objects.filter(listing=withdrawn).update(active=False)

    assert list(catalogue_listings()) == [on_sale]
    assert draft not in catalogue_listings() and withdrawn not in catalogue_listings()


def test_the_trainer_sees_a_draft_until_an_offer_is_added(client, trainer):
    listing = factories.listing(trainer)
    client.force_login(trainer)
    assert "Draft — add an offer to publish" in client.get(f"/sell/listings/{listing.pk}/").content.decode()
    assert "Draft — add an offer to publish" in client.get("/sell/").content.decode()

    factories.offer(listing)
    page = client.get(f"/sell/listings/{listing.pk}/").content.decode()
    assert "Draft — add an offer" not in page and "published" in page


def test_an_offer_says_its_uses_quota_and_ownership_in_words(db):
    offer = factories.offer(factories.listing(), uses=["personal", "research"],
                            quota={"tokens": 20_000, "period": "month"}, ownership="customer")
    facts = dict(offer_facts(offer))
    assert facts["Permitted uses"] == "Personal, non-commercial use, research"
    assert facts["Quota"] == "20,000 tokens a month"
    assert facts["Outputs"].startswith("The customer owns the outputs")
