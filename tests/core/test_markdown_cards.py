"""Model cards render as on the Hub: front matter as a table, Markdown as HTML, nothing unsafe."""

import pytest

from core.markdown_cards import render_card, split_front_matter
from tests import factories

CARD = """---
license: mit
base_model: gpt2
datasets:
- poems
metrics:
  val_loss: 3.21
---
# Tess Poems

Fine-tuned **GPT-2** on [poems](https://example.com/poems).

| step | loss |
|------|------|
| 100  | 3.2  |

<script>alert("card")</script>
<img src=x onerror=alert(1)>
[click](javascript:alert(1))
"""


def test_front_matter_becomes_rows_and_the_markdown_html():
    card = render_card(CARD)
    assert card.front_matter == [("license", "mit"), ("base_model", "gpt2"), ("datasets", "poems"),
                                 ("metrics", "val_loss: 3.21")]
    assert "<h1>Tess Poems</h1>" in card.html and "<strong>GPT-2</strong>" in card.html
    assert "<table>" in card.html and "<td>3.2</td>" in card.html
    assert 'href="https://example.com/poems"' in card.html and 'rel="nofollow noopener noreferrer"' in card.html


def test_html_and_script_urls_in_a_card_never_reach_the_page():
    html = render_card(CARD).html
    # Raw HTML in the Markdown stays text (escaped); no tag of it is rendered.
    assert "<script" not in html and "<img" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html


@pytest.mark.parametrize("text", ["# Just markdown", "---\nnot: [closed\n---\n# x", "---\n- a list\n---\n# x"])
def test_a_card_without_valid_front_matter_is_all_body(text):
    meta, body = split_front_matter(text)
    assert meta == {} and body == text


@pytest.mark.django_db
def test_the_listing_and_version_pages_show_the_rendered_card(client):
    trainer = factories.user(trainer=True, customer=False)
    mv = factories.model_version(trainer)
    mv.card = CARD
    mv.save()
    listing = factories.listing(trainer, mv=mv)
    page = client.get(f"/models/{listing.pk}/").content.decode()
    assert "<h1>Tess Poems</h1>" in page and '<table class="card-meta">' in page and "<script>alert" not in page
    client.force_login(trainer)
    version_page = client.get(f"/studio/versions/{mv.pk}/").content.decode()
    assert "<strong>GPT-2</strong>" in version_page and "<th>base_model</th>" in version_page
