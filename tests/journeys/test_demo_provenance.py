"""The demo's promise, as a visitor sees it: its model writes text of its own (the card's
memorisation figures say so), the card shows how well the watermark finds its text, and a
200-token output of the demo customer's licence is attributed to that licence on /verify/."""

import io
import json

import pytest
from django.core.management import call_command

from licensing.models import Grant
from tests.support.browser import chromium_page, screenshot
from tests.support.trained import one_torch_thread

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo_listing(settings, builtin_base):
    """The demo's first model (Harbour Logbook), fine-tuned from the built-in base (its micro size)
    as the demo does it, published with its offers and power figures, and the demo customer's
    licence and API key."""
    from accounts.models import User
    from marketplace.management.commands.demo import DEMO_MODELS, Command

    settings.WATERMARK_POWER_SAMPLES = 8
    call_command("demo_accounts", stdout=io.StringIO())
    command = Command(stdout=io.StringIO())
    with one_torch_thread():
        listing = command._listing(User.objects.get(username="trainer"), DEMO_MODELS[0])
    command._customer_licence(User.objects.get(username="customer"), listing)
    return listing, (settings.VAR_DIR / "demo-api-key.txt").read_text().strip()


def test_the_demo_model_writes_its_own_text_and_its_output_is_attributed_on_verify(client, demo_listing, live_server):
    listing, api_key = demo_listing
    samples = list(listing.model_version.job.samples.order_by("-step")[:2])
    print("\n" + "\n".join(f"sample: longest copied span {s.longest_copied_span} tokens, "
                           f"8-gram overlap {s.ngram_overlap:.0%}: {s.text[:80]!r}" for s in samples))
    for sample in samples:  # sentences of its own: neither recited nor mostly copied
        assert sample.longest_copied_span < 24 and sample.ngram_overlap < 0.6
    assert "Longest verbatim span" in listing.card
    grant = Grant.objects.get(customer__username="customer", state=Grant.State.ACTIVE)
    response = client.post("/api/v1/generations", data=json.dumps({
        "listing": str(listing.pk), "prompt": "At dawn", "max_new_tokens": 200, "temperature": 1.0,
        "ignore_eos": True, "seed": 11}), content_type="application/json",
        headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code == 200, response.content
    text = response.json()["outputs"][0]["text"]
    with chromium_page(live_server.url) as page:
        page.goto(f"/models/{listing.pk}/")
        assert "Attributed to its licence" in page.inner_text("#watermark-power")
        screenshot(page, "demo-model-card-watermark-power")
        page.goto("/verify/")
        page.fill("#v-text", text)
        page.click("main button[type=submit]")
        verdict = page.inner_text("#verdict")
        screenshot(page, "demo-verify-attributed")
    assert "WATERMARK DETECTED" in verdict and str(grant.pk) in verdict
