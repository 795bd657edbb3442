"""The Django side of model loading: model versions fetched from storage by digest into a local cache
folder (verified), the process-wide engine, and tokenizers for counting prompt tokens.

Settings read here (all optional): INFERENCE_CACHE_BYTES (engine LRU limit, default 2 GiB),
INFERENCE_MAX_QUEUE (engine queue length, default 64).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

from django.conf import settings

from training.artifacts import folder_download, folder_manifest, manifest_digest

from .engine import Engine

_fetch_lock = threading.Lock()
_engine: Engine | None = None
_engine_lock = threading.Lock()
_tokenizers: dict[str, object] = {}


class ModelIntegrityError(Exception):
    """The stored folder's digest differs from the version's: never serve it."""


def model_cache_dir() -> Path:
    return Path(settings.VAR_DIR) / "model-cache"


def model_folder_fetch(version) -> Path:
    """A local folder holding `version`'s files, downloaded once per digest and verified.

    Raises ModelIntegrityError when the downloaded folder's digest is not `version.digest`, and
    FileNotFoundError when storage holds nothing under the version's prefix."""
    target = model_cache_dir() / version.digest
    if target.is_dir():
        return target
    with _fetch_lock:
        if target.is_dir():
            return target
        model_cache_dir().mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version.digest[:12]}-", dir=model_cache_dir()))
        try:
            folder_download(version.storage_prefix.rstrip("/"), staging)
            actual = manifest_digest(folder_manifest(staging))
            if actual != version.digest:
                raise ModelIntegrityError(f"Stored model {version.digest[:12]} has digest {actual[:12]}.")
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
            _engine = Engine(
                cache_bytes=int(getattr(settings, "INFERENCE_CACHE_BYTES", 2 * 1024**3)),
                max_queue=int(getattr(settings, "INFERENCE_MAX_QUEUE", 64)),
            )
        return _engine


def tokenizer_for(version):
    """The version's tokenizer (loaded from the verified local folder, cached per digest): the web
    tier counts prompt tokens with it before reserving quota, without loading the weights."""
    tokenizer = _tokenizers.get(version.digest)
    if tokenizer is None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_folder_fetch(version))
        _tokenizers[version.digest] = tokenizer
    return tokenizer
