"""QuotaReservation moves to licensing (which owns a grant's quota); its table keeps its name."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("inference", "0002_quotareservation"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.DeleteModel(name="QuotaReservation"),
        ], database_operations=[]),
    ]
