"""A trainer's whole journey in a real browser: sign up, upload a dataset, see its statistics,
start a job, watch progress, loss plot and samples update without reloading, pause and resume,
publish the version with an offer."""

import pytest

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
        page.dispatch_event("#id_steps", "change")
        page.wait_for_function("document.getElementById('estimate').textContent.includes('tokens to process')")
        screenshot(page, "trainer-dataset")
        page.click("text=Start training")
        page.wait_for_url("**/studio/jobs/*/")

        # The page updates itself: no reloads from here on.
        page.wait_for_function("Number(document.getElementById('step').textContent) >= 45")
        page.wait_for_selector("#samples .sample")
        page.wait_for_function("document.querySelectorAll('#loss-plot .scatterlayer .trace').length == 2")
        screenshot(page, "trainer-job-running")
        page.click("#pause-btn")
        page.wait_for_function("document.getElementById('state').textContent == 'paused'")
        paused_step = int(page.inner_text("#step"))
        assert paused_step < 400
        page.click("#resume-btn")
        # ~350 steps on a CPU worker: minutes when the machine is shared.
        page.wait_for_function("document.getElementById('state').textContent == 'succeeded'", timeout=360_000)
        assert "Resumed from the checkpoint at step" in page.inner_text("#resumed")
        screenshot(page, "trainer-job-succeeded")
        job = TrainingJob.objects.get(owner__username="tara")
        assert job.step == 400 and list(job.metrics.values_list("step", flat=True)) == list(range(1, 401))

        page.click("text=Sales")
        page.fill("input[name=title]", "Tara's Stories")
        page.click("button:has-text('Publish')")
        page.wait_for_selector("text=Add an offer")
        page.fill("#offer-form input[name=name]", "Personal")
        page.check("#offer-form input[name=uses][value=personal]")
        page.fill("#offer-form input[name=attribution]", "Stories by Tara")
        page.click("#offer-form button:has-text('Add offer')")
        page.wait_for_selector("text=Withdraw")
        screenshot(page, "trainer-listing")
        page.goto("/models/")
        page.wait_for_selector("text=Tara's Stories")
        screenshot(page, "catalogue")
