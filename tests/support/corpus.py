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


# Sentences of one pattern, "The <adjective> <noun> <verb> <preposition> the <adjective> <noun>.":
# each next word's class depends on where in the sentence it stands, so a model has to read its
# context, through its attention and MLP blocks, to predict it. (On words drawn independently, as
# above, the best model is the unigram distribution, which the embeddings alone carry; damage to
# the blocks, say by a bad quantisation, would then change nothing measurable.)
ADJECTIVES = ("quick", "lazy", "old", "pale", "quiet", "brown")
NOUNS = ("fox", "dog", "river", "bridge", "town", "moon")
VERBS = ("jumps", "runs", "sleeps", "waits", "sings")
PREPOSITIONS = ("over", "under", "past", "near")


def sentence_documents(count: int = 200, sentences: int = 8, seed: int = 3) -> list[str]:
    """`count` documents of `sentences` patterned sentences each."""
    rng = random.Random(seed)

    def sentence() -> str:
        return (f"The {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {rng.choice(VERBS)} {rng.choice(PREPOSITIONS)} "
                f"the {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}.")

    return [" ".join(sentence() for _ in range(sentences)) for _ in range(count)]


def sentence_text(documents: int = 200, sentences: int = 8, seed: int = 3) -> str:
    """An upload of patterned sentences, documents separated by <|endoftext|> on lines of their own."""
    return f"\n{DOCUMENT_SEPARATOR}\n".join(sentence_documents(documents, sentences, seed))
