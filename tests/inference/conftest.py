"""Fixtures for inference tests: a tiny GPT-2 folder built once per session, and a shared engine."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from inference.engine import Engine
from training.tiny import build_tiny_model

WORDS = (
    "the quick brown fox jumps over a lazy dog while rivers run past old stone bridges "
    "and quiet towns sleep under a pale winter moon"
).split()
TINY_DIGEST = "0" * 63 + "1"


def corpus(count: int = 40, length: int = 60, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(length)) + "." for _ in range(count)]


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 (2 layers, 64 wide, 128 positions, ~300-token vocabulary), random weights."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-inference") / "model", corpus())


@pytest.fixture(scope="session")
def engine() -> Engine:
    engine = Engine(cache_bytes=256 * 1024 * 1024)
    yield engine
    engine.close()
