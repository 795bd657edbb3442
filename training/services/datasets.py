"""Datasets: an upload received and staged by the web request, then validated, counted and
encoded by a task on the default queue (`dataset_upload_process`), in bounded memory; the token
ids are stored once per tokenizer, as a compact numpy array in storage.

The request does only what needs no reading of the text (attestation, size, content type, base
model); the task reads the staged file twice in chunks: once to validate and normalise it (and
take the tiny tokenizer's training sample), once to encode it batch by batch.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.services import user_lock

from .. import artifacts
from ..base_models import TINY, BaseModel, base_model_get
from ..errors import DatasetRefused, DatasetTooLarge, UploadsInFlight
from ..models import Dataset, DatasetUpload, EncodedDataset
from .bases import base_require_available, base_tokenizer_key, base_tokenizer_load
from ..textdata import (
    DatasetInvalid,
    StatsAccumulator,
    TextScanner,
    encode_batch_ids,
    ids_dtype,
    ids_from_bytes,
)

log = logging.getLogger(__name__)

PROCESS_DATASET_TASK = "training.process_dataset"
# Content types a browser or an HTTP client sends for a text file. Anything else (images, PDFs,
# archives) is refused before the bytes are read.
TEXT_CONTENT_TYPES = {"text/plain", "text/markdown", "text/x-markdown", "application/octet-stream", ""}
TINY_VOCAB = 512
# v2: trained on the normalised text's first TOKENIZER_SAMPLE_CHARS (v1 saw the whole file).
TINY_TOKENIZER_KEY = f"tiny-bytelevel-bpe-{TINY_VOCAB}-v2"
VAL_FRACTION = 0.05
CHUNK_BYTES = 1024 * 1024
# A 512-token BPE (255 merges) learns them from a megabyte of text as well as from fifty; training on all
# of a large file would cost minutes and hold every distinct word in memory.
TOKENIZER_SAMPLE_CHARS = 1_000_000
# Documents are encoded in batches of about this many characters: large enough for the Rust
# tokenizer's threads to share, small enough to bound memory.
ENCODE_BATCH_CHARS = 2_000_000
# What the trainer reads when processing failed for a reason of ours (a bug, storage, a hub model
# that cannot be loaded): the detail is in the log, never in a page another process renders.
INTERNAL_ERROR_MESSAGE = "The upload could not be processed (internal error); nothing was kept."
TIMED_OUT_MESSAGE = "The upload took too long to process; nothing was kept. Upload it again."
# An upload of the largest size is processed in about a minute, so a slot frees up about as often.
UPLOADS_IN_FLIGHT_RETRY_SECONDS = 30


def _refused(reason: str, message: str, offset: int | None = None) -> DatasetRefused:
    return DatasetRefused(message, param="file", extra={"reason": reason, "offset": offset})


def _check_upload(upload) -> None:
    if upload.size > settings.DATASET_MAX_BYTES:
        limit = settings.DATASET_MAX_BYTES / (1024 * 1024)
        raise _refused("too_large", f"File is {upload.size / (1024 * 1024):.1f} MB; the limit is {limit:g} MB.")
    content_type = (getattr(upload, "content_type", "") or "").split(";")[0].strip().lower()
    if content_type not in TEXT_CONTENT_TYPES and not content_type.startswith("text/"):
        raise _refused("wrong_content_type", f"Upload a plain UTF-8 text file, not {content_type}.")


def upload_too_large() -> DatasetRefused:
    """The refusal of a request body over the cap (see training.uploads), before it was read."""
    limit = settings.DATASET_MAX_BYTES / (1024 * 1024)
    return DatasetTooLarge(f"File is over the size limit; the limit is {limit:g} MB.", param="file",
                           extra={"reason": "too_large", "offset": None})


# --- Receiving (the web request) -------------------------------------------------------------

def dataset_upload_receive(*, owner, name: str, upload, licence: str, licence_attested: bool,
                           stats_base_model: str = TINY, rights_holders: list[str] | None = None,
                           enqueue: bool = True) -> DatasetUpload:
    """Stage an uploaded file in storage, streamed in chunks, and queue its processing (after
    commit) on the default queue. Returns the upload, state "processing".

    Raises DatasetRefused ("not_attested", "too_large", "wrong_content_type"), TrainingError for
    an unknown base model and UploadsInFlight when the owner already has
    DATASET_UPLOADS_IN_FLIGHT_MAX uploads processing, before anything is stored (a file staged
    just before a racing upload took the last slot is deleted)."""
    if not licence_attested:
        raise _refused("not_attested", "Confirm that you have the right to train on this data.")
    _check_upload(upload)
    base_require_available(base_model_get(stats_base_model))
    _check_in_flight(owner)  # early and unlocked, so a refused upload costs no storage write
    digest = hashlib.sha256()
    for chunk in upload.chunks(CHUNK_BYTES):
        digest.update(chunk)
    upload.seek(0)
    record = DatasetUpload(owner=owner, name=name.strip() or Path(upload.name).stem, licence=licence,
                           stats_base_model=stats_base_model, rights_holders=list(rights_holders or []),
                           size_bytes=upload.size,
                           upload_sha256=digest.hexdigest(), phase="queued")
    record.staged_name = default_storage.save(f"uploads/{record.pk}.txt", File(upload))
    try:
        with transaction.atomic():
            user_lock(user=owner)  # two racing uploads cannot both take the last slot
            _check_in_flight(owner)
            record.save()
    except Exception:
        default_storage.delete(record.staged_name)
        raise
    if enqueue:
        transaction.on_commit(lambda: _send_process(record.pk))
    return record


def _check_in_flight(owner) -> None:
    """Raises UploadsInFlight when the owner has DATASET_UPLOADS_IN_FLIGHT_MAX uploads processing."""
    limit = settings.DATASET_UPLOADS_IN_FLIGHT_MAX
    if DatasetUpload.objects.filter(owner=owner, state=DatasetUpload.State.PROCESSING).count() >= limit:
        raise UploadsInFlight(
            f"You already have {limit} uploads being processed; wait for one to finish, then upload again.",
            param="file", headers={"Retry-After": str(UPLOADS_IN_FLIGHT_RETRY_SECONDS)})


def _send_process(upload_id) -> None:
    from celery import current_app

    current_app.send_task(PROCESS_DATASET_TASK, args=[str(upload_id)], queue="default")


def dataset_create(*, owner, name: str, upload, licence: str, licence_attested: bool,
                   stats_base_model: str = TINY, rights_holders: list[str] | None = None) -> Dataset:
    """Receive and process an upload at once, in this process (commands, the demo, tests): the
    Dataset, or DatasetRefused (with the upload's reason) and nothing stored."""
    record = dataset_upload_receive(owner=owner, name=name, upload=upload, licence=licence,
                                    licence_attested=licence_attested, stats_base_model=stats_base_model,
                                    rights_holders=rights_holders, enqueue=False)
    record = dataset_upload_process(upload_id=record.pk)
    if record.state != DatasetUpload.State.READY:
        raise _refused(record.refusal_reason, record.refusal_message, record.refusal_offset)
    return record.dataset


# --- Processing (the default-queue task) -----------------------------------------------------

def dataset_upload_process(*, upload_id) -> DatasetUpload:
    """Validate, normalise, count and encode a staged upload, then store the text, its encoding
    and the Dataset row; or refuse it (reason, message, byte offset) and delete the staged file.
    Any failure refuses it: an unexpected one with reason "internal_error", a generic message and
    the detail in the log; nothing it stored on the way is kept.

    Safe to run twice: an upload that is no longer processing is returned as it is, and the
    stored files are addressed by content. Raises DatasetUpload.DoesNotExist for an unknown id."""
    record = DatasetUpload.objects.get(pk=upload_id)
    if record.state != DatasetUpload.State.PROCESSING:
        return record
    with tempfile.TemporaryDirectory(prefix="imprint-dataset-") as tmp:
        try:
            return _process(record, base_model_get(record.stats_base_model), Path(tmp))
        except DatasetInvalid as exc:
            return _refuse(record, exc.code, exc.message, exc.offset)
        except DatasetRefused as exc:
            return _refuse(record, exc.extra.get("reason", "refused"), exc.message, exc.extra.get("offset"))
        except Exception:
            log.exception("dataset upload %s could not be processed", record.pk)
            return _refuse(record, "internal_error", INTERNAL_ERROR_MESSAGE, None)


def _process(record: DatasetUpload, base: BaseModel, scratch: Path) -> DatasetUpload:
    text_path = scratch / "text.txt"
    sample = _normalise(record, text_path)
    _progress(record, "tokenizer", 40)
    tokenizer = _stats_tokenizer(base, sample)
    del sample
    ids_path = scratch / "ids.bin"
    dtype = ids_dtype(len(tokenizer))
    stats = _encode(record, tokenizer, text_path, ids_path, dtype)
    _progress(record, "storing", 95)
    return _store(record, base, tokenizer, text_path, ids_path, dtype, {**stats, "tokenizer": base.name}, scratch)


def _normalise(record: DatasetUpload, text_path: Path) -> list[str]:
    """First pass: validate the staged file and write its normalised text to `text_path`.
    Returns the tokenizer's training sample (the first documents, up to the sample size)."""
    scanner = TextScanner(settings.DATASET_MAX_BYTES)
    sample, sample_chars, done = [], 0, 0
    with default_storage.open(record.staged_name, "rb") as source, open(text_path, "w", encoding="utf-8",
                                                                         newline="") as out:
        for chunk in iter(lambda: source.read(CHUNK_BYTES), b""):
            text, documents = scanner.feed(chunk)
            out.write(text)
            for document in documents:
                if sample_chars < TOKENIZER_SAMPLE_CHARS:
                    sample.append(document)
                    sample_chars += len(document)
            done += len(chunk)
            _progress(record, "validating", 40 * done / max(record.size_bytes, 1))
        text, documents = scanner.finish()
        out.write(text)
        if sample_chars < TOKENIZER_SAMPLE_CHARS:
            sample.extend(documents)
    return sample


def _documents(text_path: Path) -> Iterator[list[str]]:
    """Second pass: the normalised text's documents, in batches of about ENCODE_BATCH_CHARS."""
    scanner = TextScanner(max_bytes=2**62)
    batch, chars = [], 0
    with open(text_path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK_BYTES), b""):
            for document in scanner.feed(chunk)[1]:
                batch.append(document)
                chars += len(document)
                if chars >= ENCODE_BATCH_CHARS:
                    yield batch
                    batch, chars = [], 0
        batch.extend(scanner.finish()[1])
    if batch:
        yield batch


