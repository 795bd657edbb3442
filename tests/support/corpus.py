"""The synthetic corpus of the tests: sentences drawn from a few dozen words, seeded, so a tiny
model trains on it in seconds and a tokenizer trained on it is always the same."""

from __future__ import annotations

import random

from training.textdata import DOCUMENT_SEPARATOR

# "a" appears twice, so it is drawn twice as often as the other words.
WORDS = ("the quick brown fox jumps over a lazy dog while rivers run past old stone bridges and quiet "
         "towns sleep under a pale winter moon").split()


def corpus_documents(count: int = 40, length: int = 60, seed: int = 0, *, capitalize: bool = False) -> list[str]:
    """`count` documents of `length` words, each ending with a full stop."""
    rng = random.Random(seed)
    documents = [" ".join(rng.choice(WORDS) for _ in range(length)) for _ in range(count)]
    return [(document.capitalize() if capitalize else document) + "." for document in documents]


def corpus_text(documents: int = 30, words: int = 50, seed: int = 0) -> str:
    """An upload: capitalised documents separated by <|endoftext|> on lines of its own."""
    return f"\n{DOCUMENT_SEPARATOR}\n".join(corpus_documents(documents, words, seed, capitalize=True))
