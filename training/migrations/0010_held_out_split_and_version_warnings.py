"""Where a job's held-out split and a version's warnings, selection and memorisation
acknowledgement are kept; and the micro-batch size written into stored hyperparameters.

Rows stored before micro_batch_size existed trained each batch in one pass: they get null, what
that means, so each row keeps saying what its job trained with and a rerun of the same command
still finds it (rows are compared whole)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def fill(apps, schema_editor):
    TrainingJob = apps.get_model("training", "TrainingJob")
    for job in TrainingJob.objects.only("pk", "hyperparameters").iterator():
        stored = dict(job.hyperparameters or {})
        if "micro_batch_size" not in stored:
            TrainingJob.objects.filter(pk=job.pk).update(hyperparameters={**stored, "micro_batch_size": None})


class Migration(migrations.Migration):

    dependencies = [
        ('training', '0009_version_method_and_base'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='modelversion',
            name='memorisation_acknowledged_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='modelversion',
            name='memorisation_acknowledged_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='modelversion',
            name='selection',
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name='modelversion',
            name='warnings',
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name='trainingjob',
            name='data_split',
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