def _encode(record, tokenizer, text_path: Path, ids_path: Path, dtype) -> dict:
    stats = StatsAccumulator()
    total, done = max(text_path.stat().st_size, 1), 0
    with open(ids_path, "wb") as out:
        for batch in _documents(text_path):
            ids, counts = encode_batch_ids(batch, tokenizer, dtype)
            out.write(ids.tobytes())
            stats.add(batch, counts)
            done += sum(len(d) for d in batch)
            _progress(record, "encoding", 40 + 55 * min(done / total, 1.0))
    return stats.as_dict()


def _progress(record: DatasetUpload, phase: str, percent: float) -> None:
    """Record progress when it moved by a whole percent or the phase changed (one UPDATE)."""
    percent = round(min(percent, 100.0), 1)
    if phase == record.phase and int(percent) == int(record.progress):
        return
    record.phase, record.progress = phase, percent
    DatasetUpload.objects.filter(pk=record.pk, state=DatasetUpload.State.PROCESSING).update(
        phase=phase, progress=percent)


def _stats_tokenizer(base: BaseModel, sample: list[str]):
    """For the tiny model a tokenizer trained on the sample, else the base's own. Raises
    TrainingError when a hub tokenizer is unreachable."""
    if base.name == TINY:
        from ..tiny import train_tokenizer

        return train_tokenizer(sample, vocab_size=TINY_VOCAB)
    return base_tokenizer_load(base)


