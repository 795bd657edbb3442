"""Promises of model fetching: by digest, verified, and the web tier's tokenizer without weights."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from inference.modelstore import (
    ModelIntegrityError,
    model_folder_fetch,
    tokenizer_folder_fetch,
    tokenizer_for,
)


@pytest.fixture
def own_cache(settings, tmp_path):
    settings.VAR_DIR = tmp_path  # an empty model cache for this test
    return tmp_path / "model-cache"


def test_a_model_is_fetched_once_into_the_cache_under_its_digest(make_licence, own_cache):
    version = make_licence().version
    folder = model_folder_fetch(version)
    assert folder == own_cache / version.digest and (folder / "model.safetensors").is_file()
    assert model_folder_fetch(version) == folder


def test_the_tokenizer_is_fetched_without_the_weights(make_licence, own_cache):
    version = make_licence().version
    folder = tokenizer_folder_fetch(version)
    assert (folder / "tokenizer.json").is_file() and not (folder / "model.safetensors").exists()
    assert tokenizer_for(version)("the quick")["input_ids"]


def test_a_stored_model_that_differs_from_its_digest_is_never_served(make_licence, own_cache, tiny_stored):
    version = make_licence().version
    prefix = "models/inference-tests/tampered"
    for entry in tiny_stored["manifest"]:
        with default_storage.open(f"{tiny_stored['prefix']}/{entry['name']}", "rb") as src:
            data = src.read()
        if entry["name"] == "tokenizer.json":
            data = data.replace(b'"the"', b'"thy"', 1)
        name = f"{prefix}/{entry['name']}"
        if default_storage.exists(name):
            default_storage.delete(name)
        default_storage.save(name, ContentFile(data))
    version.storage_prefix = prefix
    with pytest.raises(ModelIntegrityError):
        model_folder_fetch(version)
    with pytest.raises(ModelIntegrityError):
        tokenizer_folder_fetch(version)
    assert not list(own_cache.glob(f"**/{version.digest}"))
