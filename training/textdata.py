"""Turning an uploaded text file into documents, token ids and training windows.

Upload format: UTF-8 text; documents are separated by `<|endoftext|>` (GPT-2's separator), and a
file without separators is one document.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
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
    people, `offset` the byte of the upload it is about (when there is one). This module has no
    Django: the dataset services refuse the upload with training.errors.DatasetRefused, carrying
    this reason."""

    def __init__(self, code: str, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.offset = offset


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
    """Cut the stream into windows of context_length + 1 tokens, a LongTensor [n, context_length + 1],
    each starting where the previous one's last token is: the model reads a window's first
    context_length tokens and predicts its last context_length, so every token of the stream but
    the first is a target exactly once (windows of context_length tokens would never predict the
    first token of each, 1/T of the data).

    A partial chunk at the end is dropped rather than padded, so the loss needs no mask; fewer than
    context_length tokens are lost. A stream shorter than one window is repeated to fill exactly one
    window: the stream ends with eos, so the repeat reads like the next document. Raises ValueError
    for an empty stream or a non-positive context length.
    """
    if context_length < 1:
        raise ValueError("context_length must be positive")
    if len(ids) == 0:
        raise ValueError("cannot make windows from an empty token stream")
    stream = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    width = context_length + 1
    count = (len(stream) - 1) // context_length
    if count == 0:
        repeats = -(-width // len(stream))
        return stream.repeat(repeats)[:width].unsqueeze(0)
    return stream.unfold(0, width, context_length)[:count].clone()


def split_windows(
    windows: torch.Tensor, val_fraction: float = 0.05, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministically shuffle windows into (train, validation): a split of one stream with no
    document structure. Fine-tuning jobs split by document instead (`held_out_split`), so that no
    validation text is also trained on.

    Validation gets round(n * val_fraction) windows, at least one, and train keeps at least one.
    With a single window there is nothing to hold out: both sets are that window. Raises
    ValueError for no windows or a fraction outside [0, 1).
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


# --- Held-out validation by document ------------------------------------------------------------

SPLIT_BY_DOCUMENT = "documents"
SPLIT_SINGLE_DOCUMENT = "single_document_tail"


@dataclass(frozen=True)
class HeldOutSplit:
    """Training and validation windows cut from disjoint text. `rule` is SPLIT_BY_DOCUMENT (whole
    documents on each side) or SPLIT_SINGLE_DOCUMENT (a dataset of one document: its last tokens
    are held out). Token counts are the documents' own tokens, separators not counted."""

    train: torch.Tensor
    val: torch.Tensor
    train_documents: int
    val_documents: int
    train_tokens: int
    val_tokens: int
    rule: str

    def summary(self) -> dict[str, Any]:
        """The figures a model card and a job page show."""
        return {"rule": self.rule, "train_documents": self.train_documents, "val_documents": self.val_documents,
                "train_tokens": self.train_tokens, "val_tokens": self.val_tokens,
                "train_windows": len(self.train), "val_windows": len(self.val)}


def document_spans(ids: Sequence[int], eos_id: int) -> list[tuple[int, int]]:
    """(start, end) of each document in a stream where every document is followed by eos (as
    `encode_documents` and the stored encodings make it), eos excluded; a tail without its eos
    counts as a document too. Empty documents are skipped."""
    array = np.asarray(ids, dtype=np.int64)
    ends = np.flatnonzero(array == eos_id).tolist()
    if not ends or ends[-1] != len(array) - 1:
        ends.append(len(array))
    spans, start = [], 0
    for end in ends:
        if end > start:
            spans.append((start, end))
        start = end + 1
    return spans


def held_out_split(ids: Sequence[int], *, eos_id: int, context_length: int, val_fraction: float = 0.05,
                   seed: int = 0) -> HeldOutSplit:
    """Split a dataset's documents into training and validation, deterministically from `seed`,
    and pack each side into its own windows (`make_windows`), so no window holds text of both.

    Documents are taken in a seeded order into validation until it holds `val_fraction` of the
    tokens, at least one document, and training keeps at least one. A dataset of a single
    document cannot be split by document: its last `val_fraction` of tokens (at least one) are held
    out instead. Each side's stream starts with eos (what a document follows in GPT-2's data), so
    the first token of every document is a target too. Raises ValueError for a stream without
    documents or a fraction outside (0, 1).
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError("val_fraction must be in (0, 1)")
    array = np.asarray(ids, dtype=np.int64)
    spans = document_spans(array, eos_id)
    if not spans:
        raise ValueError("the token stream holds no document")
    if len(spans) == 1:
        return _split_single_document(array, spans[0], eos_id, context_length, val_fraction)
    order = np.random.default_rng(np.random.SeedSequence([seed, 0x5E1D])).permutation(len(spans))
    total = sum(end - start for start, end in spans)
    val_chosen, val_tokens = [], 0
    for index in order[:-1]:  # the last one in the order always trains
        start, end = spans[index]
        val_chosen.append(int(index))
        val_tokens += end - start
        if val_tokens >= val_fraction * total:
            break
    chosen = set(val_chosen)
    train_spans = [span for i, span in enumerate(spans) if i not in chosen]
    val_spans = [spans[i] for i in sorted(chosen)]
    return HeldOutSplit(
        train=make_windows(_pack(array, train_spans, eos_id), context_length),
        val=make_windows(_pack(array, val_spans, eos_id), context_length),
        train_documents=len(train_spans), val_documents=len(val_spans),
        train_tokens=total - val_tokens, val_tokens=val_tokens, rule=SPLIT_BY_DOCUMENT)


def _split_single_document(array: np.ndarray, span: tuple[int, int], eos_id: int, context_length: int,
                           val_fraction: float) -> HeldOutSplit:
    start, end = span
    length = end - start
    held = min(max(1, round(length * val_fraction)), length - 1) if length > 1 else 0
    cut = end - held
    train_spans, val_spans = [(start, cut)], [(cut, end)] if held else [(start, end)]
    return HeldOutSplit(
        train=make_windows(_pack(array, train_spans, eos_id), context_length),
        val=make_windows(_pack(array, val_spans, eos_id), context_length),
        train_documents=1, val_documents=1, train_tokens=cut - start, val_tokens=held or length,
        rule=SPLIT_SINGLE_DOCUMENT)


def _pack(array: np.ndarray, spans: Sequence[tuple[int, int]], eos_id: int) -> np.ndarray:
    """eos, then each span's tokens followed by eos: one side's stream."""
    eos = np.asarray([eos_id], dtype=np.int64)
    return np.concatenate([eos, *(np.concatenate([array[start:end], eos]) for start, end in spans)])


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


# --- Streaming: an upload of any size in bounded memory ------------------------------------------

def _complete_utf8_prefix(data: bytes) -> int:
    """Length of the longest prefix of `data` that does not end inside a UTF-8 sequence (the
    rest waits for the next chunk)."""
    end = len(data)
    for back in range(1, min(4, end) + 1):
        byte = data[end - back]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: its lead byte is further back
        if byte >= 0xC0:
            needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return end - back if needed > back else end
        return end
    return end


class TextScanner:
    """Validates and splits an upload fed chunk by chunk, holding at most one chunk and one
    document in memory.

    `feed(chunk)` returns (normalised text, complete documents); `finish()` the rest. Normalised
    text is the upload decoded as strict UTF-8, without a leading byte-order mark, with CRLF and
    lone CR line endings as LF: a Windows file and its LF twin give the same text and the same
    tokens. Documents are stripped and non-empty, as `parse_documents` makes them. Raises
    DatasetInvalid with the reasons of `parse_documents`, and "binary" for a NUL byte; the offset
    is the byte of the upload as sent.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes_read = 0
        self.documents = 0
        self.separators = 0
        self._pending_bytes = b""
        self._pending_cr = False
        self._buffer: list[str] = []
        self._started = False
        self._any_text = False

    def feed(self, chunk: bytes) -> tuple[str, list[str]]:
        start = self.bytes_read
        self.bytes_read += len(chunk)
        if self.bytes_read > self.max_bytes:
            raise DatasetInvalid("too_large", f"File is over {_megabytes(self.max_bytes)} MB, the limit.", start)
        nul = chunk.find(b"\x00")
        if nul >= 0:
            raise DatasetInvalid("binary", f"File looks binary (NUL byte at offset {start + nul}); upload plain "
                                           "UTF-8 text.", start + nul)
        data = self._pending_bytes + chunk
        cut = _complete_utf8_prefix(data)
        self._pending_bytes = data[cut:]
        return self._text(data[:cut], start - (len(data) - len(chunk)), final=False)

    def finish(self) -> tuple[str, list[str]]:
        text, documents = self._text(self._pending_bytes, self.bytes_read - len(self._pending_bytes), final=True)
        self._pending_bytes = b""
        tail = "".join(self._buffer).strip()
        if tail:
            documents.append(tail)
            self.documents += 1
        self._buffer = []
        if not self._any_text:
            raise DatasetInvalid("empty", "File is empty.")
        if not self.documents:
            raise DatasetInvalid("no_documents", "File holds only document separators, no text.")
        return text, documents

    def _text(self, data: bytes, offset: int, *, final: bool) -> tuple[str, list[str]]:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DatasetInvalid("not_utf8", f"File is not valid UTF-8: invalid byte at offset {offset + error.start}.",
                                 offset + error.start) from None
        if not self._started and (text or final):
            self._started = bool(text)
            text = text.removeprefix("\ufeff")
        if self._pending_cr:
            text = "\r" + text
        self._pending_cr = text.endswith("\r") and not final
        if self._pending_cr:
            text = text[:-1]  # it may be the first half of a CRLF split between chunks
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        return text, self._split(text)

    def _tail(self, size: int) -> str:
        """The last `size` characters of the buffered text."""
        tail = ""
        for part in reversed(self._buffer):
            tail = part + tail
            if len(tail) >= size:
                break
        return tail[-size:]

    def _split(self, text: str) -> list[str]:
        if not text:
            return []
        self._any_text = self._any_text or bool(text.strip())
        # Only where a separator can be (the new text and the few characters before it) is it
        # looked for, so a long document fed in many chunks is not copied again on each one.
        if DOCUMENT_SEPARATOR not in self._tail(len(DOCUMENT_SEPARATOR) - 1) + text:
            self._buffer.append(text)
            return []
        parts = ("".join(self._buffer) + text).split(DOCUMENT_SEPARATOR)
        self._buffer = [parts.pop()]
        documents = [d for d in (p.strip() for p in parts) if d]
        self.documents += len(documents)
        return documents


def ids_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype for a vocabulary, as nanoGPT's .bin files: uint16 up to 65,536
    ids (GPT-2's 50,257 fit), uint32 beyond. Little-endian, so files are portable."""
    return np.dtype("<u2") if vocab_size <= 2**16 else np.dtype("<u4")


class StatsAccumulator:
    """The dataset page's counts (see `dataset_stats`) gathered batch by batch."""

    def __init__(self) -> None:
        self.documents = self.characters = self.tokens = 0
        self.chars_min = self.chars_max = self.tokens_min = self.tokens_max = None
        self.preview: list[str] = []

    def add(self, documents: Sequence[str], token_counts: Sequence[int]) -> None:
        for document, count in zip(documents, token_counts, strict=True):
            chars = len(document)
            self.documents += 1
            self.characters += chars
            self.tokens += count
            self.chars_min = chars if self.chars_min is None else min(self.chars_min, chars)
            self.chars_max = chars if self.chars_max is None else max(self.chars_max, chars)
            self.tokens_min = count if self.tokens_min is None else min(self.tokens_min, count)
            self.tokens_max = count if self.tokens_max is None else max(self.tokens_max, count)
            if len(self.preview) < PREVIEW_DOCUMENTS:
                self.preview.append(document[:PREVIEW_CHARS])

    def as_dict(self) -> dict[str, Any]:
        return {
            "documents": self.documents, "characters": self.characters, "tokens": self.tokens,
            "shortest_document_characters": self.chars_min, "longest_document_characters": self.chars_max,
            "shortest_document_tokens": self.tokens_min, "longest_document_tokens": self.tokens_max,
            "preview": self.preview,
        }


def encode_batch_ids(documents: Sequence[str], tokenizer: Any, dtype: np.dtype) -> tuple[np.ndarray, list[int]]:
    """(one token stream of the documents, each followed by eos; each document's token count),
    encoded in one call of the Rust tokenizer (its threads share the batch). Uses its
    `encode_batch_fast` (no character offsets, which nothing here reads) where there is one."""
    eos_id = tokenizer.eos_token_id
    if eos_id is None:
        raise ValueError("tokenizer has no eos token to separate documents")
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        per_document = _encode_each(documents, tokenizer)
    else:
        encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
        per_document = [encoding.ids for encoding in encode(list(documents), add_special_tokens=False)]
    counts = [len(ids) for ids in per_document]
    stream = np.fromiter(itertools.chain.from_iterable(ids + [eos_id] for ids in per_document), dtype=dtype,
                         count=sum(counts) + len(counts))
    return stream, counts