def _store(record, base, tokenizer, text_path: Path, ids_path: Path, dtype, stats: dict, scratch: Path):
    sha = artifacts.file_sha256(text_path)
    key, prefix = _encoding_address(sha, base)
    text_name = f"datasets/{sha}.txt"
    # What this run adds to storage, as opposed to what an identical upload stored before.
    ours = {"text": not default_storage.exists(text_name),
            "encoding": not default_storage.exists(_ids_name(prefix, dtype))}
    try:
        text_name = _save_once(text_name, text_path)
        ids_name = _save_ids(prefix, ids_path, dtype, tokenizer if base.name == TINY else None, scratch)
        locked = _store_rows(record, key, ids_name, ids_path, dtype, Dataset(
            owner=record.owner, name=record.name, sha256=sha, upload_sha256=record.upload_sha256,
            size_bytes=text_path.stat().st_size, licence=record.licence, licence_attested=True,
            rights_holders=record.rights_holders, stats=stats, file=text_name))
    finally:
        # Kept only when a Dataset refers to them: not when this run failed, nor when a duplicate
        # delivery (or the sweep) settled the upload first.
        _delete_unreferenced(sha, text_name if ours["text"] else None, prefix if ours["encoding"] else None)
    if locked.state != DatasetUpload.State.READY:
        return locked
    default_storage.delete(record.staged_name)
    return DatasetUpload.objects.select_related("dataset").get(pk=record.pk)


