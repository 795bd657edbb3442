"""A LoRA job on a pretrained base, from creation to a downloadable adapter version: the method
defaults by base, the version is a peft folder naming its base by digest, the owner downloads it
(adapter or merged) and the libraries alone load it to the same greedy tokens Imprint serves."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile
from transformers import AutoModelForCausalLM, AutoTokenizer

from inference.engine import Engine, GenerationRequest
from inference.modelstore import engine_source
from tests.inference.conftest import quick_train
from tests.support.corpus import corpus_documents, corpus_text
from training import job_runner, services
from training.models import ModelVersion
from training.services.access import dataset_lend
from training.tiny import build_tiny_model

pytestmark = pytest.mark.django_db
HP = {"steps": 8, "batch_size": 4, "context_length": 32, "sample_every": 4, "checkpoint_every": 4,
      "sample_count": 1, "sample_max_new_tokens": 8, "learning_rate": 5e-3, "lora_r": 4}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """A tiny GPT-2 trained for some steps, standing in for a pretrained base."""
    folder = build_tiny_model(tmp_path_factory.mktemp("gpt2-stand-in") / "model", corpus_documents())
    return quick_train(folder, corpus_documents(), steps=40)


@pytest.fixture
def gpt2_here(settings, pretrained, tmp_path):
    settings.TRAINING_BASE_MODEL_PATHS = {"gpt2": str(pretrained)}
    settings.TRAINING_MAX_CONCURRENT_JOBS = 5
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return pretrained


def dataset_of(owner):
    upload = SimpleUploadedFile("c.txt", corpus_text().encode(), content_type="text/plain")
    return services.dataset_create(owner=owner, name="c", upload=upload, licence="cc0-1.0", licence_attested=True)


def test_the_method_defaults_to_lora_on_pretrained_bases_and_full_from_scratch(trainer, gpt2_here):
    dataset = dataset_of(trainer)
    on_gpt2 = services.job_create(owner=trainer, dataset=dataset, name="", base_model="gpt2", hyperparameters=HP)
    on_tiny = services.job_create(owner=trainer, dataset=dataset, name="", base_model="tiny", hyperparameters=HP)
    chosen = services.job_create(owner=trainer, dataset=dataset, name="", base_model="gpt2",
                                 hyperparameters={**HP, "method": "full"})
    assert [j.hyperparameters["method"] for j in (on_gpt2, on_tiny, chosen)] == ["lora", "full", "full"]


def greedy(model, tokenizer, prompt: str, new: int = 10) -> list[int]:
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.eval().generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=new,
                                    min_new_tokens=new, pad_token_id=0)
    return out[0, ids.shape[1]:].tolist()


def test_a_lora_version_downloads_and_loads_with_peft_to_the_tokens_imprint_serves(
        trainer, make_user, gpt2_here, client, tmp_path):
    from peft import PeftModel

    job = services.job_create(owner=trainer, dataset=dataset_of(trainer), name="lora", base_model="gpt2",
                              hyperparameters=HP)
    assert job_runner.job_run(job_id=job.pk, worker_id="in-test") == "succeeded"
    version = ModelVersion.objects.get(job=job)
    assert version.method == "lora" and len(version.base_digest) == 64
    names = {f["name"] for f in version.files}
    assert {"adapter_config.json", "adapter_model.safetensors", "imprint_base.json", "README.md"} <= names
    assert "model.safetensors" not in names and version.stored_bytes < 200_000
    assert "LoRA adapter" in version.card and "library_name: peft" in version.card

    # Imprint serves it: the adapter on its resident base
    engine = Engine(cache_bytes=64 * 1024 * 1024)
    try:
        served = engine.generate(GenerationRequest(**engine_source(version), prompt="The", max_new_tokens=10,
                                                   temperature=0, stop_at_eos=False), timeout=60)
    finally:
        engine.close()
    assert served.model_digest == version.digest

    client.force_login(trainer)
    response = client.get(f"/api/v1/training/versions/{version.pk}/download/")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    adapter = tmp_path / "adapter"
    zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).extractall(adapter)
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == "gpt2"
    tokenizer = AutoTokenizer.from_pretrained(gpt2_here)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(gpt2_here), adapter)
    assert greedy(model, tokenizer, "The") == served.completions[0].token_ids

    merged = client.get(f"/api/v1/training/versions/{version.pk}/download/?merged=1")
    assert merged.status_code == 200
    whole = tmp_path / "merged"
    zipfile.ZipFile(io.BytesIO(b"".join(merged.streaming_content))).extractall(whole)
    assert greedy(AutoModelForCausalLM.from_pretrained(whole), AutoTokenizer.from_pretrained(whole), "The") \
        == served.completions[0].token_ids

    page = client.get(f"/studio/versions/{version.pk}/")
    assert b"LoRA adapter" in page.content and b"download/?merged=1" in page.content

    # a stranger gets nothing; a version on exclusively lent data stays here
    client.force_login(make_user("mallory", trainer=True))
    assert client.get(f"/api/v1/training/versions/{version.pk}/download/").status_code == 404
    dataset_lend(dataset=version.job.dataset, user=trainer, purpose="commission:x", exclusive=True)
    client.force_login(trainer)
    refused = client.get(f"/api/v1/training/versions/{version.pk}/download/")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "version_held"
