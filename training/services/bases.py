"""The base models this server can train on: preparing the built-in pretrained base once per
installation, loading it for fine-tuning, and probing whether the model hub is reachable.

The built-in base (training.builtin_base) is one `BuiltinBase` row. Preparing it is claimed by a
conditional update with a lease that the preparing process renews as it reports progress, so two
workers (or `manage.py base_prepare` beside a worker) never prepare it at once, a re-delivered task
finds it claimed or ready and returns, and one whose process died is taken over once the lease
expired. The folder is stored like a model version's (content-addressed by its digest, local media
or S3) and copied once per machine into TRAINING_WORK_DIR for fine-tuning.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F, Q
from django.dispatch import Signal
from django.utils import timezone

from .. import artifacts
from ..availability import HUB_PROBE_CACHE_KEY, base_availability
from ..base_models import BUILTIN, BaseModel, hub_tokenizer_load
from ..builtin_base import base_pretrain, size_get
from ..errors import LeaseLost, TrainingError
from ..models import BuiltinBase

log = logging.getLogger(__name__)
State = BuiltinBase.State

PREPARE_TASK = "training.builtin_base_prepare"
HUB_PROBE_TASK = "training.hub_probe"
# Sent (after commit) when the built-in base becomes ready; the demo listens for it to fine-tune its
# listings (marketplace connects a receiver; training never imports the marketplace).
builtin_base_ready = Signal()
_RECORD_EVERY_SECONDS = 2.0  # progress rows written at most this often (each also renews the lease)


def _lease_seconds() -> int:
    return settings.TRAINING_LEASE_SECONDS


def builtin_base_row() -> BuiltinBase:
    """The built-in base's row, created as `missing` at the configured size if there is none."""
    row, _ = BuiltinBase.objects.get_or_create(name=BUILTIN, defaults={"size": settings.BUILTIN_BASE_SIZE})
    return row


def builtin_base_enqueue() -> BuiltinBase:
    """Send the preparation to the training queue unless the base is ready or a preparation is
    already under way (a queued one counts). A failed one is tried again. Returns the row."""
    row = builtin_base_row()
    with transaction.atomic():
        queued = BuiltinBase.objects.filter(pk=row.pk).filter(
            Q(state__in=(State.MISSING, State.FAILED)) | _lease_expired()).update(
            state=State.PREPARING, progress=0.0, phase="waiting for a training worker", lease_owner="",
            lease_expires_at=None, error="", size=settings.BUILTIN_BASE_SIZE)
        if queued:
            transaction.on_commit(lambda: current_app.send_task(PREPARE_TASK, ignore_result=True))
    row.refresh_from_db()
    return row


def _lease_expired() -> Q:
    # A preparing row whose process stopped renewing; a queued one (no owner) is not expired: its
    # message is on its way to a training worker.
    return Q(state=State.PREPARING, lease_expires_at__lt=timezone.now())


def builtin_base_claim(*, worker_id: str, force: bool = False) -> bool:
    """Take the preparation for `worker_id`: a missing, failed or queued base, or one whose
    preparer's lease expired (`force`: also a ready one, to prepare it again). One claimant wins."""
    row = builtin_base_row()
    claimable = Q(state__in=(State.MISSING, State.FAILED)) | _lease_expired() | Q(state=State.PREPARING,
                                                                                lease_owner="")
    if force:
        claimable |= Q(state=State.READY)
    now = timezone.now()
    return bool(BuiltinBase.objects.filter(pk=row.pk).filter(claimable).update(
        state=State.PREPARING, lease_owner=worker_id, lease_expires_at=now + timedelta(seconds=_lease_seconds()),
        progress=0.0, phase="starting", error="", attempts=F("attempts") + 1, started_at=now, finished_at=None,
        size=settings.BUILTIN_BASE_SIZE))


def _held(worker_id: str):
    return BuiltinBase.objects.filter(name=BUILTIN, state=State.PREPARING, lease_owner=worker_id)


