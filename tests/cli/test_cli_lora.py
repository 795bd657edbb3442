"""A LoRA on the built-in base from a terminal: `imprint train --base imprint-base --method lora
--lora-r 4 …` starts the job and says how it trains, Ctrl+C pauses it with its adapter checkpoint,
the same command resumes it to the end, `imprint versions` lists the adapter, `imprint versions
download` saves the peft folder (and `--merged` a whole model) that peft and transformers load, and
`imprint publish` sells it."""

from __future__ import annotations

import re
import signal
import threading
import zipfile

import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from peft import PeftModel
from transformers import AutoModelForCausalLM

from accounts.services import token_create
from tests.cli.test_cli_journey import Cli, _read_until
from tests.faults.services import wait_for
from tests.journeys.test_lora_journey import PAUSE_AT, held_at_pause_step  # noqa: F401 - a fixture used by name
from tests.support.corpus import corpus_text
from training import artifacts, job_runner
from training.builtin_base import BUILTIN
from training.models import ModelVersion, TrainingJob
from training.services import datasets

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(400)]
TRAIN = ["--base", BUILTIN, "--method", "lora", "--lora-r", "4", "--lora-alpha", "8", "--steps", "16",
         "--sample-every", "8", "--sample-num", "1", "--sample-length", "8", "--checkpoint-every", "8",
         "--batch-size", "4", "--context-length", "32", "--lr", "5e-3", "--early-stopping-patience", "100",
         "--licence", "cc0-1.0"]


def _worker(job_id: str, name: str) -> tuple[threading.Thread, list]:
    """A training worker's run of the job, in this process (which holds the test's base and media)."""
    outcome: list = []

    def run():
        try:
            outcome.append(job_runner.job_run(job_id=job_id, worker_id=name))
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_a_trainer_trains_a_lora_from_the_cli_pauses_resumes_downloads_and_publishes(
        builtin_base, live_server, make_user, held_at_pause_step, settings, tmp_path):
    settings.TRAINING_MAX_CONCURRENT_JOBS = 5
    tess = make_user("tess", trainer=True, customer=False)
    _, token = token_create(owner=tess, name="cli", scopes=["read", "training", "marketplace"])
    cli = Cli(tmp_path, token, "tess")
    cli.run("login", live_server.url)
    sea = tmp_path / "sea.txt"
    sea.write_text(corpus_text())
    # Uploaded before, as `imprint datasets upload` does (its processing is a worker's, tested with the
    # CLI's other journey): the train command finds it by its digest.
    datasets.dataset_create(owner=tess, name="sea", licence="cc0-1.0", licence_attested=True,
                            upload=SimpleUploadedFile("sea.txt", sea.read_bytes(), content_type="text/plain"))

    proc, lines = cli.start("train", str(sea), *TRAIN)
    seen: list[str] = []
    _read_until(lines, r"Dataset already uploaded: sea", seen, timeout=60)
    started = _read_until(lines, r"Started job ([0-9a-f-]{36}) \(16 steps on imprint-base, (.*)\)\.", seen, timeout=120)
    job_id = started.group(1)
    assert started.group(2) == "LoRA r 4, alpha 8"
    worker, outcome = _worker(job_id, "worker-a")
    wait_for(lambda: TrainingJob.objects.get(pk=job_id).step >= PAUSE_AT, timeout=60, what="step 3")

    # Ctrl+C: the CLI asks the server to pause; the worker stops at its next step with a checkpoint.
    proc.send_signal(signal.SIGINT)
    wait_for(lambda: TrainingJob.objects.get(pk=job_id).control_request == "pause", timeout=60,
             what="the pause request")
    held_at_pause_step.set()
    worker.join(60)
    assert proc.wait(timeout=60) == 130, "".join(seen)
    _read_until(lines, rf"Paused at step {PAUSE_AT} of 16\. Run the same command again to resume\.", seen, timeout=10)
    assert outcome == ["paused"]
    paused = TrainingJob.objects.get(pk=job_id)
    assert paused.state == "paused" and paused.checkpoints.filter(step=PAUSE_AT).exists()

    # The same command resumes the same job from its adapter checkpoint.
    proc, lines = cli.start("train", str(sea), *TRAIN)
    seen = []
    _read_until(lines, rf"Resuming job {job_id} from step {PAUSE_AT} \(16 steps on imprint-base, LoRA r 4, alpha 8\)",
                seen, timeout=120)
    worker, outcome = _worker(job_id, "worker-b")
    worker.join(300)
    assert outcome == ["succeeded"]
    assert proc.wait(timeout=60) == 0, "".join(seen)
    version_id = _read_until(lines, r"Finished: 16 steps\. Model version: ([0-9a-f-]{36})", seen, timeout=10).group(1)
    version = ModelVersion.objects.get(pk=version_id)
    assert version.is_adapter and version.base_digest == builtin_base.digest
    assert TrainingJob.objects.filter(owner=tess).count() == 1  # resumed, not started twice
    assert TrainingJob.objects.get(pk=job_id).resumed_from_step == PAUSE_AT

    listed = cli.run("versions").stdout
    assert re.search(rf"{version_id} .* lora", listed)

    # The adapter as its owner downloads it: a peft folder naming its base, loadable by peft alone.
    adapter_zip = tmp_path / "adapter.zip"
    assert "Saved" in cli.run("versions", "download", version_id, "-o", str(adapter_zip)).stdout
    merged_zip = tmp_path / "merged.zip"
    cli.run("versions", "download", version_id, "--merged", "-o", str(merged_zip))
    with zipfile.ZipFile(adapter_zip) as archive:
        names = set(archive.namelist())
        assert {"adapter_config.json", "adapter_model.safetensors"} <= names and "model.safetensors" not in names
        archive.extractall(tmp_path / "adapter")
    with zipfile.ZipFile(merged_zip) as archive:
        assert "model.safetensors" in archive.namelist()
        archive.extractall(tmp_path / "merged")
    base_folder = tmp_path / "base"
    artifacts.folder_download(version.base_prefix, base_folder)
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_folder), tmp_path / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    prompt = torch.tensor([[1, 5, 9, 13]])
    with torch.no_grad():
        assert torch.allclose(adapted(prompt).logits, merged(prompt).logits, atol=1e-4)

    published = cli.run("publish", version_id, "--title", "Sea Adapter", "--acknowledge-memorisation",
                        "--offer", "Personal:500:personal,research:100000/month", "--attribution", "Sea by Tess")
    assert re.search(r"as listing ([0-9a-f-]{36})", published.stdout)
    assert "Offer Personal: 500 usd cents, uses personal, research" in published.stdout
