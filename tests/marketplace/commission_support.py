"""Building commissions for the tests: a customer's dataset (as an upload processed by training), a
posted commission, proposals, and versions a trainer trained on the lent data."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.utils import timezone

from marketplace import commissions
from tests import factories
from training.models import DatasetUpload, ModelVersion, TrainingJob


def customer_upload(customer, *, rights_holders=("Carl's Bakery",)) -> DatasetUpload:
    data = factories.dataset(customer, licence="cc-by-4.0", rights_holders=rights_holders)
    return DatasetUpload.objects.create(owner=customer, name=data.name, licence=data.licence, size_bytes=1024,
                                        upload_sha256=data.sha256, state=DatasetUpload.State.READY, dataset=data,
                                        rights_holders=list(rights_holders))


def post(customer, *, exclusive: bool = True, days: int = 10, with_dataset: bool = True, **overrides):
    fields = {"customer": customer, "title": "Bakery product descriptions",
              "description": "Warm, short descriptions of our breads.", "examples": ["A crusty sourdough."],
              "budget_cents": 50_000, "currency": "usd", "uses": ["commercial"], "ownership": "customer",
              "exclusive": exclusive, "deadline": timezone.now() + timedelta(days=days),
              "dataset_upload_id": customer_upload(customer).pk if with_dataset else None,
              "show_dataset_stats": True, **overrides}
    return commissions.commission_create(**fields)


def propose(trainer, commission, *, price_cents: int = 40_000):
    return commissions.proposal_submit(
        trainer=trainer, commission_id=commission.pk, price_cents=price_cents, base_model="tiny", method="full",
        steps=100, context_length=64, delivery_date=commission.deadline - timedelta(days=1), message="I can.")


def version_on(trainer, dataset, *, state=TrainingJob.State.SUCCEEDED) -> ModelVersion:
    """A version of one of `trainer`'s jobs on `dataset` (as the training worker leaves it)."""
    job = TrainingJob.objects.create(owner=trainer, dataset=dataset, name="commission job", base_model="gpt2",
                                     total_steps=100, step=100, state=state)
    digest = hashlib.sha256(f"version-{job.pk}".encode()).hexdigest()
    return ModelVersion.objects.create(
        owner=trainer, job=job, name=f"commissioned {str(job.pk)[:6]}", from_step=100,
        storage_prefix=f"models/{digest}/", digest=digest, parameter_count=1000, base_model="gpt2",
        dataset_digest=dataset.sha256, dataset_licence=dataset.licence, n_positions=1024,
        metrics={"val_loss": 3.0}, card="# Commissioned", files=[{"name": "model.safetensors", "size": 1}])