def builtin_base_progress(*, worker_id: str, percent: float, phase: str) -> None:
    """Record progress and renew the lease. Raises LeaseLost when another process took it over."""
    if not _held(worker_id).update(progress=round(percent, 1), phase=phase[:64],
                                   lease_expires_at=timezone.now() + timedelta(seconds=_lease_seconds())):
        raise LeaseLost(BUILTIN)


class _Reporter:
    """Records progress at most every few seconds (and always the phase changes), and relays it."""

    def __init__(self, worker_id: str, echo: Callable[[float, str], None] | None):
        self.worker_id, self.echo = worker_id, echo
        self.last, self.last_phase = 0.0, ""

    def __call__(self, percent: float, phase: str) -> None:
        now, kind = time.monotonic(), phase.split(",")[0]
        if now - self.last >= _RECORD_EVERY_SECONDS or kind != self.last_phase:
            builtin_base_progress(worker_id=self.worker_id, percent=percent, phase=phase)
            self.last, self.last_phase = now, kind
            if self.echo:
                self.echo(percent, phase)


def builtin_base_prepare(*, worker_id: str | None = None, force: bool = False,
                         echo: Callable[[float, str], None] | None = None) -> BuiltinBase:
    """Prepare the built-in base here and now, unless another process holds the preparation or it
    is ready (`force` prepares a ready one again). `echo(percent, phase)` sees the progress.
    Returns the row as it ends: ready, failed (with the error), or as another process left it."""
    worker_id = worker_id or f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if not builtin_base_claim(worker_id=worker_id, force=force):
        return builtin_base_row()
    row = builtin_base_row()
    try:
        _prepare_claimed(row, worker_id, _Reporter(worker_id, echo))
    except LeaseLost:
        log.warning("built-in base: preparation taken over by another process")
    except Exception as exc:  # noqa: BLE001 - any failure leaves the base failed, with the reason
        log.exception("built-in base: preparation failed")
        _held(worker_id).update(state=State.FAILED, error=f"{exc.__class__.__name__}: {exc}"[:2000],
                                phase="failed", finished_at=timezone.now(), lease_owner="")
    return builtin_base_row()


def _prepare_claimed(row: BuiltinBase, worker_id: str, report: _Reporter) -> None:
    with tempfile.TemporaryDirectory(prefix="imprint-base-") as tmp:
        folder = Path(tmp) / "base"
        facts = base_pretrain(folder=folder, size=size_get(row.size), work=Path(tmp) / "work", report=report)
        _store_ready(folder, facts, worker_id)


def _store_ready(folder: Path, facts: dict, worker_id: str) -> None:
    manifest = artifacts.folder_manifest(folder)
    digest = artifacts.manifest_digest(manifest)
    prefix = f"bases/{BUILTIN}/{digest}"
    builtin_base_progress(worker_id=worker_id, percent=97, phase="storing the model folder")
    artifacts.folder_store(folder, prefix)
    with transaction.atomic():
        if not _held(worker_id).update(state=State.READY, progress=100.0, phase="ready", digest=digest,
                                       storage_prefix=prefix, files=manifest, facts=facts, error="",
                                       size=facts.get("size", ""), lease_owner="", lease_expires_at=None,
                                       finished_at=timezone.now()):
            raise LeaseLost(BUILTIN)
        transaction.on_commit(lambda: builtin_base_ready.send(sender=BuiltinBase, digest=digest))


def builtin_base_install(*, folder: Path) -> BuiltinBase:
    """Make a folder that `base_pretrain` built elsewhere (another installation, a bigger machine)
    this installation's built-in base, replacing any other. Raises TrainingError for a folder that
    is not one, or while another process is preparing the base."""
    facts_file = Path(folder) / "imprint_base.json"
    if not facts_file.is_file() or not (Path(folder) / "config.json").is_file():
        raise TrainingError(f"{folder} is not a built-in base folder (no imprint_base.json or config.json).")
    worker_id = f"install:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if not builtin_base_claim(worker_id=worker_id, force=True):
        raise TrainingError("Another process is preparing the built-in base; try again when it has finished.")
    _store_ready(Path(folder), json.loads(facts_file.read_text()), worker_id)
    return builtin_base_row()


# --- Using the prepared base --------------------------------------------------------------------

