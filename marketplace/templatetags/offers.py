"""{% for label, sentence in offer|offer_facts %}: what an offer's terms allow, in words.
{{ listing|on_sale }}: published with an offer to buy (else a draft, kept out of the catalogue)."""

from django import template

from marketplace.selectors import offer_facts as _offer_facts

register = template.Library()


@register.filter
def offer_facts(offer) -> list[tuple[str, str]]:
    return _offer_facts(offer)


@register.filter
def on_sale(listing) -> bool:
    # Reads the prefetched offers: the trainer's pages list withdrawn ones too.
    return listing.published and any(o.active for o in listing.offers.all())
