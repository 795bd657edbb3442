"""A trainer's whole journey in a real browser: sign up (the confirmation link names the site as it
runs), upload a dataset, see its statistics, start a job, watch progress, loss plot and samples
(each after its prompt, a bounded list) update without reloading, pause, refuse a cancel at its
confirmation, resume, read the version's card as on the Hub, publish the version (a draft until it
has an offer) with an offer read in words."""

import re

import pytest
from django.core import mail

from tests.support.browser import chromium_page, screenshot
from tests.support.corpus import corpus_text
from training.models import TrainingJob

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]


def test_a_trainer_goes_from_sign_up_to_a_published_model(live_server, celery_workers, tmp_path):
    # The default queue processes the uploaded dataset; the page waits for it, then shows it.
    celery_workers.start(queues="training,default", pool="solo", concurrency=1)
    data = tmp_path / "stories.txt"
    data.write_text(corpus_text(documents=40, words=60))
    with chromium_page(live_server.url) as page:
        page.goto("/account/signup/")
        page.fill("#id_username", "tara")
        page.fill("#id_email", "tara@example.com")
        page.fill("#id_password1", "a-Long-pass-42")
        page.fill("#id_password2", "a-Long-pass-42")
        page.check("#id_is_trainer")
        page.click("main button[type=submit]")
        page.wait_for_selector("text=We sent you an e-mail to confirm your address")
        # The confirmation e-mail links to the site as it runs (the live server's port), not to 8000.
        confirm = re.search(r"https?://\S+", mail.outbox[-1].body).group(0)
        assert confirm.startswith(f"{live_server.url}/") and mail.outbox[-1].to == ["tara@example.com"]
        page.click("text=Trainer studio")
        screenshot(page, "trainer-studio-empty")

        page.click("text=Upload a dataset")
        page.set_input_files("#id_file", str(data))
        page.select_option("#id_licence", "cc-by-4.0")
        page.check("#id_licence_attested")
        page.click("main button[type=submit]")
        page.wait_for_selector("text=Statistics", timeout=60_000)
        assert "40" in page.inner_text("dl.facts")  # documents
        page.fill("#id_steps", "400")
        page.fill("#id_checkpoint_every", "40")
        page.fill("#id_sample_every", "40")
        page.fill("#id_batch_size", "4")
        page.fill("#id_context_length", "32")
        page.fill("#id_sample_prompt", "The")
        # Early stopping is on by default; this journey follows all 400 steps through a pause and a resume.
        page.fill("#id_early_stopping_patience", "1000")
        # Leave the field as a trainer does (its change event refreshes the estimate), so the click
        # below does not land while the estimate redraws.
        page.press("#id_early_stopping_patience", "Tab")
        page.wait_for_function("document.getElementById('estimate').textContent.includes('tokens to process')")
        page.wait_for_load_state("networkidle")
        screenshot(page, "trainer-dataset")
        page.click("text=Start training")
        page.wait_for_url("**/studio/jobs/*/")

        # The page updates itself: no reloads from here on.
        page.wait_for_function("Number(document.getElementById('step')?.textContent) >= 45", timeout=60_000)
        page.wait_for_selector("#samples .sample")
        # Each sample shows the prompt it continues, marked apart from the model's text.
        assert page.inner_text("#samples .sample mark.prompt") == "The"
        assert "Each sample continues the prompt" in page.inner_text(".samples-panel")
        page.wait_for_function("document.querySelectorAll('#loss-plot .scatterlayer .trace').length == 2")
        screenshot(page, "trainer-job-running")
        page.click("#pause-btn")
        page.wait_for_function("document.getElementById('state')?.textContent == 'paused'")
        paused_step = int(page.inner_text("#step"))
        assert paused_step < 400
        # Cancel asks first; answering no leaves the job as it was.
        asked = []
        page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
        page.click("#cancel-btn")
        assert asked and "Cancel this training job?" in asked[0]
        assert page.inner_text("#state") == "paused"
        page.click("#resume-btn")
        # ~350 steps on a CPU worker: minutes when the machine is shared.
        page.wait_for_function("document.getElementById('state')?.textContent == 'succeeded'", timeout=360_000)
        assert "Resumed from the checkpoint at step" in page.inner_text("#resumed")
        # Ten sample steps' worth of samples: the newest four show, the rest behind "Show all".
        page.wait_for_selector("#all-samples:not([hidden])")
        shown = page.eval_on_selector_all("#samples .sample", "els => els.filter(e => e.offsetParent).length")
        total = page.eval_on_selector_all("#samples .sample", "els => els.length")
        assert shown == 4 < total and page.inner_text("#all-samples") == f"Show all {total} samples"
        # was 4,250 px when finished; the held-out split, the best step and the method now add a few lines
        assert page.evaluate("document.documentElement.scrollHeight") < 2900
        screenshot(page, "trainer-job-succeeded")
        job = TrainingJob.objects.get(owner__username="tara")
        assert job.step == 400 and list(job.metrics.values_list("step", flat=True)) == list(range(1, 401))

        # The version's card reads as on the Hub: no section markers, the evaluation as a table.
        page.click("#versions a")
        page.wait_for_selector(".model-card")
        card = page.inner_text(".model-card")
        assert "imprint:" not in card and "<!--" not in card
        assert "Evaluation results" in card and "perplexity" in card
        screenshot(page, "trainer-version-card")
        page.go_back()

        page.click("text=Sales")
        page.fill("input[name=title]", "Tara's Stories")
        page.click("button:has-text('Publish')")
        page.wait_for_selector("text=Add an offer")
        # Published without an offer, it is a draft that the catalogue does not list yet.
        assert "Draft — add an offer to publish" in page.inner_text("h1")
        assert "Tara's Stories" not in page.request.get("/models/").text()
        screenshot(page, "trainer-listing-draft")
        page.fill("#offer-form input[name=name]", "Personal")
        page.check("#offer-form input[name=uses][value=personal]")
        page.fill("#offer-form input[name=attribution]", "Stories by Tara")
        page.click("#offer-form button:has-text('Add offer')")
        page.wait_for_selector("text=Withdraw")
        assert "published" in page.inner_text("h1") and "Draft" not in page.inner_text("h1")
        # The offer card says in words what it sells: uses, quota, who owns the outputs, attribution.
        offer = page.inner_text(".offer")
        assert "Permitted uses" in offer and "Personal, non-commercial use" in offer
        assert "Quota" in offer and "Outputs" in offer and "“Stories by Tara”" in offer
        screenshot(page, "trainer-listing")
        page.goto("/models/")
        page.wait_for_selector("text=Tara's Stories")
        screenshot(page, "catalogue")
        # The public card links its licence on the site as it runs, not on port 8000.
        page.click("text=Tara's Stories")
        page.wait_for_selector(".model-card")
        public_card = page.inner_text(".model-card")
        assert "imprint:" not in public_card and f"{live_server.url}/" in public_card
        assert "localhost:8000" not in public_card and "127.0.0.1:8000" not in public_card
