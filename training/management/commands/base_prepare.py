"""Prepare the built-in pretrained base (`imprint-base`) on this installation.

    manage.py base_prepare                # here and now, with its progress (minutes on a CPU)
    manage.py base_prepare --background   # send it to a training worker (what `dev.py run` does)
    manage.py base_prepare --force        # prepare it again although it is ready
    manage.py base_prepare --folder DIR   # install a folder prepared elsewhere

When another process is already preparing it, the command follows that preparation instead of
starting a second one, and ends when it does.
"""

import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from training.builtin_base import BUILTIN
from training.models import BuiltinBase
from training.services import bases

State = BuiltinBase.State


class Command(BaseCommand):
    help = "Prepare the built-in pretrained base model (imprint-base) on this installation."

    def add_arguments(self, parser):
        parser.add_argument("--background", action="store_true",
                            help="Send the preparation to a training worker and return at once.")
        parser.add_argument("--force", action="store_true", help="Prepare it again although it is ready.")
        parser.add_argument("--folder", type=Path, help="Install a built-in base folder prepared elsewhere.")

    def handle(self, *args, background=False, force=False, folder=None, **options):
        if folder is not None:
            row = bases.builtin_base_install(folder=folder)
            return self._report(row)
        if background:
            row = bases.builtin_base_enqueue()
            bases.hub_probe_enqueue()
            if row.state == State.READY:
                self.stdout.write(f"{BUILTIN} is ready (digest {row.digest[:12]}).")
            else:
                self.stdout.write(f"{BUILTIN} is preparing in the background on a training worker "
                                  f"({row.progress:.0f} %, {row.phase}).")
            return None
        row = bases.builtin_base_prepare(force=force, echo=self._echo)
        if row.state == State.PREPARING:
            row = self._follow()
        return self._report(row)

    def _echo(self, percent: float, phase: str) -> None:
        end = "\r" if sys.stdout.isatty() else "\n"
        self.stdout.write(f"  {percent:5.1f} %  {phase:<60}", ending=end)
        self.stdout.flush()

    def _follow(self) -> BuiltinBase:
        self.stdout.write(f"{BUILTIN} is being prepared by another process; following it …")
        last = None
        while True:
            row = bases.builtin_base_row()
            if row.state != State.PREPARING:
                return row
            if (row.progress, row.phase) != last:
                self._echo(row.progress, row.phase)
                last = (row.progress, row.phase)
            time.sleep(2)

    def _report(self, row: BuiltinBase) -> None:
        if row.state != State.READY:
            raise CommandError(f"{BUILTIN} is {row.state}: {row.error or row.phase}")
        facts = row.facts
        timings = facts.get("timings", {})
        self.stdout.write(self.style.SUCCESS(
            f"\n{BUILTIN} is ready: {facts.get('parameters', 0):,} parameters ({facts.get('size')}), "
            f"validation loss {facts.get('val_loss') or 0:.3f}, digest {row.digest[:12]}, "
            f"pretrained in {timings.get('total_seconds', 0):.0f} s, stored under {row.storage_prefix}/"))
