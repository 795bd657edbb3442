"""A listing's model card states the terms on sale, whatever the trainer does to offers or the card."""

import pytest
import yaml

from licensing.selectors import terms_url
from marketplace.services import listing_publish, listing_update, offer_create, offer_revise, offer_withdraw
from tests import factories

pytestmark = pytest.mark.django_db


def _meta(listing) -> dict:
    listing.refresh_from_db()
    return yaml.safe_load(listing.card.split("---\n")[1])


def _offer(trainer, listing, **terms):
    return offer_create(trainer=trainer, listing_id=listing.pk, name=terms.pop("name", "Standard"),
                        terms=factories.terms_raw(**terms), fee_cents=2500)


def test_the_card_follows_the_offers_on_sale(trainer):
    version = factories.model_version(trainer, dataset_licence="cc-by-4.0", rights_holders=("Kestrel Press",))
    listing = listing_publish(trainer=trainer, model_version_id=version.pk, title="Logbook")
    assert "Not offered for sale yet." in listing.card and "rights-holders: Kestrel Press" in listing.card

    first = _offer(trainer, listing, ownership="customer")
    meta = _meta(listing)
    assert (meta["license"], meta["license_link"]) == ("other", terms_url(first.terms_id))
    assert meta["license_name"] == f"imprint-terms-{first.terms_id[:12]}"
    assert "outputs owned: customer" in listing.card

    second = _offer(trainer, listing, name="Research", uses=["research"])
    assert _meta(listing)["license_link"].endswith(f"/models/{listing.pk}/")  # two offers: the listing shows both
    offer_withdraw(trainer=trainer, offer_id=second.pk)
    assert _meta(listing)["license_link"] == terms_url(first.terms_id)

    revised = offer_revise(trainer=trainer, offer_id=first.pk, terms=factories.terms_raw(ownership="licensed"),
                           fee_cents=2500)
    assert _meta(listing)["license_link"] == terms_url(revised.terms_id) != terms_url(first.terms_id)
    offer_withdraw(trainer=trainer, offer_id=revised.pk)
    meta = _meta(listing)
    assert "license_link" not in meta and "Not offered for sale yet." in listing.card


def test_a_trainer_editing_the_card_cannot_change_what_it_says_is_sold(trainer):
    listing = factories.listing(trainer)
    sold = _offer(trainer, listing)
    listing_update(trainer=trainer, listing_id=listing.pk, card="---\nlicense: mit\n---\n# Mine\n\nAll MIT!")
    meta = _meta(listing)
    assert (meta["license"], meta["license_link"]) == ("other", terms_url(sold.terms_id))
    assert "# Mine\n\nAll MIT!" in listing.card
