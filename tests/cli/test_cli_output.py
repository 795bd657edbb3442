"""What the CLI prints: a licence in readable lines, and a bar that stops where the job paused."""

from __future__ import annotations

from imprint_cli import cli


def test_a_receipt_licence_prints_as_readable_lines():
    lines = cli.licence_lines({"terms_id": "ab" * 32, "ownership": "licensed", "uses": ["personal", "research"],
                               "attribution": "Harbour Logbook (Imprint)", "schema": "imprint-terms/2"})
    assert lines == ["Ownership: the trainer keeps the rights; the customer holds a licence to use it",
                     "Permitted uses: personal, research", "Attribution: Harbour Logbook (Imprint)",
                     f"Licence terms: {'ab' * 32}"]
    assert not any("{" in line for line in lines)


class _Bar:
    def __init__(self):
        self.updates, self.lines = [], []

    def update(self, done, total, info="", eta_seconds=None):
        self.updates.append((done, total))

    def print(self, text):
        self.lines.append(text)


class _Client:
    def post(self, path):
        return {"state": "paused", "step": 820, "total_steps": 3000}


def test_after_a_pause_the_bar_shows_the_step_the_message_names():
    bar = _Bar()
    assert cli._pause(_Client(), "job-1", bar) == 130
    assert bar.updates[-1] == (820, 3000)
    assert "Paused at step 820 of 3000" in bar.lines[-1]
