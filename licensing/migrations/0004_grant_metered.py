from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("licensing", "0003_flag_dismissal"),
    ]

    operations = [
        migrations.AddField(
            model_name="grant",
            name="metered",
            field=models.BooleanField(default=False),
        ),
    ]
