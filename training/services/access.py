"""Datasets lent to another trainer's jobs (a commission's customer data): lend, end, and the checks
that keep the file and the versions trained on it with the owner of the data."""

from __future__ import annotations

from django.db import transaction

from audit.services import audit_append

from ..models import Dataset, DatasetAccess, ModelVersion


@transaction.atomic
def dataset_lend(*, dataset: Dataset, user, purpose: str, exclusive: bool) -> DatasetAccess:
    """Let `user`'s training jobs use `dataset` (idempotent; lending again reopens it)."""
    access, created = DatasetAccess.objects.select_for_update().get_or_create(
        dataset=dataset, user=user, defaults={"purpose": purpose, "exclusive": exclusive})
    if not created and (not access.active or access.exclusive != exclusive or access.purpose != purpose):
        access.active, access.exclusive, access.purpose = True, exclusive, purpose
        access.save(update_fields=["active", "exclusive", "purpose", "updated_at"])
    if created:
        audit_append(event="dataset.lent", actor=dataset.owner, subject=dataset,
                     data={"to": f"user:{user.pk}", "purpose": purpose, "exclusive": exclusive})
    return access


@transaction.atomic
def dataset_lending_end(*, dataset_id, user_id, exclusive: bool | None = None) -> bool:
    """No new jobs of `user_id` on the dataset; `exclusive` (when given) stays or lifts the hold on
    the versions trained on it. Returns whether anything changed."""
    fields = {"active": False, **({"exclusive": exclusive} if exclusive is not None else {})}
    changed = DatasetAccess.objects.filter(dataset_id=dataset_id, user_id=user_id).exclude(**fields).update(**fields)
    if changed:
        audit_append(event="dataset.lending_ended", subject=Dataset.objects.get(pk=dataset_id),
                     data={"user": f"user:{user_id}", **fields})
    return bool(changed)


def dataset_usable_by(*, dataset: Dataset, user) -> bool:
    """The owner's jobs, and the jobs of a trainer it is lent to (while the lending is active)."""
    return dataset.owner_id == user.pk or DatasetAccess.objects.filter(dataset=dataset, user=user, active=True).exists()


def version_held_exclusively(version: ModelVersion) -> bool:
    """A version trained on data lent exclusively to its trainer: its files stay on the platform and
    it is not sold to anyone but the data's owner."""
    return DatasetAccess.objects.filter(dataset_id=version.job.dataset_id, user_id=version.owner_id,
                                        exclusive=True).exists()
