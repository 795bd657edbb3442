"""Grants bought on a metered offer are marked metered (inference writes meter events for them)."""

from django.db import migrations


def mark_metered(apps, schema_editor):
    order = apps.get_model("marketplace", "Order")
    grant = apps.get_model("licensing", "Grant")
    metered = order.objects.filter(grant__isnull=False, offer__metered_cents_per_1k__gt=0).values("grant_id")
    grant.objects.filter(pk__in=metered).update(metered=True)


class Migration(migrations.Migration):

    dependencies = [
        ("licensing", "0004_grant_metered"),
        ("marketplace", "0004_payout_account_transfers_active"),
    ]

    operations = [
        migrations.RunPython(mark_metered, migrations.RunPython.noop),
    ]
