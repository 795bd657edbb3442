"""The Django side of model loading: model versions fetched from storage by digest into a local cache
folder (verified), the process-wide engine, and tokenizers for counting prompt tokens.

The engine is plain Python: the settings it runs by are passed in here when it is built
(INFERENCE_CACHE_BYTES: its model cache's limit; INFERENCE_MAX_QUEUE: queued requests before 429;
INFERENCE_MAX_BATCH: rows one decode step serves at most).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage

from training.artifacts import (
    file_sha256,
    folder_download,
    folder_manifest,
    manifest_digest,
)

from .engine import Engine

_fetch_lock = threading.Lock()
_engine: Engine | None = None
_engine_lock = threading.Lock()
_tokenizer_lock = threading.Lock()
_tokenizers: dict[str, object] = {}


class ModelIntegrityError(Exception):
    """The stored folder's digest differs from the version's: never serve it."""


def model_cache_dir() -> Path:
    return Path(settings.VAR_DIR) / "model-cache"


def model_folder_fetch(version) -> Path:
    """A local folder holding `version`'s files (for an adapter: the adapter, not its base),
    downloaded once per digest and verified.

    Raises ModelIntegrityError when the downloaded folder's digest is not `version.digest`, and
    FileNotFoundError when storage holds nothing under the version's prefix."""
    return _verified_fetch(version.storage_prefix.rstrip("/"), version.digest)


def base_folder_fetch(version) -> Path | None:
    """The local folder of an adapter version's base (verified against `version.base_digest`), or
    None for a whole model. Bases are stored once under `bases/<digest>/`."""
    if not getattr(version, "base_digest", ""):
        return None
    return _verified_fetch(version.base_prefix, version.base_digest)


def engine_source(version) -> dict:
    """What a GenerationRequest (and Engine.perplexity) needs to find a version's weights:
    `model_digest`, `model_dir`, and for an adapter its `base_digest` and `base_dir`."""
    source = {"model_digest": version.digest, "model_dir": model_folder_fetch(version)}
    base_dir = base_folder_fetch(version)
    if base_dir is not None:
        source |= {"base_digest": version.base_digest, "base_dir": base_dir}
    return source


def _verified_fetch(prefix: str, digest: str) -> Path:
    target = model_cache_dir() / digest
    if target.is_dir():
        return target
    with _fetch_lock:
        if target.is_dir():
            return target
        model_cache_dir().mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=model_cache_dir()))
        try:
            folder_download(prefix, staging)
            actual = manifest_digest(folder_manifest(staging))
            if actual != digest:
                raise ModelIntegrityError(f"Stored model {digest[:12]} has digest {actual[:12]}.")
            try:
                staging.rename(target)  # atomic: other processes see a complete folder or none
            except OSError:
                if not target.is_dir():  # another process renamed its verified copy first
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def engine_instance() -> Engine:
    """The engine of this process (shared by its threads), created on first use."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = Engine(cache_bytes=settings.INFERENCE_CACHE_BYTES, max_queue=settings.INFERENCE_MAX_QUEUE,
                             max_batch=settings.INFERENCE_MAX_BATCH)
        return _engine


# Small files enough for AutoTokenizer: the web tier counts tokens without fetching the weights.
_TOKENIZER_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                    "vocab.json", "merges.txt", "added_tokens.json", "generation_config.json")


def tokenizer_folder_fetch(version) -> Path:
    """A local folder with the version's tokenizer files only, each verified against the version's
    manifest (its SHA-256). Uses the full model folder when this process already has it.

    Raises ModelIntegrityError for a file that differs from the manifest or a manifest without a
    tokenizer; FileNotFoundError when storage lacks a listed file."""
    full = model_cache_dir() / version.digest
    if full.is_dir():
        return full
    target = model_cache_dir() / "tokenizers" / version.digest
    if target.is_dir():
        return target
    wanted = [f for f in version.files or [] if f["name"] in _TOKENIZER_FILES]
    if not any(f["name"] == "tokenizer.json" for f in wanted):
        return model_folder_fetch(version)  # an older manifest: fall back to the verified full folder
    staging = Path(tempfile.mkdtemp(prefix=".tok-", dir=_ensure(model_cache_dir())))
    try:
        for entry in wanted:
            with default_storage.open(f"{version.storage_prefix.rstrip('/')}/{entry['name']}", "rb") as src:
                (staging / entry["name"]).write_bytes(src.read())
            if file_sha256(staging / entry["name"]) != entry["sha256"]:
                raise ModelIntegrityError(f"{entry['name']} of model {version.digest[:12]} differs from its manifest.")
        _ensure(target.parent)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _ensure(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def tokenizer_for(version):
    """The version's tokenizer, cached per digest: the web tier counts prompt tokens with it before
    reserving quota, and the verify page tokenizes texts with it, without loading any weights."""
    tokenizer = _tokenizers.get(version.digest)
    if tokenizer is None:
        # One thread at a time: transformers imports its classes lazily, and threads importing
        # them at once in a fresh web process (the first requests of a threaded gunicorn
        # worker) can see "cannot import name 'AutoTokenizer'".
        with _tokenizer_lock:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder_fetch(version))
        _tokenizers[version.digest] = tokenizer
    return tokenizer
