"""Measure the candidate watermarks' detection power on model versions (recall at 50/100/200 tokens
and the perplexity cost) and choose each version's, as publishing does: `manage.py watermark_power [VERSION_ID ...] [--all] [--force]`."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from inference.management.version_arguments import add_version_arguments, versions_named
from inference.power import watermark_power_measure
from training.models import ModelVersion


class Command(BaseCommand):
    help = "Measure the watermark detection power of model versions (here, not on a worker)."

    def add_arguments(self, parser):
        add_version_arguments(parser)

    def handle(self, *args, versions, all, force, **options):
        for version_id in versions_named(versions, all):
            try:
                power = watermark_power_measure(version_id=version_id, force=force)
            except (ModelVersion.DoesNotExist, ValidationError) as exc:
                raise CommandError(f"No model version {version_id}.") from exc
            recall = ", ".join(f"{n} tokens {r:.0%}" for n, r in power.recall.items() if r is not None)
            cost = power.perplexity_cost
            self.stdout.write(f"{version_id}: {power.state}; {power.scheme} for new grants; recall {recall or '—'}"
                              + (f"; perplexity {power.perplexity_plain:.2f} → {power.perplexity_watermarked:.2f}"
                                 f" ({cost:+.1%})" if cost is not None else "")
                              + (f"; error: {power.error}" if power.error else ""))
