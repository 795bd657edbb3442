"""Output: a rich progress bar on a terminal, plain lines otherwise (a log file, a pipe, CI), so
that what is printed stays readable wherever it goes."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn


def is_terminal() -> bool:
    return sys.stdout.isatty()


class Bar:
    """One progress bar (`update(done, total, info)`), with `print` for lines above it."""

    def __init__(self, description: str, unit: str = ""):
        self.description, self.unit = description, unit
        self.console = Console(highlight=False) if is_terminal() else None
        self.progress = None
        self.task = None
        self._last_plain = 0.0
        self._last_done = None

    def __enter__(self):
        if self.console is not None:
            self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TaskProgressColumn(), TextColumn("{task.fields[info]}"),
                                     TextColumn("ETA"), TimeRemainingColumn(), console=self.console)
            self.progress.__enter__()
            self.task = self.progress.add_task(self.description, total=None, info="")
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def update(self, done: int, total: int | None, info: str = "", eta_seconds: float | None = None) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=done, total=total, info=info)
            return
        now = time.monotonic()
        finished = total is not None and done >= total
        if done != self._last_done and (now - self._last_plain >= 2 or finished):
            self._last_plain, self._last_done = now, done
            eta = f" · ETA {eta_seconds:.0f} s" if eta_seconds is not None else ""
            of = f"/{total}" if total else ""
            print(f"{self.description}: {done}{of}{self.unit}{' · ' + info if info else ''}{eta}", flush=True)

    def print(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, markup=False, highlight=False)
        else:
            print(text, flush=True)
