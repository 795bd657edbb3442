"""A commission's page speaks in words: the dataset's statistics with their labels and the
timeline as sentences naming who did what and for how much, never the machine codes."""

from __future__ import annotations

import html as html_lib
import re

import pytest
from django.urls import reverse

from billing.held import held_payment_pay_local_test
from marketplace import commissions

from .commission_support import post, propose

pytestmark = pytest.mark.django_db

STATS = {"documents": 12, "characters": 3400, "tokens": 900, "tokenizer": "tiny",
         "shortest_document_characters": 40, "longest_document_characters": 800,
         "shortest_document_tokens": 11, "longest_document_tokens": 210, "preview": ["A crusty sourdough."]}


def _text(html: str) -> str:
    return html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def test_the_page_shows_statistics_and_timeline_in_words(client, make_user, payments_test_mode):
    carl, tess = make_user("carl"), make_user("tess", trainer=True, customer=False)
    tom = make_user("tom", trainer=True, customer=False)
    commission = post(carl)
    commission.dataset.stats = STATS
    commission.dataset.save(update_fields=["stats"])
    chosen = propose(tess, commission)
    propose(tom, commission, price_cents=45_000)
    commissions.proposal_accept(customer=carl, proposal_id=chosen.pk)
    commission.refresh_from_db()
    held_payment_pay_local_test(held_id=commission.held_payment_id, card_number="4242 4242 4242 4242")

    client.force_login(carl)
    html = client.get(reverse("marketplace:commission_detail", args=[commission.pk])).content.decode()
    stats = _text(html.split('id="dataset-stats"', 1)[1].split("</dl>", 1)[0])
    assert "Shortest document 40 characters, 11 tokens" in stats
    assert "Tokens (tiny tokenizer) 900" in stats
    assert "shortest_document_characters" not in stats and not re.search(r"\btokenizer tiny\b", stats)
    timeline = _text(html.split('id="timeline"', 1)[1].split("</ol>", 1)[0])
    for sentence in ("Posted by carl with a budget of USD 500.00", "Proposal received from tom: USD 450.00",
                     "Proposal received from tess: USD 400.00", "carl accepted tess's proposal: USD 400.00",
                     "Payment requested from carl: USD 400.00", "Payment held: USD 400.00"):
        assert sentence in timeline
    assert not re.search(r"\b(commission|held_payment)\.\w+", timeline)
