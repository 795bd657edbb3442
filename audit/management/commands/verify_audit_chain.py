"""Check the audit hash chain from the first entry, its refusal seals and its signed anchors (and
those of an exported anchors file); name every problem, the first break first; exit 1 if any."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit.anchors import anchors_document_parse
from audit.errors import AnchorsFileInvalid
from audit.services import audit_chain_report


class Command(BaseCommand):
    help = "Verify the audit log's hash chain against its signed anchors and name what is missing or changed."

    def add_arguments(self, parser):
        parser.add_argument("--anchors", metavar="FILE",
                            help="an anchors document exported earlier (audit_anchor --export, /audit/anchors.json)")

    def handle(self, *args, **options):
        exported = _read_anchors(options["anchors"]) if options["anchors"] else None
        report = audit_chain_report(exported=exported)
        if report.problems:
            first, *others = report.problems
            lines = [(f"Audit chain broken at entry #{first.entry_id}: {first.reason} "
                      f"({report.checked} entries before it verified).")]
            lines += [f"Also at entry #{p.entry_id}: {p.reason}." for p in others]
            raise CommandError("\n".join(lines))
        self.stdout.write(self.style.SUCCESS(
            f"Audit chain intact: {report.checked} entries verified, held against {report.anchors} signed "
            f"anchors; {report.unsealed} refusals recorded since the last seal."))


def _read_anchors(path: str):
    try:
        return anchors_document_parse(Path(path).read_text())
    except OSError as exc:
        raise CommandError(f"Cannot read the anchors file {path}: {exc}") from exc
    except AnchorsFileInvalid as exc:
        raise CommandError(exc.message) from exc
