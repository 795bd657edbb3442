"""Read-side queries of the training app. Every query is scoped to its owner."""

from .models import Dataset, ModelVersion, TrainingJob


def studio_overview(*, owner) -> dict:
    return {
        "datasets": Dataset.objects.filter(owner=owner),
        "jobs": TrainingJob.objects.filter(owner=owner).select_related("dataset"),
        "versions": ModelVersion.objects.filter(owner=owner),
    }
