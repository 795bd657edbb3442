"""A small synthetic corpus for end-to-end training tests: documents joined by <|endoftext|>."""

import random

WORDS = ("the quick brown fox jumps over a lazy dog while rivers run past old stone bridges and quiet "
         "towns sleep under a pale winter moon").split()


def corpus_text(documents: int = 30, words: int = 50, seed: int = 0) -> str:
    rng = random.Random(seed)
    docs = [" ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "." for _ in range(documents)]
    return "\n<|endoftext|>\n".join(docs)
