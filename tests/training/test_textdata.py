"""Dataset parsing, statistics, encoding and windowing."""

from __future__ import annotations

import pytest
import torch

from training.textdata import (
    DatasetInvalid,
    dataset_stats,
    encode_documents,
    ids_from_bytes,
    ids_to_bytes,
    make_windows,
    parse_documents,
    split_windows,
)

LIMIT = 1_000_000


def _invalid(raw: bytes, max_bytes: int = LIMIT) -> DatasetInvalid:
    with pytest.raises(DatasetInvalid) as caught:
        parse_documents(raw, max_bytes)
    return caught.value


def test_documents_are_split_on_separator_stripped_and_empty_ones_dropped() -> None:
    raw = b"  first doc \n<|endoftext|>\n\n<|endoftext|>second\tdoc<|endoftext|>"
    assert parse_documents(raw, LIMIT) == ["first doc", "second\tdoc"]


def test_text_without_separators_is_one_document() -> None:
    assert parse_documents(b"Just one\n\ndocument.\n", LIMIT) == ["Just one\n\ndocument."]


def test_byte_order_mark_is_not_part_of_the_text() -> None:
    assert parse_documents("\ufeffhello".encode(), LIMIT) == ["hello"]


def test_non_utf8_upload_names_byte_offset() -> None:
    raw = b"ok text " * 10 + b"\xff rest"
    error = _invalid(raw)
    assert error.code == "not_utf8"
    assert error.message == "File is not valid UTF-8: invalid byte at offset 80."


def test_empty_upload_is_rejected() -> None:
    assert _invalid(b"").code == "empty"
    assert _invalid(b" \n\t ").code == "empty"


def test_upload_of_only_separators_is_rejected() -> None:
    error = _invalid(b"<|endoftext|>\n  <|endoftext|>")
    assert error.code == "no_documents"


def test_oversized_upload_names_limit_in_mb() -> None:
    error = _invalid(b"x" * 2_500_001, max_bytes=2_000_000)
    assert error.code == "too_large"
    assert "2 MB" in error.message and "2.5 MB" in error.message


def test_size_limit_is_checked_before_decoding() -> None:
    assert _invalid(b"\xff" * 11, max_bytes=10).code == "too_large"


def test_dataset_stats_counts_documents_characters_and_tokens(tiny_tokenizer) -> None:
    documents = ["the fox", "a" * 400, "quiet towns sleep", "fourth"]
    stats = dataset_stats(documents, tiny_tokenizer)
    token_counts = [len(tiny_tokenizer.encode(d, add_special_tokens=False)) for d in documents]
    assert stats["documents"] == 4
    assert stats["characters"] == sum(len(d) for d in documents)
    assert stats["tokens"] == sum(token_counts)
    assert (stats["shortest_document_characters"], stats["longest_document_characters"]) == (6, 400)
    assert (stats["shortest_document_tokens"], stats["longest_document_tokens"]) == (
        min(token_counts),
        max(token_counts),
    )
    assert stats["preview"] == ["the fox", "a" * 300, "quiet towns sleep"]


def test_encoded_stream_ends_each_document_with_eos(tiny_tokenizer) -> None:
    eos = tiny_tokenizer.eos_token_id
    stream = encode_documents(["the fox", "a lazy dog"], tiny_tokenizer)
    first = tiny_tokenizer.encode("the fox", add_special_tokens=False)
    second = tiny_tokenizer.encode("a lazy dog", add_special_tokens=False)
    assert stream == [*first, eos, *second, eos]


def test_windows_overlap_by_one_token_so_every_token_but_the_first_is_a_target() -> None:
    windows = make_windows(list(range(10)), 4)
    assert windows.dtype == torch.long
    assert windows.tolist() == [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8]]
    targets = windows[:, 1:].flatten().tolist()  # the model predicts each window's last 4 tokens
    assert targets == list(range(1, 9))


def test_stream_shorter_than_a_window_fills_exactly_one_window() -> None:
    assert make_windows([7, 8, 0], 6).tolist() == [[7, 8, 0, 7, 8, 0, 7]]


def test_split_is_deterministic_and_disjoint() -> None:
    windows = make_windows(list(range(401)), 4)  # 100 windows, row i starts with 4 * i
    train, val = split_windows(windows, val_fraction=0.05, seed=3)
    again_train, again_val = split_windows(windows, val_fraction=0.05, seed=3)
    assert torch.equal(train, again_train) and torch.equal(val, again_val)
    assert (len(train), len(val)) == (95, 5)
    starts = sorted(train[:, 0].tolist() + val[:, 0].tolist())
    assert starts == list(range(0, 400, 4))


def test_split_keeps_at_least_one_window_on_each_side() -> None:
    windows = make_windows(list(range(9)), 4)
    train, val = split_windows(windows, val_fraction=0.0)
    assert (len(train), len(val)) == (1, 1)
    train, val = split_windows(windows, val_fraction=0.9)
    assert (len(train), len(val)) == (1, 1)


def test_single_window_serves_as_both_train_and_validation() -> None:
    windows = make_windows([1, 2, 3, 4], 3)
    train, val = split_windows(windows)
    assert torch.equal(train, windows) and torch.equal(val, windows)


def test_ids_round_trip_through_little_endian_int32_bytes() -> None:
    ids = [0, 1, 50256, 2**31 - 1]
    data = ids_to_bytes(ids)
    assert data[:8] == b"\x00\x00\x00\x00\x01\x00\x00\x00"
    assert ids_from_bytes(data) == ids


def test_truncated_id_cache_is_rejected() -> None:
    with pytest.raises(ValueError):
        ids_from_bytes(b"\x00\x00\x00")


def test_ids_outside_int32_are_rejected() -> None:
    with pytest.raises(ValueError):
        ids_to_bytes([2**31])


# --- The streaming scanner -------------------------------------------------------------------

def _scan(raw: bytes, chunk: int) -> tuple[str, list[str]]:
    from training.textdata import TextScanner

    scanner, text, documents = TextScanner(10**9), [], []
    for start in range(0, len(raw), chunk):
        piece, found = scanner.feed(raw[start:start + chunk])
        text.append(piece)
        documents += found
    piece, found = scanner.finish()
    return "".join(text) + piece, documents + found


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 13, 1 << 20])
def test_the_scanner_gives_the_documents_of_parse_documents_whatever_the_chunks(chunk):
    raw = "\ufeffÜber 🙂 line\r\none<|endoftext|>\r\n two\rlines <|endoftext|><|endoftext|>last".encode()
    text, documents = _scan(raw, chunk)
    assert "\r" not in text and not text.startswith("\ufeff")
    assert documents == parse_documents(raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n"), 10**9)


@pytest.mark.parametrize("chunk", [1, 4, 1 << 20])
@pytest.mark.parametrize("raw, reason, offset", [
    (b"ok " * 10 + b"\xe2\x82", "not_utf8", 30),  # a sequence cut off at the end of the file
    (b"ok " * 10 + b"\xff rest", "not_utf8", 30),
    (b"ok " * 10 + b"\x00", "binary", 30),
    (b" \n\t ", "empty", None),
    (b"<|endoftext|> \n<|endoftext|>", "no_documents", None),
])
def test_the_scanner_refuses_with_the_reason_and_the_byte_offset(chunk, raw, reason, offset):
    with pytest.raises(DatasetInvalid) as refused:
        _scan(raw, chunk)
    assert (refused.value.code, refused.value.offset) == (reason, offset)
