"""What a trainer sees of an overfitting run in a browser: the warnings on the live job page and the
acknowledgement the publish form asks for. Screenshots: job-page-warnings.png, publish-acknowledgement.png
(artifacts/screenshots/)."""

import pytest

from tests import factories
from tests.support.browser import chromium_page, log_in, screenshot
from training.job_warnings import memorisation_warning
from training.models import JobMetric, Sample, TrainingJob

PASSWORD = "pw-Imprint-123"  # the make_user fixture's
# A 400-step run whose validation loss bottomed out at step 250, then rose, with samples that copy.
CURVE = [(50, 5.1), (100, 4.4), (150, 3.9), (200, 3.5), (250, 3.21), (300, 3.3), (350, 3.52), (400, 3.8)]
COPIED = "Ah, distinctly I remember it was in the bleak December; And each separate dying ember wrought its ghost"


def _overfit_run(trainer):
    version = factories.model_version(trainer, base_model="tiny", dataset_licence="public-domain")
    job = version.job
    TrainingJob.objects.filter(pk=job.pk).update(total_steps=400, step=400, hyperparameters={"steps": 400},
                                                 data_split={"rule": "documents", "train_documents": 19,
                                                             "val_documents": 1, "train_tokens": 21_304,
                                                             "val_tokens": 1_187})
    for step in range(1, 401):
        val = dict(CURVE).get(step)
        JobMetric.objects.create(job=job, step=step, train_loss=5.5 - 4.3 * step / 400, val_loss=val,
                                 perplexity=None, learning_rate=3e-4, tokens_per_second=900.0)
    for step, span, overlap in ((250, 40, 1.0), (300, 40, 1.0), (400, 40, 1.0)):
        Sample.objects.create(job=job, step=step, text=COPIED, longest_copied_span=span, ngram_overlap=overlap)
    warning = memorisation_warning(Sample.objects.filter(job=job).values(
        "step", "longest_copied_span", "ngram_overlap"), upto_step=250)
    version.from_step, version.name = 250, "Poe poems · step 250"
    version.warnings = [warning]
    version.selection = {"rule": "lowest_validation_loss", "step": 250, "of_steps": 400,
                         "text": "step 250 of 400: lowest validation loss 3.210"}
    version.save()
    return job, version


@pytest.mark.django_db(transaction=True)
def test_a_job_page_warns_of_overfitting_and_the_publish_form_asks_to_acknowledge(live_server, make_user):
    trainer = make_user(trainer=True, customer=False)
    job, version = _overfit_run(trainer)
    with chromium_page(live_server.url) as page:
        log_in(page, trainer.username, PASSWORD)
        page.goto(f"/studio/jobs/{job.pk}/")
        page.wait_for_selector("#versions li")
        warnings = page.inner_text("#warnings")
        best = page.inner_text("#best")
        versions = page.inner_text("#versions")
        screenshot(page, "job-page-warnings")
        page.goto("/sell/")
        page.select_option("#id_model_version", str(version.pk))
        page.fill("#id_title", "Poe, verbatim")
        screenshot(page, "publish-acknowledgement")
        page.click("#publish-form button")
        refused = page.inner_text("main")
        page.check("#id_acknowledge_memorisation")
        page.select_option("#id_model_version", str(version.pk))
        page.fill("#id_title", "Poe, verbatim")
        page.click("#publish-form button")
        page.wait_for_url(lambda url: "/sell/listings/" in url)
    assert "Validation loss has risen for 3 evaluations: 3.800 at step 400 against 3.210 at step 250" in warnings
    assert "Samples copy the training data from step 250: up to 40 tokens" in warnings
    assert "3.210 at step 250" in best
    assert "step 250 of 400: lowest validation loss 3.210" in versions
    assert "copy its training data" in refused and "acknowledgement" in refused
    version.refresh_from_db()
    assert version.memorisation_acknowledged_by == trainer