def _store_rows(record, key: str, ids_name: str, ids_path: Path, dtype, dataset: Dataset) -> DatasetUpload:
    """The Dataset, its encoding and the upload's ready state, in one transaction; or the upload
    as it is when it is no longer processing (then nothing is written)."""
    with transaction.atomic():
        locked = DatasetUpload.objects.select_for_update().get(pk=record.pk)
        if locked.state != DatasetUpload.State.PROCESSING:
            return locked
        dataset.save()
        _record_encoding(dataset, key, ids_name, ids_path, dtype)
        DatasetUpload.objects.filter(pk=record.pk).update(
            state=DatasetUpload.State.READY, dataset=dataset, phase="ready", progress=100.0,
            staged_name="", finished_at=timezone.now())
    locked.state = DatasetUpload.State.READY
    return locked


def _save_once(name: str, path: Path) -> str:
    """Store a content-addressed file unless an identical one is there already."""
    if default_storage.exists(name):
        return name
    with open(path, "rb") as fh:
        return default_storage.save(name, File(fh))


def _delete_unreferenced(sha: str, text_name: str | None, encoding_prefix: str | None) -> None:
    """Delete a stored text and an encoding's folder unless a Dataset of that digest exists."""
    if Dataset.objects.filter(sha256=sha).exists():
        return
    if encoding_prefix:
        artifacts.folder_delete(encoding_prefix)
    if text_name:
        default_storage.delete(text_name)


def _refuse(record: DatasetUpload, reason: str, message: str, offset: int | None) -> DatasetUpload:
    """Refuse the upload unless it is settled already; its staged file is deleted either way (a
    ready upload's was) and the record keeps why, for the trainer."""
    DatasetUpload.objects.filter(pk=record.pk, state=DatasetUpload.State.PROCESSING).update(
        state=DatasetUpload.State.REFUSED, refusal_reason=reason, refusal_message=message, refusal_offset=offset,
        staged_name="", phase="refused", finished_at=timezone.now())
    if record.staged_name:
        default_storage.delete(record.staged_name)
    return DatasetUpload.objects.get(pk=record.pk)


def dataset_uploads_sweep() -> int:
    """Refuse every upload processing for longer than DATASET_UPLOAD_TIMEOUT_SECONDS (its worker
    died, or it waits behind a stuck one) and delete its staged file; a worker still busy with
    one finds it refused when it stores, and keeps nothing. Returns how many it refused."""
    since = timezone.now() - timezone.timedelta(seconds=settings.DATASET_UPLOAD_TIMEOUT_SECONDS)
    stuck = DatasetUpload.objects.filter(state=DatasetUpload.State.PROCESSING, created_at__lt=since)
    refused = 0
    for record in stuck:
        refused += _refuse(record, "timed_out", TIMED_OUT_MESSAGE, None).refusal_reason == "timed_out"
    return refused


# --- Encodings for the jobs ------------------------------------------------------------------

def _ids_name(prefix: str, dtype) -> str:
    return f"{prefix}/ids.{np.dtype(dtype).name}.bin"


def _encoding_address(dataset_sha256: str, base: BaseModel) -> tuple[str, str]:
    """(tokenizer key, storage prefix) of a dataset's encoding for a base model."""
    key = TINY_TOKENIZER_KEY if base.name == TINY else base_tokenizer_key(base)
    return key, "encoded/" + hashlib.sha256(f"{dataset_sha256}:{key}".encode()).hexdigest()


