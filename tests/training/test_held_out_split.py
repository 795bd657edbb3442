"""Validation is held out by document: no validation text is ever trained on."""

from __future__ import annotations

import numpy as np

from training.textdata import SPLIT_BY_DOCUMENT, SPLIT_SINGLE_DOCUMENT, document_spans, held_out_split

EOS = 0


def _dataset(lengths: list[int]) -> tuple[list[int], list[set[int]]]:
    """A stream of documents (each followed by eos) whose tokens are unique to their document, so
    a window's tokens say which documents it holds."""
    stream, documents, next_id = [], [], 1
    for length in lengths:
        ids = list(range(next_id, next_id + length))
        next_id += length
        stream += ids + [EOS]
        documents.append(set(ids))
    return stream, documents


def _documents_in(windows, documents: list[set[int]]) -> list[set[int]]:
    """For each window, the documents it holds text of."""
    return [{i for i, doc in enumerate(documents) if doc & set(row)} for row in windows.tolist()]


def test_no_validation_document_shares_a_window_with_training() -> None:
    rng = np.random.default_rng(7)
    stream, documents = _dataset([int(n) for n in rng.integers(20, 400, size=60)])
    split = held_out_split(stream, eos_id=EOS, context_length=64, val_fraction=0.1, seed=42)
    train_docs = set().union(*_documents_in(split.train, documents))
    val_docs = set().union(*_documents_in(split.val, documents))
    assert train_docs and val_docs and not train_docs & val_docs
    assert len(train_docs | val_docs) == len(documents)  # every document is on one side
    assert (split.train_documents, split.val_documents) == (len(train_docs), len(val_docs))
    assert split.val_tokens == sum(len(documents[i]) for i in val_docs)
    assert split.train_tokens + split.val_tokens == sum(len(d) for d in documents)
    assert split.val_tokens >= 0.1 * (split.train_tokens + split.val_tokens)
    assert split.rule == SPLIT_BY_DOCUMENT


def test_the_split_is_a_function_of_the_seed() -> None:
    stream, documents = _dataset([50] * 40)
    first = held_out_split(stream, eos_id=EOS, context_length=16, seed=1)
    again = held_out_split(stream, eos_id=EOS, context_length=16, seed=1)
    other = held_out_split(stream, eos_id=EOS, context_length=16, seed=2)
    assert first.val.tolist() == again.val.tolist() and first.train.tolist() == again.train.tolist()
    assert _documents_in(first.val, documents) != _documents_in(other.val, documents)


def test_every_token_of_every_training_document_is_a_target() -> None:
    stream, documents = _dataset([30, 45, 12, 80, 33, 21, 60])
    split = held_out_split(stream, eos_id=EOS, context_length=8, val_fraction=0.2, seed=0)
    targets = set(split.train[:, 1:].flatten().tolist())
    train_docs = set().union(*_documents_in(split.train, documents))
    # Only the partial chunk at the end of the packed stream (fewer than 8 tokens) is left out.
    missing = set().union(*(documents[i] for i in train_docs)) - targets
    assert len(missing) < 8


def test_a_single_document_holds_out_its_tail() -> None:
    stream, documents = _dataset([200])
    split = held_out_split(stream, eos_id=EOS, context_length=16, val_fraction=0.1, seed=0)
    assert split.rule == SPLIT_SINGLE_DOCUMENT
    assert (split.train_tokens, split.val_tokens) == (180, 20)
    train_tokens = set(split.train.flatten().tolist()) - {EOS}
    val_tokens = set(split.val.flatten().tolist()) - {EOS}
    assert not train_tokens & val_tokens
    assert max(train_tokens) < min(val_tokens)  # the tail, not a random part


def test_training_keeps_a_document_however_large_the_fraction() -> None:
    stream, _ = _dataset([10, 10])
    split = held_out_split(stream, eos_id=EOS, context_length=4, val_fraction=0.9, seed=3)
    assert (split.train_documents, split.val_documents) == (1, 1)


def test_document_spans_follow_the_eos_separators() -> None:
    assert document_spans([5, 6, EOS, 7, EOS, EOS, 8], EOS) == [(0, 2), (3, 4), (6, 7)]
