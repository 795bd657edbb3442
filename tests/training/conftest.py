"""Shared fixtures for the training core: a tiny GPT-2 built once per session, and its windows."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from tests.support.corpus import corpus_documents
from training.textdata import encode_documents, make_windows, split_windows
from training.tiny import build_tiny_model

CONTEXT = 32


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    return corpus_documents()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, corpus: list[str]) -> Path:
    """A tiny GPT-2 (2 layers, 64 wide, 128 positions) with a tokenizer trained on the corpus."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", corpus)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def windows(corpus: list[str], tiny_tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation) windows of CONTEXT tokens."""
    ids = encode_documents(corpus, tiny_tokenizer)
    return split_windows(make_windows(ids, CONTEXT), val_fraction=0.1)
