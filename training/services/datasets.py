"""Datasets: an upload validated and stored with its statistics, and its token ids encoded once per
tokenizer and cached in storage."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from .. import artifacts
from ..base_models import TINY, BaseModel, base_model_get, hub_tokenizer_load
from ..errors import DatasetRefused
from ..models import Dataset, EncodedDataset
from ..textdata import DatasetInvalid, dataset_stats, encode_documents, ids_from_bytes, ids_to_bytes, parse_documents

# Content types a browser or an HTTP client sends for a text file. Anything else (images, PDFs,
# archives) is refused before the bytes are read.
TEXT_CONTENT_TYPES = {"text/plain", "text/markdown", "text/x-markdown", "application/octet-stream", ""}
TINY_VOCAB = 512
TINY_TOKENIZER_KEY = f"tiny-bytelevel-bpe-{TINY_VOCAB}-v1"
VAL_FRACTION = 0.05


def _refused(reason: str, message: str) -> DatasetRefused:
    return DatasetRefused(message, param="file", extra={"reason": reason})


def _check_upload(upload) -> None:
    if upload.size > settings.DATASET_MAX_BYTES:
        limit = settings.DATASET_MAX_BYTES / (1024 * 1024)
        raise _refused("too_large", f"File is {upload.size / (1024 * 1024):.1f} MB; the limit is {limit:g} MB.")
    content_type = (getattr(upload, "content_type", "") or "").split(";")[0].strip().lower()
    if content_type not in TEXT_CONTENT_TYPES and not content_type.startswith("text/"):
        raise _refused("wrong_content_type", f"Upload a plain UTF-8 text file, not {content_type}.")


def dataset_documents(*, raw: bytes) -> list[str]:
    """The documents of an upload. Raises DatasetRefused with the reason "too_large", "not_utf8",
    "empty", "no_documents" (textdata's reasons) or "binary" (a NUL byte)."""
    try:
        documents = parse_documents(raw, settings.DATASET_MAX_BYTES)
    except DatasetInvalid as exc:
        raise _refused(exc.code, exc.message) from exc
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise _refused("binary", f"File looks binary (NUL byte at offset {nul}); upload plain UTF-8 text.")
    return documents


def dataset_create(*, owner, name: str, upload, licence: str, licence_attested: bool,
                   stats_base_model: str = TINY, rights_holders: list[str] | None = None) -> Dataset:
    """Validate an uploaded text file and store it with its statistics and its encoding.

    Raises DatasetRefused for a bad file or a missing attestation and TrainingError for an unknown
    base model. Nothing is stored for a refused upload; if saving the row fails, the stored file is
    deleted again.
    """
    if not licence_attested:
        raise _refused("not_attested", "Confirm that you have the right to train on this data.")
    _check_upload(upload)
    raw = upload.read()
    documents = dataset_documents(raw=raw)
    base = base_model_get(stats_base_model)
    tokenizer = stats_tokenizer(documents=documents, base=base)
    stats = {**dataset_stats(documents, tokenizer), "tokenizer": stats_base_model}
    dataset = _dataset_save(owner=owner, name=name.strip() or Path(upload.name).stem, raw=raw, licence=licence,
                            stats=stats, rights_holders=rights_holders or [])
    # The tokenizer is at hand (for the tiny model it was just trained on this data): cache the
    # encoding now, so a job neither trains the tokenizer again nor encodes the data again.
    with tempfile.TemporaryDirectory() as tmp:
        _encoding_save(dataset=dataset, base=base, tokenizer=tokenizer, documents=documents, scratch=Path(tmp))
    return dataset


def _dataset_save(*, owner, name: str, raw: bytes, licence: str, stats: dict, rights_holders: list[str]) -> Dataset:
    """Store the file, then its row; a row that fails to save takes its file with it."""
    sha = hashlib.sha256(raw).hexdigest()
    stored = default_storage.save(f"datasets/{sha}.txt", ContentFile(raw))
    try:
        with transaction.atomic():
            dataset = Dataset(owner=owner, name=name, sha256=sha, size_bytes=len(raw), licence=licence,
                              licence_attested=True, rights_holders=rights_holders, stats=stats)
            dataset.file.name = stored
            dataset.save()
    except Exception:
        default_storage.delete(stored)
        raise
    return dataset


def stats_tokenizer(*, documents: list[str], base: BaseModel):
    """The tokenizer whose token counts the dataset page shows: for the tiny model one trained on
    these documents, else the base's own. Raises TrainingError when that one is unreachable."""
    if base.name == TINY:
        from ..tiny import train_tokenizer

        return train_tokenizer(documents, vocab_size=TINY_VOCAB)
    return hub_tokenizer_load(base)


def dataset_read_documents(*, dataset: Dataset) -> list[str]:
    """The stored dataset's documents. Raises DatasetRefused if the stored file no longer parses."""
    with default_storage.open(dataset.file.name, "rb") as fh:
        return dataset_documents(raw=fh.read())


def dataset_encoding(*, dataset: Dataset, base: BaseModel, scratch: Path) -> tuple[object, list[int]]:
    """(tokenizer, token ids) of a dataset for a base model, encoded once and cached in storage.

    The cache is content-addressed: its key is the SHA-256 of the dataset digest and the
    tokenizer's identity, so a re-uploaded identical file reuses it. The built-in tiny model's
    tokenizer is trained on the dataset and stored beside the ids, so a resumed job gets the very
    same tokenizer. Raises TrainingError when a hub tokenizer is unreachable.
    """
    key, prefix = _encoding_address(dataset, base)
    ids_name = f"{prefix}/ids.bin"
    if not default_storage.exists(ids_name):
        documents = dataset_read_documents(dataset=dataset)
        tokenizer = stats_tokenizer(documents=documents, base=base)
        return tokenizer, _encoding_save(dataset=dataset, base=base, tokenizer=tokenizer, documents=documents,
                                         scratch=scratch)
    tokenizer = _cached_tokenizer(base, prefix, scratch)
    with default_storage.open(ids_name, "rb") as fh:
        ids = ids_from_bytes(fh.read())
    _record_encoding(dataset, key, ids_name, ids)
    return tokenizer, ids


def _encoding_address(dataset: Dataset, base: BaseModel) -> tuple[str, str]:
    """(tokenizer key, storage prefix) of a dataset's encoding for a base model."""
    key = TINY_TOKENIZER_KEY if base.name == TINY else f"hf:{base.source}"
    return key, "encoded/" + hashlib.sha256(f"{dataset.sha256}:{key}".encode()).hexdigest()


def _encoding_save(*, dataset: Dataset, base: BaseModel, tokenizer, documents: list[str], scratch: Path) -> list[int]:
    """Encode the documents and store the ids (and the tiny model's own tokenizer) under the
    encoding's address, unless an identical upload stored them already. Returns the ids."""
    key, prefix = _encoding_address(dataset, base)
    ids_name = f"{prefix}/ids.bin"
    ids = encode_documents(documents, tokenizer)
    if not default_storage.exists(ids_name):
        if base.name == TINY:
            tokenizer.save_pretrained(scratch / "tokenizer")
            artifacts.folder_upload(scratch / "tokenizer", f"{prefix}/tokenizer")
        default_storage.save(ids_name, ContentFile(ids_to_bytes(ids)))
    _record_encoding(dataset, key, ids_name, ids)
    return ids


def _cached_tokenizer(base: BaseModel, prefix: str, scratch: Path):
    if base.name != TINY:
        return hub_tokenizer_load(base)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(artifacts.folder_download(f"{prefix}/tokenizer", scratch / "tokenizer"))


def _record_encoding(dataset: Dataset, key: str, name: str, ids: list[int]) -> None:
    try:
        with transaction.atomic():
            EncodedDataset.objects.get_or_create(
                dataset=dataset, tokenizer_key=key,
                defaults={"file": name, "tokens": len(ids), "sha256": hashlib.sha256(ids_to_bytes(ids)).hexdigest()})
    except IntegrityError:
        pass  # another worker recorded the same encoding first
