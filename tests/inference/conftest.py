"""Fixtures for inference tests: a tiny GPT-2 folder built once per session, and a shared engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from inference.engine import Engine
from tests.support.corpus import corpus_documents
from training.tiny import build_tiny_model

TINY_DIGEST = "0" * 63 + "1"


def quick_train(folder: Path, texts: list[str], *, steps: int = 30, seq: int = 32, batch: int = 8,
                lr: float = 1e-2, seed: int = 0) -> Path:
    """A few optimiser steps so the tiny model writes words of its corpus instead of random bytes.

    Why: random weights sample byte tokens uniformly, so most of the text is broken UTF-8 that does
    not survive decode → re-encode, and a watermark scan of the *text* (what a verifier has) loses
    most of its signal. Real models write valid text; 30 steps (~2 s) get the tiny one there."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    ids = torch.tensor([t for text in texts for t in tokenizer(text)["input_ids"] + [0]])
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    with torch.random.fork_rng(devices=[]):  # dropout draws from the global RNG: same weights every run
        torch.manual_seed(seed)
        for _ in range(steps):
            starts = torch.randint(0, len(ids) - seq - 1, (batch,), generator=generator)
            x = torch.stack([ids[s:s + seq] for s in starts])
            loss = model(input_ids=x, labels=x).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval().save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 (2 layers, 64 wide, 128 positions, ~300-token vocabulary), briefly trained."""
    folder = build_tiny_model(tmp_path_factory.mktemp("tiny-inference") / "model", corpus_documents())
    return quick_train(folder, corpus_documents())


@pytest.fixture
def fresh_engine():
    """An engine of its own (its stats start at zero), batching up to 8 rows."""
    engine = Engine(cache_bytes=64 * 1024 * 1024, max_batch=8)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def engine() -> Engine:
    engine = Engine(cache_bytes=256 * 1024 * 1024)
    yield engine
    engine.close()


# --- A served model version with a licence, for the API tests ---------------------------------

@pytest.fixture(scope="session")
def tiny_stored(tiny_dir: Path) -> dict:
    """The tiny model uploaded once to the project's storage (local media in tests)."""
    from training.artifacts import folder_upload, manifest_digest

    manifest = folder_upload(tiny_dir, "models/inference-tests/tiny")
    return {"prefix": "models/inference-tests/tiny", "manifest": manifest, "digest": manifest_digest(manifest)}


def licence_factory(stored: dict, *, n_positions: int = 128):
    """make(customer=None, **terms_overrides) -> Licence(grant, key, plaintext, version, customer):
    grants on one model version whose files are `stored`, each with its own offer."""
    from dataclasses import dataclass

    from licensing.services import apikey_create
    from tests import factories
    from training.models import ModelVersion

    @dataclass
    class Licence:
        grant: object
        key: object
        plaintext: str
        version: object
        customer: object

    state = {}

    def version():
        if "version" not in state:
            trainer = factories.user(trainer=True, customer=False)
            mv = factories.model_version(trainer)
            ModelVersion.objects.filter(pk=mv.pk).update(
                storage_prefix=stored["prefix"], digest=stored["digest"], n_positions=n_positions,
                files=stored["manifest"])
            mv.refresh_from_db()
            state["version"] = mv
            state["listing"] = factories.listing(trainer, mv=mv)
        return state["version"]

    def make(customer=None, **terms_overrides):
        mv = version()
        terms_overrides.setdefault("rate_limit_per_minute", 1000)
        terms_overrides.setdefault("quota", {"tokens": 100_000, "period": "month"})
        customer = customer or factories.user()
        offer = factories.offer(state["listing"], name=f"offer {factories._n()}", **terms_overrides)
        grant = factories.grant(customer, offer)
        key, plaintext = apikey_create(owner=customer, name="test key", grants=[grant])
        return Licence(grant=grant, key=key, plaintext=plaintext, version=mv, customer=customer)

    make.listing = lambda: state["listing"]
    return make


@pytest.fixture
def make_licence(db, tiny_stored):
    """make_licence(**terms_overrides) -> Licence(grant, key, plaintext, version, customer)."""
    return licence_factory(tiny_stored)


# --- A tiny model trained to a realistic validation perplexity --------------------------------

@pytest.fixture(scope="session")
def trained_tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny GPT-2 trained with the project's loop on the test corpus until its validation
    perplexity is realistic for a fine-tune (measured, ~20-40), with a 256-token context so
    that it writes 200-token texts. {"folder", "val_perplexity", "step"}; a few seconds."""
    from tests.support.trained import train_tiny

    documents = corpus_documents(count=120, length=60, seed=3)
    return train_tiny(tmp_path_factory.mktemp("trained-tiny") / "model", documents, steps=60,
                      context_length=256, n_positions=256, batch_size=4, learning_rate=5e-3)


@pytest.fixture(scope="session")
def trained_stored(trained_tiny: dict) -> dict:
    from training.artifacts import folder_upload, manifest_digest

    manifest = folder_upload(trained_tiny["folder"], "models/inference-tests/trained")
    return {"prefix": "models/inference-tests/trained", "manifest": manifest, "digest": manifest_digest(manifest)}


@pytest.fixture
def make_trained_licence(db, trained_stored):
    """Like make_licence, on the trained tiny model (256 positions)."""
    return licence_factory(trained_stored, n_positions=256)
