"""The audit chain moves to the audit app and compliance's models to the compliance app; the
quota reservations come here from inference. No table changes: only Django's state moves (each
model keeps its table through Meta.db_table)."""

import django.db.models.deletion
from django.db import migrations, models

from core.migration_ops import content_types_moved

MOVED_TO_COMPLIANCE = ["case", "customeranswer", "decision", "flag", "report"]


class Migration(migrations.Migration):

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("licensing", "0004_grant_metered"),
        ("inference", "0003_quotareservation_moves_to_licensing"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.RemoveField(model_name="decision", name="case"),
            migrations.RemoveField(model_name="customeranswer", name="case"),
            migrations.RemoveField(model_name="flag", name="case"),
            migrations.RemoveField(model_name="customeranswer", name="author"),
            migrations.RemoveField(model_name="decision", name="staff"),
            migrations.RemoveField(model_name="flag", name="api_key"),
            migrations.RemoveField(model_name="flag", name="customer"),
            migrations.RemoveField(model_name="flag", name="dismissed_by"),
            migrations.RemoveField(model_name="flag", name="grant"),
            migrations.RemoveField(model_name="report", name="reporter"),
            *[migrations.DeleteModel(name=name) for name in ("Case", "CustomerAnswer", "Decision", "Flag", "Report")],
            migrations.DeleteModel(name="AuditChainHead"),
            migrations.DeleteModel(name="AuditEntry"),
            migrations.CreateModel(
                name="QuotaReservation",
                fields=[
                    ("request_id", models.CharField(max_length=64, primary_key=True, serialize=False)),
                    ("tokens", models.PositiveIntegerField()),
                    ("created_at", models.DateTimeField(auto_now_add=True)),
                    ("expires_at", models.DateTimeField(db_index=True)),
                    ("grant", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                                related_name="reservations", to="licensing.grant")),
                ],
                options={"db_table": "inference_quotareservation"},
            ),
        ], database_operations=[]),
        content_types_moved(models=["quotareservation"], old_app="inference", new_app="licensing"),
    ]
