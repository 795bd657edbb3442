"""Check whether model versions may be served at a precision below fp32, here rather than on a
worker: `manage.py precision_check VERSION_ID ... [--all] [--precision int8] [--force]`. Without
--precision each version's requested precision (its trainer's choice, else INFERENCE_PRECISION)
is checked; after changing INFERENCE_PRECISION, `--all` measures every listed version."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from core.errors import DomainError
from inference.management.version_arguments import add_version_arguments, versions_named
from inference.models import PrecisionCheck
from inference.precision import FP32, precision_check_measure, precision_requested
from training.models import ModelVersion


class Command(BaseCommand):
    help = "Measure the perplexity of model versions at a precision against fp32, on their validation windows."

    def add_arguments(self, parser):
        add_version_arguments(parser)
        parser.add_argument("--precision", default="", help="int8 or bf16 (default: what each version asks for)")

    def handle(self, *args, versions, all, precision, force, **options):
        for version_id in versions_named(versions, all):
            version = self._version(version_id)
            wanted = precision or precision_requested(version)
            if wanted == FP32 and not precision:
                self.stdout.write(f"{version_id}: served at fp32; nothing to check (pass --precision int8 or bf16).")
                continue
            try:
                check = precision_check_measure(version_id=version.pk, precision=wanted, force=force)
            except DomainError as exc:
                raise CommandError(exc.message) from exc
            self.stdout.write(f"{version_id}: {self._figures(check)}")

    def _version(self, version_id) -> ModelVersion:
        try:
            return ModelVersion.objects.get(pk=version_id)
        except (ModelVersion.DoesNotExist, ValidationError) as exc:
            raise CommandError(f"No model version {version_id}.") from exc

    @staticmethod
    def _figures(check) -> str:
        if check.state != PrecisionCheck.State.DONE:
            return f"{check.precision} {check.state}" + (f": {check.error}" if check.error else "")
        verdict = "accepted" if check.accepted else "refused"
        if check.increase is None:
            return f"{check.precision} {verdict}: perplexity fp32 {check.perplexity_fp32:.3f}, {check.error}"
        return (f"{check.precision} {verdict}: perplexity {check.perplexity_fp32:.3f} (fp32) → {check.perplexity:.3f} "
                f"({check.increase * 100:+.2f} %, bound {check.bound * 100:g} %) on {check.windows} validation windows "
                f"of {check.window_tokens} tokens, {check.device}, {check.seconds:.1f} s")
