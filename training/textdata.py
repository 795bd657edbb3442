"""Turning an uploaded text file into documents, token ids and training windows.

Upload format: UTF-8 text; documents are separated by `<|endoftext|>` (GPT-2's separator), and a
file without separators is one document.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

DOCUMENT_SEPARATOR = "<|endoftext|>"
PREVIEW_DOCUMENTS = 3
PREVIEW_CHARS = 300
# Cached ids are stored as little-endian int32: GPT-2's 50,257 ids need more than 16 bits, and a
# fixed byte order keeps caches portable between machines.
_ID_DTYPE = np.dtype("<i4")


class DatasetInvalid(Exception):
    """An upload that cannot be used as a dataset; `code` is the stable reason, `message` is for
    people. This module has no Django: the dataset services refuse the upload with
    training.errors.DatasetRefused, carrying this reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_documents(raw: bytes, max_bytes: int) -> list[str]:
    """Split an upload into stripped, non-empty documents.

    Raises DatasetInvalid with code "too_large" (over `max_bytes`, checked before decoding),
    "not_utf8" (message names the offset of the first bad byte), "empty" (no bytes or only
    whitespace) or "no_documents" (only separators and whitespace).
    """
    if len(raw) > max_bytes:
        raise DatasetInvalid(
            "too_large", f"File is {_megabytes(len(raw))} MB; the limit is {_megabytes(max_bytes)} MB."
        )
    text = _decode_utf8(raw)
    if not text.strip():
        raise DatasetInvalid("empty", "File is empty.")
    documents = [part.strip() for part in text.split(DOCUMENT_SEPARATOR)]
    documents = [document for document in documents if document]
    if not documents:
        raise DatasetInvalid("no_documents", "File holds only document separators, no text.")
    return documents


def _decode_utf8(raw: bytes) -> str:
    """Decode strictly; a leading byte-order mark (common from Windows editors) is dropped."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DatasetInvalid(
            "not_utf8", f"File is not valid UTF-8: invalid byte at offset {error.start}."
        ) from None
    return text.removeprefix("\ufeff")


def _megabytes(size: int) -> str:
    """Bytes as MB (10^6, as people read file sizes), without a trailing '.0'."""
    return f"{size / 1_000_000:.1f}".removesuffix(".0")


def _token_counts(documents: Sequence[str], tokenizer: Any) -> list[int]:
    return [len(ids) for ids in _encode_each(documents, tokenizer)]


def _encode_each(documents: Sequence[str], tokenizer: Any) -> list[list[int]]:
    """Token ids per document, without special tokens.

    Goes through the Rust tokenizer directly: the Python wrapper would warn about documents longer
    than the model's context, which is expected here (they are cut into windows later).
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return [tokenizer.encode(document, add_special_tokens=False) for document in documents]
    encodings = backend.encode_batch(list(documents), add_special_tokens=False)
    return [encoding.ids for encoding in encodings]


def dataset_stats(documents: Sequence[str], tokenizer: Any) -> dict[str, Any]:
    """Counts for the dataset page: documents, characters, tokens (eos separators not counted),
    the shortest and longest document in characters and in tokens, and a preview of the first three
    documents, each cut to 300 characters. Raises ValueError for an empty list."""
    if not documents:
        raise ValueError("dataset_stats needs at least one document")
    chars = [len(document) for document in documents]
    tokens = _token_counts(documents, tokenizer)
    return {
        "documents": len(documents),
        "characters": sum(chars),
        "tokens": sum(tokens),
        "shortest_document_characters": min(chars),
        "longest_document_characters": max(chars),
        "shortest_document_tokens": min(tokens),
        "longest_document_tokens": max(tokens),
        "preview": [document[:PREVIEW_CHARS] for document in documents[:PREVIEW_DOCUMENTS]],
    }


def encode_documents(documents: Sequence[str], tokenizer: Any) -> list[int]:
    """One token stream: each document's ids followed by the eos id, as GPT-2 was trained.

    Raises ValueError when the tokenizer has no eos token.
    """
    eos_id = tokenizer.eos_token_id
    if eos_id is None:
        raise ValueError("tokenizer has no eos token to separate documents")
    stream: list[int] = []
    for ids in _encode_each(documents, tokenizer):
        stream.extend(ids)
        stream.append(eos_id)
    return stream


def make_windows(ids: Sequence[int], context_length: int) -> torch.Tensor:
    """Cut the stream into consecutive, non-overlapping windows: a LongTensor [n, context_length].

    The last partial chunk is dropped rather than padded, so every position of every window is a
    real token and the loss needs no mask; at most context_length - 1 tokens are lost. A stream
    shorter than one window is repeated to fill exactly one window: the stream ends with eos, so
    the repeat reads like the next document. Raises ValueError for an empty stream or a
    non-positive context length.
    """
    if context_length < 1:
        raise ValueError("context_length must be positive")
    if len(ids) == 0:
        raise ValueError("cannot make windows from an empty token stream")
    stream = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    count = len(stream) // context_length
    if count == 0:
        repeats = -(-context_length // len(stream))
        return stream.repeat(repeats)[:context_length].unsqueeze(0)
    return stream[: count * context_length].reshape(count, context_length).clone()


def split_windows(
    windows: torch.Tensor, val_fraction: float = 0.05, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministically shuffle windows into (train, validation).

    Validation gets round(n * val_fraction) windows, at least one, and train keeps at least one.
    With a single window there is nothing to hold out: both sets are that window, so the
    validation loss then equals a training loss (documented rather than refused, so that tiny demo
    datasets still train). Raises ValueError for no windows or a fraction outside [0, 1).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError("val_fraction must be in [0, 1)")
    total = len(windows)
    if total == 0:
        raise ValueError("no windows to split")
    if total == 1:
        return windows, windows
    val_count = min(max(1, round(total * val_fraction)), total - 1)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(total, generator=generator)
    return windows[order[val_count:]], windows[order[:val_count]]


def ids_to_bytes(ids: Sequence[int]) -> bytes:
    """Token ids as little-endian int32 bytes, for caching. Raises ValueError for ids out of range."""
    array = np.asarray(ids, dtype=np.int64)
    if array.size and (array.min() < 0 or array.max() > np.iinfo(_ID_DTYPE).max):
        raise ValueError("token ids must fit in a non-negative int32")
    return array.astype(_ID_DTYPE).tobytes()


def ids_from_bytes(data: bytes) -> list[int]:
    """The ids written by `ids_to_bytes`. Raises ValueError when the length is not a multiple of 4."""
    if len(data) % _ID_DTYPE.itemsize:
        raise ValueError("cached token ids are truncated (length is not a multiple of 4)")
    return np.frombuffer(data, dtype=_ID_DTYPE).astype(np.int64).tolist()
