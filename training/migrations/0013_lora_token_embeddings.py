"""LoRA jobs stored before adapters could train token embedding rows trained (or resume) without
them: their hyperparameters say so (0), rather than reading back as the new default."""

from django.db import migrations


def fill(apps, schema_editor):
    TrainingJob = apps.get_model("training", "TrainingJob")
    for job in TrainingJob.objects.only("pk", "hyperparameters").iterator():
        stored = dict(job.hyperparameters or {})
        if "lora_token_embeddings" not in stored:
            TrainingJob.objects.filter(pk=job.pk).update(hyperparameters={**stored, "lora_token_embeddings": 0})


class Migration(migrations.Migration):

    dependencies = [("training", "0012_modelversion_watermark_choice")]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
