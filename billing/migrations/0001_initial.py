"""Customers, Connect accounts, Stripe events, meters, subscriptions, invoices and the payouts ledger
move here from the marketplace; their tables keep their names and rows."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from core.migration_ops import content_types_moved

MOVED = ["billingcustomer", "invoice", "payoutaccount", "payoutentry", "stripeevent", "stripemeter", "subscription"]


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('licensing', '0006_grant_watermark_params'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('marketplace', '0008_billing_models_move_to_billing'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # The tables stay where they are (Meta.db_table): only Django's state moves.
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.CreateModel(
                name='StripeEvent',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('event_id', models.CharField(max_length=100, unique=True)),
                    ('type', models.CharField(max_length=100)),
                    ('object_id', models.CharField(blank=True, max_length=100)),
                    ('payload', models.JSONField()),
                    ('outcome', models.CharField(blank=True, max_length=200)),
                    ('received_at', models.DateTimeField(auto_now_add=True)),
                ],
                options={
                    'db_table': 'marketplace_stripeevent',
                    'ordering': ['-received_at'],
                },
            ),
            migrations.CreateModel(
                name='StripeMeter',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('event_name', models.CharField(max_length=100, unique=True)),
                    ('stripe_meter_id', models.CharField(max_length=100, unique=True)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                ],
                options={
                    'db_table': 'marketplace_stripemeter',
                },
            ),
            migrations.CreateModel(
                name='BillingCustomer',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('stripe_customer_id', models.CharField(max_length=100, unique=True)),
                    ('default_payment_method', models.CharField(blank=True, max_length=100)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='billing', to=settings.AUTH_USER_MODEL)),
                ],
                options={
                    'db_table': 'marketplace_billingcustomer',
                },
            ),
            migrations.CreateModel(
                name='PayoutAccount',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('stripe_account_id', models.CharField(max_length=100, unique=True)),
                    ('transfers_active', models.BooleanField(default=False)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='payout_account', to=settings.AUTH_USER_MODEL)),
                ],
                options={
                    'db_table': 'marketplace_payoutaccount',
                },
            ),
            migrations.CreateModel(
                name='Subscription',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('provider', models.CharField(choices=[('stripe', 'Stripe'), ('local_test', 'Local Test')], max_length=16)),
                    ('state', models.CharField(choices=[('pending', 'Pending'), ('active', 'Active'), ('past_due', 'Past Due'), ('suspended', 'Suspended'), ('ended', 'Ended')], db_index=True, default='pending', max_length=16)),
                    ('stripe_subscription_id', models.CharField(blank=True, max_length=100, null=True, unique=True)),
                    ('connect_account', models.CharField(blank=True, max_length=100)),
                    ('started_at', models.DateTimeField(blank=True, null=True)),
                    ('current_period_start', models.DateTimeField(blank=True, null=True)),
                    ('past_due_since', models.DateTimeField(blank=True, null=True)),
                    ('attempts', models.PositiveIntegerField(default=0)),
                    ('last_error', models.CharField(blank=True, max_length=300)),
                    ('next_attempt_at', models.DateTimeField(blank=True, null=True)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('updated_at', models.DateTimeField(auto_now=True)),
                    ('grant', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='subscription', to='licensing.grant')),
                    ('order', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='subscription', to='marketplace.order')),
                ],
                options={
                    'db_table': 'marketplace_subscription',
                    'ordering': ['-created_at'],
                },
            ),
            migrations.CreateModel(
                name='Invoice',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('reference', models.CharField(help_text='Stripe invoice id (or test-mode id).', max_length=100, unique=True)),
                    ('state', models.CharField(choices=[('open', 'Open'), ('paid', 'Paid'), ('failed', 'Failed'), ('refunded', 'Refunded'), ('disputed', 'Disputed')], db_index=True, default='open', max_length=16)),
                    ('period_start', models.DateTimeField()),
                    ('period_end', models.DateTimeField()),
                    ('tokens', models.PositiveBigIntegerField(help_text="Tokens billed (the meter's sum for the period).")),
                    ('amount_cents', models.PositiveBigIntegerField()),
                    ('currency', models.CharField(max_length=3)),
                    ('payment_reference', models.CharField(blank=True, db_index=True, max_length=100)),
                    ('hosted_url', models.URLField(blank=True, max_length=500)),
                    ('failure_message', models.CharField(blank=True, max_length=300)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('paid_at', models.DateTimeField(blank=True, null=True)),
                    ('subscription', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='invoices', to='billing.subscription')),
                ],
                options={
                    'db_table': 'marketplace_invoice',
                    'ordering': ['-period_start'],
                },
            ),
            migrations.CreateModel(
                name='PayoutEntry',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('kind', models.CharField(choices=[('sale', 'Sale'), ('metered', 'Metered'), ('refund', 'Refund')], default='sale', max_length=16)),
                    ('reference', models.CharField(help_text='Stripe object the money came from.', max_length=100)),
                    ('gross_cents', models.PositiveBigIntegerField()),
                    ('platform_fee_cents', models.PositiveBigIntegerField()),
                    ('trainer_cents', models.PositiveBigIntegerField()),
                    ('currency', models.CharField(max_length=3)),
                    ('via_connect', models.BooleanField(default=False)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('order', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='payouts', to='marketplace.order')),
                    ('trainer', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='payouts', to=settings.AUTH_USER_MODEL)),
                ],
                options={
                    'db_table': 'marketplace_payoutentry',
                    'ordering': ['-created_at'],
                    'constraints': [models.UniqueConstraint(fields=('kind', 'reference'), name='uniq_payout_per_charge')],
                },
            ),
        ], database_operations=[]),
        content_types_moved(models=MOVED, old_app="marketplace", new_app="billing"),
    ]
