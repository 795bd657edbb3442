"""A model card's YAML front matter cannot expand without bound: a card whose front matter uses
aliases ("billion laughs") is refused when saved, through the API and through the page, with the
line named; one stored before renders as a small, marked fallback on the public page."""

import pytest

from accounts.services import token_create
from marketplace.models import Listing
from tests import factories

pytestmark = pytest.mark.django_db

# 328 bytes; expanded, its last key alone is 9**6 = 531,441 strings (a page of about 3 MB).
BOMB = "---\n" + "\n".join([
    'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
    *(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]" for prev, name in zip("abcde", "bcdef")),
]) + "\n---\n# Harmless looking\n\nA small model.\n"
ALIAS_LINE = 3  # the first `*a` is on the card's third line (the `---` is the first)


@pytest.fixture
def listing(trainer):
    return factories.listing(trainer)


def _bearer(owner) -> dict:
    _, plaintext = token_create(owner=owner, name="cli", scopes=["marketplace"])
    return {"HTTP_AUTHORIZATION": f"Bearer {plaintext}"}


def test_it_refuses_a_bomb_edited_through_the_api_naming_the_line(client, trainer, listing):
    before = Listing.objects.get(pk=listing.pk).card
    response = client.patch(f"/api/v1/marketplace/listings/{listing.pk}/edit/", {"card": BOMB},
                            content_type="application/json", **_bearer(trainer))
    assert response.status_code == 400, response.content[:500]
    error = response.json()["error"]
    assert error["param"] == "card" and f"line {ALIAS_LINE}" in error["message"]
    assert "alias" in error["message"]
    assert Listing.objects.get(pk=listing.pk).card == before  # nothing half-written


def test_it_refuses_a_bomb_published_through_the_api(client, trainer):
    mv = factories.model_version(trainer)
    response = client.post("/api/v1/marketplace/listings/publish/",
                           {"model_version": str(mv.pk), "title": "Lol", "card": BOMB},
                           content_type="application/json", **_bearer(trainer))
    assert response.status_code == 400, response.content[:500]
    assert f"line {ALIAS_LINE}" in response.json()["error"]["message"]
    assert not Listing.objects.filter(model_version=mv).exists()


def test_it_refuses_a_bomb_saved_through_the_edit_page_naming_the_line(client, trainer, listing):
    before = Listing.objects.get(pk=listing.pk).card
    client.force_login(trainer)
    response = client.post(f"/sell/listings/{listing.pk}/",
                           {"title": listing.title, "description": "", "card": BOMB, "samples": ""})
    assert response.status_code == 400
    page = response.content.decode()
    assert f"line {ALIAS_LINE}" in page and "alias" in page
    assert Listing.objects.get(pk=listing.pk).card == before


def test_a_bomb_already_stored_renders_small_and_marked(client, listing):
    Listing.objects.filter(pk=listing.pk).update(card=BOMB)  # saved before saving refused it
    response = client.get(f"/models/{listing.pk}/")  # anonymous, as the public sees it
    assert response.status_code == 200
    assert len(response.content) < 100_000
    page = response.content.decode()
    assert "Front matter not shown" in page and "<h1>Harmless looking</h1>" in page
    assert page.count("lol") < 20


def test_deeply_nested_front_matter_is_refused_naming_the_line(client, trainer, listing):
    deep = "---\nlicense: mit\nx: " + "[" * 100 + "]" * 100 + "\n---\n# Deep\n"
    response = client.patch(f"/api/v1/marketplace/listings/{listing.pk}/edit/", {"card": deep},
                            content_type="application/json", **_bearer(trainer))
    assert response.status_code == 400 and response.json()["error"]["param"] == "card"
    assert "nests deeper than 20 levels on line 3" in response.json()["error"]["message"]


@pytest.mark.parametrize("levels", [100, 5000])
def test_deeply_nested_front_matter_stored_before_renders_without_a_server_error(client, listing, levels):
    Listing.objects.filter(pk=listing.pk).update(card="---\nx: " + "[" * levels + "]" * levels + "\n---\n# Deep\n")
    page = client.get(f"/models/{listing.pk}/")
    assert page.status_code == 200 and len(page.content) < 100_000


def test_an_ordinary_card_with_anchors_but_no_aliases_is_still_accepted(client, trainer, listing):
    card = "---\nlicense: mit\ntags: &t [a, b]\n---\n# Fine\n"
    response = client.patch(f"/api/v1/marketplace/listings/{listing.pk}/edit/", {"card": card},
                            content_type="application/json", **_bearer(trainer))
    assert response.status_code == 200, response.content[:500]
    assert "# Fine" in Listing.objects.get(pk=listing.pk).card


def test_an_overlong_front_matter_is_refused_with_its_limit(client, trainer, listing):
    card = "---\n" + "\n".join(f"key{i}: value" for i in range(2000)) + "\n---\n# Long\n"
    response = client.patch(f"/api/v1/marketplace/listings/{listing.pk}/edit/", {"card": card},
                            content_type="application/json", **_bearer(trainer))
    assert response.status_code == 400 and "16,000 characters" in response.json()["error"]["message"]
