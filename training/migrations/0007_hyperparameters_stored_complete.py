"""Rows of TrainingJob.hyperparameters stored before TrainConfig held only the job form's keys; the
others took the job runner's and the training loop's fallbacks. Write those values into every row,
so each row says what its job trained with: a later change of a default then never changes what
an old job resumes with, and a request naming the same settings finds it again.

The values are written out here, not read from TrainConfig, because they are what those jobs ran
with, whatever the defaults become.
"""

from django.db import migrations

# The job runner's fallbacks (for keys the form always sent) and the loop's defaults (for the rest),
# as they were when these rows were stored.
FALLBACKS = {
    "warmup_steps": 0,
    "sample_prompt": "",
    "sample_max_new_tokens": 40,
    "early_stopping_patience": None,
    "early_stopping_min_delta": 0.0,
    "lr_schedule": "linear",
    "weight_decay": 0.0,
    "grad_clip": 1.0,
    "keep_checkpoints": 2,
    "eval_max_windows": 64,
}
# A stored null meant "the fallback" for these (the runner read them with `or` / `.get`).
NULL_MEANS_FALLBACK = ("warmup_steps", "sample_prompt", "sample_max_new_tokens", "early_stopping_min_delta")


def fill(apps, schema_editor):
    TrainingJob = apps.get_model("training", "TrainingJob")
    for job in TrainingJob.objects.only("pk", "hyperparameters").iterator():
        stored = dict(job.hyperparameters or {})
        complete = {**FALLBACKS, **stored}
        for name in NULL_MEANS_FALLBACK:
            if complete[name] is None:
                complete[name] = FALLBACKS[name]
        if complete != stored:
            TrainingJob.objects.filter(pk=job.pk).update(hyperparameters=complete)


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0006_modelversion_serving_precision"),
    ]

    operations = [
        # Backwards: the filled-in values are the ones the older code assumed anyway.
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
