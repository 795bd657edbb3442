"""Faults: the broker restarted under a running training job, and Stripe unreachable during checkout.
Each ends cleanly: work continues or resumes, errors are clear, nothing is half-written, and a
retry works."""

import shutil
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from licensing.models import Grant
from marketplace.models import Order
from tests.conftest import require
from tests.marketplace.conftest import listing, offer, stripe_site, wait_for  # noqa: F401 - fixtures
from tests.support.processes import free_port, start_process
from tests.support.corpus import corpus_text
from training import services
from training.models import TrainingJob

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

HP = {"steps": 300, "learning_rate": 3e-3, "batch_size": 4, "context_length": 32, "warmup_steps": 0,
      "sample_every": 150, "sample_count": 1, "sample_prompt": "", "sample_max_new_tokens": 8,
      "checkpoint_every": 50, "seed": 3, "early_stopping_patience": None, "early_stopping_min_delta": 0.0}


def _redis(port: int):
    """A redis-server of this test's own (the suite's shared Redis is never restarted)."""
    binary = shutil.which("redis-server")
    require(binary is not None, "redis-server")
    return start_process("redis-fault", [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                         "--appendonly", "no"], port=port)


def _job(owner, name):
    upload = SimpleUploadedFile("c.txt", corpus_text().encode(), content_type="text/plain")
    dataset = services.dataset_create(owner=owner, name=name, upload=upload, licence="cc0-1.0", licence_attested=True)
    return services.job_create(owner=owner, dataset=dataset, name=name, base_model="tiny", hyperparameters=HP)


def _state(job):
    return TrainingJob.objects.values_list("state", "step").get(pk=job.pk)


def test_a_training_job_survives_a_broker_restart(celery_workers, trainer, settings):
    settings.TRAINING_MAX_CONCURRENT_JOBS = 5
    port = free_port()
    redis = _redis(port)
    broker = f"redis://127.0.0.1:{port}/0"
    # The worker reaches jobs through the lease sweep on its own broker (its beat runs every second).
    celery_workers.start(queues="training,default", pool="solo", concurrency=1, beat=True, broker_url=broker,
                         env={"TRAINING_LEASE_SECONDS": "2", "TRAINING_SWEEP_SECONDS": "1"})
    try:
        job = _job(trainer, "first")
        wait_for(lambda: _state(job)[1] >= 20, timeout=120)
        redis.stop()  # the broker goes away mid-job, losing every message it held
        time.sleep(2)
        redis = _redis(port)
        wait_for(lambda: _state(job)[0] == "succeeded", timeout=180)
        assert list(job.metrics.values_list("step", flat=True)) == list(range(1, 301))
        # The worker reconnected: new work reaches it through the restarted broker.
        second = _job(trainer, "second")
        wait_for(lambda: _state(second)[0] == "succeeded", timeout=180)
    finally:
        redis.stop()


def test_stripe_unreachable_during_checkout_gives_a_clear_error_and_a_retry_works(
        stripe_site, client, customer, offer, settings):
    reachable = settings.STRIPE_API_BASE
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    client.force_login(customer)
    form = {"accept": "on", "accepted_terms": offer.terms_id, "next": f"/models/{offer.listing_id}/"}
    page = client.post(f"/offers/{offer.pk}/buy/", form, follow=True)
    assert "Payment could not start" in page.content.decode()
    assert not Grant.objects.filter(customer=customer).exists()
    failed = Order.objects.get(customer=customer)
    assert failed.state == "failed" and not failed.stripe_setup_intent_id

    settings.STRIPE_API_BASE = reachable
    page = client.post(f"/offers/{offer.pk}/buy/", form)
    order = Order.objects.exclude(pk=failed.pk).get(customer=customer)
    assert page.status_code == 302 and order.state == "pending" and order.stripe_setup_intent_id
    stripe = stripe_site["client"]
    stripe.v1.setup_intents.confirm(order.stripe_setup_intent_id, params={"payment_method": "pm_card_visa"})
    charge = client.post(f"/orders/{order.pk}/charge/")
    assert charge.status_code == 200
    wait_for(lambda: Order.objects.get(pk=order.pk).state == "paid")
    assert Grant.objects.get(customer=customer).state == Grant.State.ACTIVE