class BaseModelUnavailable(TrainingError):
    """400: a base model this server cannot load now (the reason says why); nothing was queued."""

    code = "base_model_unavailable"


def base_require_available(base: BaseModel) -> None:
    """Raises BaseModelUnavailable (400, param "base_model", with the reason) for a base this
    server cannot load now, so a job on it is refused before anything is queued."""
    availability = base_availability(base.name)
    if not availability["available"]:
        raise BaseModelUnavailable(f"{base.label} cannot be trained on this server now: "
                                   f"{availability['reason']}.", param="base_model")


def builtin_base_ready_row() -> BuiltinBase:
    """The ready built-in base. Raises BaseModelUnavailable while it is not."""
    row = BuiltinBase.objects.filter(name=BUILTIN).first()
    if row is None or row.state != State.READY:
        raise BaseModelUnavailable(f"The built-in base {BUILTIN} is not ready on this server yet "
                                   f"({row.state if row else State.MISSING}).", param="base_model")
    return row


def builtin_base_folder() -> Path:
    """The prepared folder on this machine: downloaded from storage once per digest into
    TRAINING_WORK_DIR/bases (renamed into place whole, so a reader never sees half a folder).
    Raises BaseModelUnavailable while the base is not ready."""
    row = builtin_base_ready_row()
    local = Path(settings.TRAINING_WORK_DIR) / "bases" / row.digest
    if (local / "config.json").exists():
        return local
    local.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{row.digest[:12]}-", dir=local.parent))
    try:
        artifacts.folder_download(row.storage_prefix, partial)
        os.replace(partial, local)
    except OSError:
        if not (local / "config.json").exists():  # another process renamed its copy in first: fine
            raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return local


def base_tokenizer_load(base: BaseModel):
    """The tokenizer of a pretrained base: the built-in base's from its prepared folder, a GPT-2
    family model's from its local copy or the hub. Raises TrainingError when unreachable."""
    if base.builtin:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(builtin_base_folder())
    return hub_tokenizer_load(base)


def base_tokenizer_key(base: BaseModel) -> str:
    """What identifies a pretrained base's tokenizer for cached encodings: the built-in base's
    digest (a base prepared again may have another tokenizer), else the hub name or local path."""
    if base.builtin:
        return f"builtin:{builtin_base_ready_row().digest}"
    return f"hf:{base.source}"


# --- Whether the hub is reachable -----------------------------------------------------------------

def hub_probe() -> dict:
    """Ask the model hub (TRAINING_HUB_URL) whether it answers, and cache the answer for the
    base-model list, which never makes a network call inside a request. Returns the answer."""
    url = settings.TRAINING_HUB_URL.rstrip("/") + "/api/models/gpt2"
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        result = {"reachable": False, "detail": "HF_HUB_OFFLINE is set"}
    else:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=5) as response:
                result = {"reachable": response.status < 500, "detail": f"HTTP {response.status}"}
        except urllib.error.HTTPError as exc:
            result = {"reachable": exc.code < 500, "detail": f"HTTP {exc.code}"}
        except (OSError, ValueError) as exc:
            result = {"reachable": False, "detail": f"{exc.__class__.__name__}: {exc}"[:200]}
    result |= {"checked_at": timezone.now().isoformat(), "url": settings.TRAINING_HUB_URL}
    cache.set(HUB_PROBE_CACHE_KEY, result, timeout=None)
    return result


def hub_probe_enqueue() -> None:
    current_app.send_task(HUB_PROBE_TASK, ignore_result=True)


def builtin_base_requeue_stale() -> bool:
    """Beat: send the preparation again when its process stopped renewing the lease (a worker
    that died mid-way). A failed preparation is not retried here (its cause may be lasting): the
    next start, or `manage.py base_prepare`, tries again. Returns whether it was sent."""
    with transaction.atomic():
        sent = BuiltinBase.objects.filter(name=BUILTIN).filter(_lease_expired()).update(
            lease_owner="", lease_expires_at=None, phase="waiting for a training worker")
        if sent:
            transaction.on_commit(lambda: current_app.send_task(PREPARE_TASK, ignore_result=True))
    return bool(sent)
