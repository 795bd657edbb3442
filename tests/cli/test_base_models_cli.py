"""`imprint base-models` says which bases the server can train on and why not, and `imprint train`
on one it cannot load is refused at once, saying why and where to look."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.services import token_create
from tests.support.corpus import corpus_text
from tests.support.processes import REPO
from training.models import TrainingJob
from training.services import datasets

pytestmark = [pytest.mark.django_db(transaction=True)]


def _imprint(live_server, token: str, tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "IMPRINT_CONFIG": str(tmp_path / "config.json"), "IMPRINT_TOKEN": token,
           "IMPRINT_URL": live_server.url}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run([sys.executable, "-m", "imprint_cli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_the_cli_lists_base_models_and_refuses_to_train_on_one_the_server_cannot_load(
        trainer, live_server, tmp_path, settings):
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "media")}}}
    _, token = token_create(owner=trainer, name="cli", scopes=["read", "training"])
    listed = _imprint(live_server, token, tmp_path, "base-models")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert any(line.startswith("tiny") and "available " in line for line in lines)
    assert any(line.startswith("imprint-base") and "unavailable  not prepared yet" in line for line in lines)
    assert any(line.startswith("gpt2 ") and "unavailable" in line for line in lines)

    poems = tmp_path / "poems.txt"
    poems.write_text(corpus_text())
    datasets.dataset_create(owner=trainer, name="poems", licence="cc0-1.0", licence_attested=True,
                            upload=SimpleUploadedFile("poems.txt", poems.read_bytes(), content_type="text/plain"))
    refused = _imprint(live_server, token, tmp_path, "train", str(poems), "--base", "gpt2", "--licence", "cc0-1.0")
    assert refused.returncode == 1
    assert "cannot be trained on this server now" in refused.stderr
    assert "`imprint base-models` lists the base models this server can train on now." in refused.stderr
    assert not TrainingJob.objects.exists()
