"""The `imprint` command against a live server process and real workers, as a trainer and then as
a customer: log in with a token, upload, train with samples printed, Ctrl+C pauses the job, the
same command resumes it to the end, publish with an offer; generate, and verify the output."""

from __future__ import annotations

import os
import queue
import re
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

from accounts.services import token_create
from tests import conftest
from tests.support.corpus import corpus_text
from tests.support.processes import REPO, free_port, start_process
from training.models import TrainingJob

# Two trainings on a shared 2-core machine take longer than the suite's default per-test limit.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]


@pytest.fixture
def site(transactional_db):
    port = free_port()
    env = {"DJANGO_SETTINGS_MODULE": "config.settings_test", "DATABASE_URL": conftest.test_database_url(),
           "SITE_URL": f"http://127.0.0.1:{port}"}
    server = start_process("gunicorn", [sys.executable, "-m", "gunicorn", "config.wsgi:application", "-b",
                                        f"127.0.0.1:{port}", "--threads", "4", "--timeout", "120"],
                           env=env, port=port, ready_timeout=60)
    yield f"http://127.0.0.1:{port}"
    server.stop()


class Cli:
    """Runs `python -m imprint_cli` as a separate process, with its own config file."""

    def __init__(self, tmp_path, token: str, name: str):
        self.env = {**os.environ, "IMPRINT_CONFIG": str(tmp_path / name / "config.json"), "IMPRINT_TOKEN": token}
        self.env.pop("DJANGO_SETTINGS_MODULE", None)

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "imprint_cli", *args], env=self.env, cwd=REPO,
                              capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"imprint {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        return done

    def start(self, *args: str) -> tuple[subprocess.Popen, queue.Queue]:
        proc = subprocess.Popen([sys.executable, "-m", "imprint_cli", *args], env=self.env, cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
        return proc, lines


def _read_until(lines: queue.Queue, pattern: str, seen: list[str], timeout: float = 240) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(seen)}")


def test_a_trainer_trains_pauses_resumes_and_publishes_and_a_customer_generates_and_verifies(
        site, celery_workers, make_user, tmp_path):
    celery_workers.start(queues="default,training", pool="threads", concurrency=2)
    tess = make_user("tess", trainer=True, customer=False)
    _, trainer_token = token_create(owner=tess, name="cli", scopes=["read", "training", "marketplace"])
    trainer = Cli(tmp_path, trainer_token, "tess")
    poems = tmp_path / "poems.txt"
    poems.write_text(corpus_text(documents=40, words=60))

    login = trainer.run("login", site)
    assert "as tess" in login.stdout
    assert stat.S_IMODE(os.stat(tmp_path / "tess" / "config.json").st_mode) == 0o600
    trainer.env.pop("IMPRINT_TOKEN")  # from here on, the stored token

    upload = trainer.run("datasets", "upload", str(poems), "--licence", "cc-by-4.0",
                         "--rights-holder", "Ada Poet", "--rights-holder", "Harbour Press")
    assert "40 documents" in upload.stdout
    assert "licence cc-by-4.0, rights held by Ada Poet; Harbour Press" in upload.stdout
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"text with a \x00 NUL byte")
    refused = subprocess.run([sys.executable, "-m", "imprint_cli", "datasets", "upload", str(binary), "--licence",
                              "cc0-1.0"], env=trainer.env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1
    assert "Refused: File looks binary (NUL byte at offset 12); upload plain UTF-8 text. [binary (byte 12)]" \
        in refused.stderr

    # Steps heavy enough (~0.1 s each here) that a pause asked for after step 20 lands well before 100.
    train = ["train", str(poems), "--base", "tiny", "--steps", "100", "--sample-every", "20", "--sample-num", "2",
             "--checkpoint-every", "20", "--batch-size", "8", "--context-length", "64", "--sample-prompt", "The"]
    proc, lines = trainer.start(*train)
    seen: list[str] = []
    _read_until(lines, r"Dataset already uploaded", seen)  # found by its digest, not uploaded again
    job_id = _read_until(lines, r"Started job ([0-9a-f-]{36})", seen).group(1)
    # Ctrl+C once the job is past step 20 (its samples are shown), not on a progress line: the plain
    # progress line prints at most every 2 s, which a fast machine can outrun to the last step.
    _read_until(lines, r"======== SAMPLE 2 \(step 20\)", seen)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=180) == 130, "".join(seen)
    _read_until(lines, r"Paused at step \d+ of 100", seen, timeout=10)
    job = TrainingJob.objects.get(pk=job_id)
    assert job.state == "paused" and 0 < job.step < 100

    again = trainer.run(*train, timeout=400)
    assert f"Resuming job {job_id} from step {job.step}" in again.stdout
    assert "======== SAMPLE 1 (step 100)" in again.stdout
    version_id = re.search(r"Finished: 100 steps\. Model version: ([0-9a-f-]{36})", again.stdout).group(1)
    assert TrainingJob.objects.filter(owner=tess).count() == 1  # resumed, not started twice

    published = trainer.run("publish", version_id, "--title", "Tess Poems",
                            "--offer", "Personal:500:personal,research:100000/month", "--attribution", "Poems by Tess")
    assert "Offer Personal: 500 usd cents, uses personal, research" in published.stdout
    listing_id = re.search(r"as listing ([0-9a-f-]{36})", published.stdout).group(1)

    carl = make_user("carl", trainer=False, customer=True)
    _, customer_token = token_create(owner=carl, name="cli", scopes=["read", "marketplace", "licences"])
    customer = Cli(tmp_path, customer_token, "carl")
    customer.run("login", site)
    _buy_in_test_mode(customer_token, site, listing_id, carl)
    assert "created" in customer.run("keys", "create", "laptop", "--save").stdout

    out = tmp_path / "out.txt"
    generated = customer.run("generate", "tess/tess-poems", "The", "--max-tokens", "80", "--seed", "3",
                             "-o", str(out))
    assert re.search(r"receipt: [0-9a-f-]{36}", generated.stdout) and "licence: " in generated.stdout
    assert out.read_text() and out.read_text() in generated.stdout
    verified = customer.run("verify", str(out))
    assert verified.stdout.startswith("VALID")


def _buy_in_test_mode(token: str, site: str, listing_id: str, customer) -> None:
    """The purchase through the marketplace API with the customer's token; the local test-mode
    payment (a test card typed into the order page) is made through its service."""
    import requests

    from marketplace.services import order_pay_local_test

    headers = {"Authorization": f"Bearer {token}"}
    listing = requests.get(f"{site}/api/v1/marketplace/listings/{listing_id}/", headers=headers, timeout=30).json()
    offer = listing["offers"][0]
    started = requests.post(f"{site}/api/v1/marketplace/offers/{offer['id']}/purchase/", headers=headers,
                            json={"accepted_terms_sha256": offer["terms_sha256"]}, timeout=30)
    assert started.status_code == 201, started.text
    order_pay_local_test(order_id=started.json()["order"]["id"], customer=customer, card_number="4242424242424242")
