"""The arguments of the commands that measure model versions (watermark_power, precision_check)."""

from django.core.management.base import CommandError

from training.models import ModelVersion


def add_version_arguments(parser) -> None:
    parser.add_argument("versions", nargs="*", help="model version ids")
    parser.add_argument("--all", action="store_true", help="every version with a listing")
    parser.add_argument("--force", action="store_true", help="measure again even if measured")


def versions_named(versions: list[str], every_listed: bool) -> list[str]:
    """The version ids a command was given, or with --all every listed version's. Raises
    CommandError when there are none."""
    if every_listed:
        versions = [str(pk) for pk in ModelVersion.objects.filter(listing__isnull=False).values_list("pk", flat=True)]
    if not versions:
        raise CommandError("Name model version ids, or pass --all.")
    return versions
