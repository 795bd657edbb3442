"""The money's models move to the billing app; their tables and rows stay (billing's 0001 claims them)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('marketplace', '0007_metered_subscriptions_and_invoices'),
    ]

    operations = [
        # The tables stay where they are (Meta.db_table): only Django's state moves.
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.RemoveField(
                model_name='billingcustomer',
                name='user',
            ),
            migrations.RemoveField(
                model_name='invoice',
                name='subscription',
            ),
            migrations.RemoveField(
                model_name='payoutaccount',
                name='user',
            ),
            migrations.RemoveField(
                model_name='payoutentry',
                name='order',
            ),
            migrations.RemoveField(
                model_name='payoutentry',
                name='trainer',
            ),
            migrations.DeleteModel(
                name='StripeEvent',
            ),
            migrations.DeleteModel(
                name='StripeMeter',
            ),
            migrations.RemoveField(
                model_name='subscription',
                name='grant',
            ),
            migrations.RemoveField(
                model_name='subscription',
                name='order',
            ),
            migrations.DeleteModel(
                name='BillingCustomer',
            ),
            migrations.DeleteModel(
                name='Invoice',
            ),
            migrations.DeleteModel(
                name='PayoutAccount',
            ),
            migrations.DeleteModel(
                name='PayoutEntry',
            ),
            migrations.DeleteModel(
                name='Subscription',
            ),
        ], database_operations=[]),
    ]
