"""Report, Case, Flag, Decision and CustomerAnswer move here from licensing; their tables keep their names."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from core.migration_ops import content_types_moved


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("licensing", "0005_move_out_audit_and_compliance"),
        ("training", "0002_jobmetric_attempt"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # The tables exist already (created by the old app's migrations): only the state moves.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Case",
                    fields=[
                        ("id", models.BigAutoField(primary_key=True, serialize=False)),
                        ("source", models.CharField(choices=[("flag", "Flag"), ("report", "Report")], max_length=8)),
                        (
                            "state",
                            models.CharField(
                                choices=[("open", "Open"), ("answered", "Answered"), ("decided", "Decided")],
                                db_index=True,
                                default="open",
                                max_length=8,
                            ),
                        ),
                        (
                            "severity",
                            models.PositiveSmallIntegerField(
                                choices=[(10, "low"), (20, "medium"), (30, "high")], db_index=True, default=20
                            ),
                        ),
                        ("summary", models.CharField(max_length=300)),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        ("decided_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "customer",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="compliance_cases",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "grant",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT, related_name="cases", to="licensing.grant"
                            ),
                        ),
                        (
                            "model_version",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="compliance_cases",
                                to="training.modelversion",
                            ),
                        ),
                        (
                            "opened_by",
                            models.ForeignKey(
                                blank=True,
                                help_text="Staff who opened it from flags; null: the system.",
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "licensing_case",
                        "ordering": ["-severity", "created_at"],
                    },
                ),
                migrations.CreateModel(
                    name="CustomerAnswer",
                    fields=[
                        ("id", models.BigAutoField(primary_key=True, serialize=False)),
                        ("text", models.TextField()),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "author",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "case",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.PROTECT, related_name="answer", to="compliance.case"
                            ),
                        ),
                    ],
                    options={
                        "db_table": "licensing_customeranswer",
                    },
                ),
                migrations.CreateModel(
                    name="Flag",
                    fields=[
                        ("id", models.BigAutoField(primary_key=True, serialize=False)),
                        (
                            "kind",
                            models.CharField(
                                choices=[
                                    ("purpose_not_permitted", "Purpose Not Permitted"),
                                    ("quota_exhausted_repeatedly", "Quota Exhausted Repeatedly"),
                                    ("rate_limited_repeatedly", "Rate Limited Repeatedly"),
                                    ("used_after_revocation", "Used After Revocation"),
                                    ("receipt_invalid", "Receipt Invalid"),
                                    ("watermark_detected", "Watermark Detected"),
                                ],
                                db_index=True,
                                max_length=32,
                            ),
                        ),
                        (
                            "severity",
                            models.PositiveSmallIntegerField(
                                choices=[(10, "low"), (20, "medium"), (30, "high")], db_index=True
                            ),
                        ),
                        ("evidence", models.JSONField(default=dict)),
                        ("dedupe_key", models.CharField(blank=True, max_length=200, null=True, unique=True)),
                        ("dismissed_at", models.DateTimeField(blank=True, null=True)),
                        ("dismissed_reason", models.CharField(blank=True, max_length=2000)),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "api_key",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="flags",
                                to="licensing.apikey",
                            ),
                        ),
                        (
                            "case",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="flags",
                                to="compliance.case",
                            ),
                        ),
                        (
                            "customer",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="compliance_flags",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "dismissed_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "grant",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="flags",
                                to="licensing.grant",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "licensing_flag",
                        "ordering": ["-severity", "created_at"],
                    },
                ),
                migrations.CreateModel(
                    name="Report",
                    fields=[
                        ("id", models.BigAutoField(primary_key=True, serialize=False)),
                        ("text", models.TextField()),
                        (
                            "receipt",
                            models.TextField(blank=True, help_text="The JWS receipt, when the reporter had one."),
                        ),
                        ("where_url", models.URLField(blank=True, max_length=500)),
                        (
                            "where_text",
                            models.CharField(blank=True, help_text="Where it was found, in words.", max_length=500),
                        ),
                        ("reporter_ip", models.GenericIPAddressField(blank=True, null=True)),
                        (
                            "verification",
                            models.JSONField(
                                default=dict, help_text="inference.verification.verification_run's result."
                            ),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        (
                            "reporter",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="compliance_reports",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "licensing_report",
                        "ordering": ["-created_at"],
                    },
                ),
                migrations.AddField(
                    model_name="case",
                    name="report",
                    field=models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="case",
                        to="compliance.report",
                    ),
                ),
                migrations.CreateModel(
                    name="Decision",
                    fields=[
                        ("id", models.BigAutoField(primary_key=True, serialize=False)),
                        (
                            "action",
                            models.CharField(
                                choices=[
                                    ("dismiss", "Dismiss"),
                                    ("warn", "Warn"),
                                    ("suspend", "Suspend"),
                                    ("revoke", "Revoke"),
                                    ("reinstate", "Reinstate"),
                                ],
                                max_length=10,
                            ),
                        ),
                        ("reason", models.TextField()),
                        ("grant_state_after", models.CharField(max_length=16)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "case",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="decisions",
                                to="compliance.case",
                            ),
                        ),
                        (
                            "staff",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "licensing_decision",
                        "ordering": ["created_at", "id"],
                        "constraints": [
                            models.CheckConstraint(
                                condition=models.Q(("reason", ""), _negated=True), name="decision_reason_required"
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        content_types_moved(
            models=["case", "customeranswer", "decision", "flag", "report"], old_app="licensing", new_app="compliance"
        ),
    ]
