"""AuditEntry and AuditChainHead move here from licensing; their tables keep their names."""

from django.db import migrations, models

from core.migration_ops import content_types_moved


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("licensing", "0005_move_out_audit_and_compliance"),
    ]

    operations = [
        # The tables exist already (created by the old app's migrations): only the state moves.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AuditChainHead",
                    fields=[
                        ("id", models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False)),
                        ("last_entry_id", models.BigIntegerField(null=True)),
                        (
                            "last_hash",
                            models.CharField(
                                default="0000000000000000000000000000000000000000000000000000000000000000",
                                max_length=64,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "licensing_auditchainhead",
                    },
                ),
                migrations.CreateModel(
                    name="AuditEntry",
                    fields=[
                        ("id", models.BigAutoField(primary_key=True, serialize=False)),
                        ("created_at", models.DateTimeField()),
                        ("event", models.CharField(db_index=True, max_length=64)),
                        ("actor_ref", models.CharField(blank=True, max_length=64)),
                        ("subject_type", models.CharField(blank=True, max_length=64)),
                        ("subject_id", models.CharField(blank=True, db_index=True, max_length=64)),
                        ("data", models.JSONField(default=dict)),
                        ("prev_hash", models.CharField(max_length=64)),
                        ("entry_hash", models.CharField(max_length=64, unique=True)),
                    ],
                    options={
                        "verbose_name_plural": "audit entries",
                        "db_table": "licensing_auditentry",
                        "ordering": ["id"],
                    },
                ),
            ],
            database_operations=[],
        ),
        content_types_moved(models=["auditchainhead", "auditentry"], old_app="licensing", new_app="audit"),
    ]
