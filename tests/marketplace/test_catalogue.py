"""The public catalogue: search by text, base model, permitted use and price, in a constant
number of queries however many listings there are."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests import factories
from training.models import ModelVersion, TrainingJob

pytestmark = pytest.mark.django_db


def _make_listings(count: int, trainer):
    for n in range(count):
        listing = factories.listing(trainer, title=f"Model {n}", dataset_licence="cc0-1.0")
        factories.offer(listing, fee_cents=1000 + n, name="Personal")
        factories.offer(listing, fee_cents=9000 + n, name="Commercial", uses=["commercial"])


def _catalogue_page(client) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("marketplace:catalogue"))
    assert response.status_code == 200
    return len(queries), response.content.decode()


def test_catalogue_query_count_is_the_same_for_10_and_200_listings(client, trainer, make_user):
    _make_listings(10, trainer)
    few, page = _catalogue_page(client)
    assert page.count('class="panel listing"') == 10
    # 200 listings in all (two trainers): the page renders the first 100, each with both offers.
    _make_listings(190, make_user("tara", trainer=True))
    many, page = _catalogue_page(client)
    assert page.count('class="panel listing"') == 100 and page.count("Commercial: USD") == 100
    assert many == few


def test_catalogue_api_query_count_is_constant(client, trainer, django_assert_max_num_queries):
    _make_listings(10, trainer)
    with CaptureQueriesContext(connection) as few:
        assert len(client.get(reverse("marketplace:api_catalogue")).json()["data"]) == 10
    _make_listings(190, trainer)
    with django_assert_max_num_queries(len(few)):
        assert len(client.get(reverse("marketplace:api_catalogue")).json()["data"]) == 200


def _titles(client, **params) -> set[str]:
    data = client.get(reverse("marketplace:api_catalogue"), params).json()["data"]
    return {item["title"] for item in data}


def test_search_by_text_base_model_use_and_price(client, trainer):
    poems = factories.listing(trainer, title="Poems", description="Rhyming verse", dataset_licence="cc0-1.0")
    factories.offer(poems, fee_cents=500, uses=["personal"])
    code = factories.listing(trainer, title="Code helper", base_model="gpt2-medium", dataset_licence="cc0-1.0")
    factories.offer(code, fee_cents=20_000, uses=["commercial", "internal"])
    hidden = factories.listing(trainer, title="Hidden poems", published=False)
    factories.offer(hidden, fee_cents=100)

    assert _titles(client, q="verse") == {"Poems"}
    assert _titles(client, q="poems") == {"Poems"}  # unpublished ones never show
    assert _titles(client, base_model="gpt2-medium") == {"Code helper"}
    assert _titles(client, use="commercial") == {"Code helper"}
    assert _titles(client, use="personal") == {"Poems"}
    assert _titles(client, max_price_cents=1000) == {"Poems"}
    page = client.get(reverse("marketplace:catalogue"), {"use": "commercial", "max_price": "250"}).content.decode()
    assert "Code helper" in page and ">Poems<" not in page


def test_the_model_page_shows_card_samples_and_offers_with_their_terms_side_by_side(client, trainer):
    listing = factories.listing(trainer, title="Shanties", dataset_licence="cc0-1.0")
    cheap = factories.offer(listing, fee_cents=900, name="Hobby")
    pro = factories.offer(listing, fee_cents=49_900, name="Studio", uses=["commercial"], duration_days=None)
    page = client.get(reverse("marketplace:listing_detail", args=[listing.pk])).content.decode()
    # The card's Markdown is rendered: its "# Title" line is the card's first heading.
    assert f"<h1>{listing.card.splitlines()[0].removeprefix('# ')}</h1>" in page and "Once upon a time" in page
    assert "USD 9.00" in page and "USD 499.00" in page
    assert "Permitted uses: personal, non-commercial use, research." in page
    assert "Permitted uses: commercial use." in page and "Duration: perpetual." in page
    assert reverse("licensing:terms_json", args=[cheap.terms_id]) in page
    assert reverse("licensing:terms_json", args=[pro.terms_id]) in page
    # How it was made, beside its card: a whole model's method and size, and its base.
    assert "full fine-tune · model 0 bytes · base gpt2" in _method_line(page)


def test_the_model_page_of_a_lora_says_its_rank_and_alpha_its_adapters_size_and_its_base(client, trainer):
    listing = factories.listing(trainer, title="Sea shanties", dataset_licence="cc0-1.0")
    factories.offer(listing, fee_cents=900)
    version = listing.model_version
    TrainingJob.objects.filter(pk=version.job_id).update(
        hyperparameters={"method": "lora", "lora_r": 8, "lora_alpha": 16.0})
    ModelVersion.objects.filter(pk=version.pk).update(
        method="lora", base_model="imprint-base", base_digest="c0ffee" + "0" * 58,
        files=[{"name": "adapter_model.safetensors", "size": 1_200_000, "sha256": "a" * 64},
               {"name": "adapter_config.json", "size": 58_291, "sha256": "b" * 64}])
    page = client.get(reverse("marketplace:listing_detail", args=[listing.pk])).content.decode()
    # The adapter's own stored bytes (1,258,291: 1.2 MB), never its base's; the base by name and digest.
    assert _method_line(page) == "LoRA r 8, alpha 16 · adapter 1.2 MB · base imprint-base @c0ffee000000"


def _method_line(page: str) -> str:
    line = re.search(r'<p class="muted" id="method">(.*?)</p>', page, re.S).group(1)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", line)).strip()