def _save_ids(prefix: str, ids_path: Path, dtype, tiny_tokenizer, scratch: Path) -> str:
    ids_name = _ids_name(prefix, dtype)
    if not default_storage.exists(ids_name):
        if tiny_tokenizer is not None:
            tiny_tokenizer.save_pretrained(scratch / "tokenizer")
            artifacts.folder_upload(scratch / "tokenizer", f"{prefix}/tokenizer")
        with open(ids_path, "rb") as fh:
            default_storage.save(ids_name, File(fh))
    return ids_name


def _record_encoding(dataset: Dataset, key: str, name: str, ids_path: Path, dtype) -> None:
    tokens = ids_path.stat().st_size // np.dtype(dtype).itemsize
    try:
        with transaction.atomic():
            EncodedDataset.objects.get_or_create(
                dataset=dataset, tokenizer_key=key,
                defaults={"file": name, "tokens": tokens, "dtype": np.dtype(dtype).str,
                          "sha256": artifacts.file_sha256(ids_path)})
    except IntegrityError:
        pass  # another worker recorded the same encoding first


def dataset_encoding(*, dataset: Dataset, base: BaseModel, scratch: Path) -> tuple[object, list[int]]:
    """(tokenizer, token ids) of a dataset for a base model, encoded once and cached in storage.

    The cache is content-addressed: its key is the SHA-256 of the dataset digest and the
    tokenizer's identity, so a re-uploaded identical file reuses it. The built-in tiny model's
    tokenizer is trained on the dataset and stored beside the ids, so a resumed job gets the very
    same tokenizer. Raises TrainingError when a hub tokenizer is unreachable.
    """
    key, prefix = _encoding_address(dataset.sha256, base)
    for dtype in (np.dtype("<u2"), np.dtype("<u4")):
        name = _ids_name(prefix, dtype)
        if default_storage.exists(name):
            tokenizer = _cached_tokenizer(base, prefix, scratch)
            with default_storage.open(name, "rb") as fh:
                ids = np.frombuffer(fh.read(), dtype=dtype)
            return tokenizer, ids.astype(np.int64).tolist()
    legacy = f"{prefix}/ids.bin"  # int32, as stored before ids were kept at their smallest dtype
    if default_storage.exists(legacy):
        with default_storage.open(legacy, "rb") as fh:
            return _cached_tokenizer(base, prefix, scratch), ids_from_bytes(fh.read())
    return _encode_stored(dataset, base, scratch, key, prefix)


def _encode_stored(dataset: Dataset, base: BaseModel, scratch: Path, key: str, prefix: str):
    """Encode a stored dataset for a tokenizer it was not encoded with at upload."""
    text_path = scratch / "dataset.txt"
    with default_storage.open(dataset.file.name, "rb") as src, open(text_path, "wb") as out:
        for chunk in iter(lambda: src.read(CHUNK_BYTES), b""):
            out.write(chunk)
    tokenizer = _stats_tokenizer(base, _sample(text_path) if base.name == TINY else [])
    dtype = ids_dtype(len(tokenizer))
    ids_path = scratch / "ids.bin"
    with open(ids_path, "wb") as out:
        for batch in _documents(text_path):
            out.write(encode_batch_ids(batch, tokenizer, dtype)[0].tobytes())
    name = _save_ids(prefix, ids_path, dtype, tokenizer if base.name == TINY else None, scratch)
    _record_encoding(dataset, key, name, ids_path, dtype)
    return tokenizer, np.fromfile(ids_path, dtype=dtype).astype(np.int64).tolist()


def _sample(text_path: Path) -> list[str]:
    sample, chars = [], 0
    for batch in _documents(text_path):
        for document in batch:
            if chars >= TOKENIZER_SAMPLE_CHARS:
                return sample
            sample.append(document)
            chars += len(document)
    return sample


def _cached_tokenizer(base: BaseModel, prefix: str, scratch: Path):
    if base.name != TINY:
        return base_tokenizer_load(base)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(artifacts.folder_download(f"{prefix}/tokenizer", scratch / "tokenizer"))
