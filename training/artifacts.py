"""Folders in the project's storage (local media or S3): upload, download, delete, digest.

Checkpoints and model versions are Hugging Face folders; storage has no folders, only names under
a prefix, so these helpers walk the prefix with `listdir` (works on FileSystemStorage and S3).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from django.core.files import File
from django.core.files.storage import default_storage

_CHUNK = 1024 * 1024


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def folder_manifest(folder: Path) -> list[dict]:
    """[{name, size, sha256}] of every file under `folder`, sorted by name."""
    return [
        {"name": p.relative_to(folder).as_posix(), "size": p.stat().st_size, "sha256": file_sha256(p)}
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    ]


def manifest_digest(manifest: list[dict]) -> str:
    """SHA-256 of a folder: of its canonical manifest (names and file digests), so it is the same
    wherever the folder is stored."""
    canonical = json.dumps([[f["name"], f["sha256"]] for f in manifest], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def folder_upload(local: Path, prefix: str) -> list[dict]:
    """Copy every file of `local` to storage under `prefix/`, replacing what is there.
    Returns the folder's manifest."""
    manifest = folder_manifest(local)
    for entry in manifest:
        _put(local / entry["name"], f"{prefix}/{entry['name']}")
    return manifest


def _put(source: Path, name: str) -> None:
    # Delete first: storages save under another name (a random suffix) when the name is taken.
    if default_storage.exists(name):
        default_storage.delete(name)
    with open(source, "rb") as fh:
        default_storage.save(name, File(fh))


def folder_store(local: Path, prefix: str) -> list[dict]:
    """Copy `local` to a content-addressed `prefix/` (one named by the folder's digest) that other
    versions may already share: a file stored there with its size is that file and is left alone
    (never deleted and written again under a reader's feet); any other is replaced. Returns the
    folder's manifest."""
    manifest = folder_manifest(local)
    for entry in manifest:
        name = f"{prefix}/{entry['name']}"
        if not (default_storage.exists(name) and default_storage.size(name) == entry["size"]):
            _put(local / entry["name"], name)  # missing, or partial from an interrupted upload
    return manifest


def _walk(prefix: str):
    try:
        dirs, files = default_storage.listdir(prefix)
    except FileNotFoundError:
        return
    for f in files:
        yield f"{prefix}/{f}"
    for d in dirs:
        yield from _walk(f"{prefix}/{d}")


def folder_download(prefix: str, local: Path) -> Path:
    """Copy every file under `prefix/` in storage into `local`. Raises FileNotFoundError when the
    prefix holds nothing."""
    names = list(_walk(prefix))
    if not names:
        raise FileNotFoundError(f"nothing stored under {prefix}")
    for name in names:
        target = local / name[len(prefix) + 1 :]
        target.parent.mkdir(parents=True, exist_ok=True)
        with default_storage.open(name, "rb") as src, open(target, "wb") as dst:
            for chunk in iter(lambda: src.read(_CHUNK), b""):
                dst.write(chunk)
    return local


def folder_delete(prefix: str) -> None:
    for name in list(_walk(prefix)):
        default_storage.delete(name)
