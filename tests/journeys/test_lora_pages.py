"""The page path of a LoRA in a real browser: the job form on the built-in base with the method lora
and its rank, the live job page to its end, the version page saying it is an adapter of that base,
then publishing it with an offer; the public model page says LoRA, the adapter's size and its base."""

from __future__ import annotations

import threading

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from tests.support.browser import chromium_page, log_in, screenshot
from tests.support.corpus import corpus_text
from training import job_runner
from training.builtin_base import BUILTIN
from training.models import ModelVersion, TrainingJob
from training.services import datasets

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]
PASSWORD = "pw-Imprint-123"  # the make_user fixture's


class InProcessWorker:
    """Runs each queued job of the test in a thread of this process, as a training worker would:
    the test's installation (its media, its built-in base) is this process's settings."""

    def __init__(self):
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        try:
            while not self.stop.wait(0.2):
                for job_id in TrainingJob.objects.filter(state="queued").values_list("pk", flat=True):
                    job_runner.job_run(job_id=job_id, worker_id="page-worker")
        finally:
            connection.close()


@pytest.fixture
def in_process_worker():
    worker = InProcessWorker()
    worker.thread.start()
    yield worker
    worker.stop.set()
    worker.thread.join(60)


def test_a_trainer_trains_a_lora_on_the_builtin_base_from_the_page_and_publishes_it(
        builtin_base, live_server, make_user, in_process_worker):
    tess = make_user("tess", trainer=True, customer=False)
    dataset = datasets.dataset_create(
        owner=tess, name="sea stories", licence="cc0-1.0", licence_attested=True, stats_base_model=BUILTIN,
        upload=SimpleUploadedFile("sea.txt", corpus_text().encode(), content_type="text/plain"))
    with chromium_page(live_server.url) as page:
        log_in(page, tess.username, PASSWORD)
        page.goto(f"/studio/datasets/{dataset.pk}/")
        page.select_option("#id_base_model", BUILTIN)
        page.select_option("#id_method", "lora")
        for field, value in (("steps", "16"), ("batch_size", "4"), ("context_length", "32"), ("sample_every", "8"),
                             ("checkpoint_every", "8"), ("lora_r", "4"), ("lora_alpha", "8"),
                             ("learning_rate", "0.005"), ("sample_prompt", "The sea")):
            page.fill(f"#id_{field}", value)
        page.dispatch_event("#id_steps", "change")
        page.wait_for_function("document.getElementById('estimate').textContent.includes('tokens to process')")
        screenshot(page, "lora-job-form")
        page.click("text=Start training")
        page.wait_for_url("**/studio/jobs/*/")
        page.wait_for_function("document.getElementById('state')?.textContent == 'succeeded'", timeout=120_000)
        page.wait_for_selector("#versions a")
        screenshot(page, "lora-job-succeeded")
        job = TrainingJob.objects.get(owner=tess)
        assert job.base_model == BUILTIN and job.hyperparameters["method"] == "lora"
        assert (job.hyperparameters["lora_r"], job.hyperparameters["lora_alpha"]) == (4, 8)

        page.click("#versions a")
        page.wait_for_selector(".model-card")
        version = ModelVersion.objects.get(job=job)
        method = page.inner_text("#method")
        assert method.startswith("LoRA r 4, alpha 8 · adapter ") and f"base {BUILTIN} @{builtin_base.digest[:12]}" \
            in method
        assert "LoRA fine-tuning (peft; rank 4, alpha 8, on " in page.inner_text(".model-card")
        assert "merged with its base" in page.inner_text("main")  # the adapter, or a whole model, to download
        screenshot(page, "lora-version")

        page.click("text=Sales")
        page.select_option("#publish-form select[name=model_version]", str(version.pk))
        page.fill("#publish-form input[name=title]", "Sea Stories")
        page.click("#publish-form button:has-text('Publish')")
        page.wait_for_selector("text=Add an offer")
        page.fill("#offer-form input[name=name]", "Personal")
        page.check("#offer-form input[name=uses][value=personal]")
        page.click("#offer-form button:has-text('Add offer')")
        page.wait_for_selector("text=Withdraw")
        page.goto(f"/models/{version.listing.pk}/")
        page.wait_for_selector(".model-card")
        public = page.inner_text("#method")
        assert public == method and "adapter" in public and "B" in public.split("adapter ")[1]
        screenshot(page, "lora-model-page")
