"""Write-side services of the training app: datasets, jobs and their state machine, versions.

The training loop itself is `training.loop` (plain torch, no Django); `training.job_runner` runs a
job on a worker with callbacks that write its progress here.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from . import artifacts
from .base_models import BASE_MODELS, TINY, BaseModel, available_device, job_estimate
from .models import Checkpoint, Dataset, EncodedDataset, ModelVersion, Sample, TrainingJob
from .textdata import DatasetInvalid, dataset_stats, encode_documents, ids_from_bytes, ids_to_bytes, parse_documents

State = TrainingJob.State
# Content types a browser or an HTTP client sends for a text file. Anything else (images, PDFs,
# archives) is refused before the bytes are read.
TEXT_CONTENT_TYPES = {"text/plain", "text/markdown", "text/x-markdown", "application/octet-stream", ""}
TINY_VOCAB = 512
TINY_TOKENIZER_KEY = f"tiny-bytelevel-bpe-{TINY_VOCAB}-v1"
VAL_FRACTION = 0.05
# Files of a checkpoint that a model version never contains: optimizer and loop state.
TRAINING_STATE_FILES = {"optimizer.pt", "scheduler.pt", "rng.pt", "trainer_state.json"}


class TrainingError(Exception):
    """A refused training action; `message` is for the trainer."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class IllegalTransition(TrainingError):
    pass


class TrainingLimitExceeded(TrainingError):
    pass


# --- Datasets ---------------------------------------------------------------------------------

def _check_upload(upload) -> None:
    if upload.size > settings.DATASET_MAX_BYTES:
        limit = settings.DATASET_MAX_BYTES / (1024 * 1024)
        raise DatasetInvalid("too_large", f"File is {upload.size / (1024 * 1024):.1f} MB; the limit is {limit:g} MB.")
    content_type = (getattr(upload, "content_type", "") or "").split(";")[0].strip().lower()
    if content_type not in TEXT_CONTENT_TYPES and not content_type.startswith("text/"):
        raise DatasetInvalid("wrong_content_type", f"Upload a plain UTF-8 text file, not {content_type}.")


def dataset_documents(raw: bytes) -> list[str]:
    """Documents of an upload. Raises DatasetInvalid (size, UTF-8, empty, binary, separators only)."""
    documents = parse_documents(raw, settings.DATASET_MAX_BYTES)
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise DatasetInvalid("binary", f"File looks binary (NUL byte at offset {nul}); upload plain UTF-8 text.")
    return documents


def dataset_create(*, owner, name: str, upload, licence: str, licence_attested: bool,
                   stats_base_model: str = TINY) -> Dataset:
    """Validate an uploaded text file and store it with its statistics.

    Raises DatasetInvalid for a bad file or a missing attestation and TrainingError for an unknown
    base model. Nothing is stored for a refused upload; if saving the row fails, the stored file is
    deleted again.
    """
    if not licence_attested:
        raise DatasetInvalid("not_attested", "Confirm that you have the right to train on this data.")
    _check_upload(upload)
    raw = upload.read()
    documents = dataset_documents(raw)
    base = _base(stats_base_model)
    tokenizer = stats_tokenizer(documents, base)
    stats = dataset_stats(documents, tokenizer)
    stats["tokenizer"] = stats_base_model
    sha = hashlib.sha256(raw).hexdigest()
    stored = default_storage.save(f"datasets/{sha}.txt", ContentFile(raw))
    try:
        with transaction.atomic():
            dataset = Dataset(owner=owner, name=name.strip() or Path(upload.name).stem, sha256=sha,
                              size_bytes=len(raw), licence=licence, licence_attested=True, stats=stats)
            dataset.file.name = stored
            dataset.save()
    except Exception:
        default_storage.delete(stored)
        raise
    # The tokenizer is at hand (for the tiny model it was just trained on this data): cache the
    # encoding now, so a job neither trains the tokenizer again nor encodes the data again.
    with tempfile.TemporaryDirectory() as tmp:
        _encoding_save(dataset=dataset, base=base, tokenizer=tokenizer, documents=documents, scratch=Path(tmp))
    return dataset


def _base(name: str) -> BaseModel:
    try:
        return BASE_MODELS[name]
    except KeyError:
        raise TrainingError(f"Unknown base model {name!r}; choose one of {', '.join(BASE_MODELS)}.",
                            field="base_model") from None


def stats_tokenizer(documents: list[str], base: BaseModel):
    """The tokenizer whose token counts the dataset page shows."""
    if base.name == TINY:
        from .tiny import train_tokenizer

        return train_tokenizer(documents, vocab_size=TINY_VOCAB)
    return load_hub_tokenizer(base)


def load_hub_tokenizer(base: BaseModel):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(base.source)
    except OSError as exc:
        raise TrainingError(
            f"The {base.name} tokenizer is not available on this server (no local copy and no hub "
            f"access): {exc.__class__.__name__}. Configure TRAINING_BASE_MODEL_PATHS.",
            field="base_model") from exc


def dataset_read_documents(dataset: Dataset) -> list[str]:
    with default_storage.open(dataset.file.name, "rb") as fh:
        return dataset_documents(fh.read())


def dataset_encoding(*, dataset: Dataset, base: BaseModel, scratch: Path):
    """(tokenizer, token ids) of a dataset for a base model, encoded once and cached in storage.

    The cache is content-addressed: its key is the SHA-256 of the dataset digest and the
    tokenizer's identity, so a re-uploaded identical file reuses it. The built-in tiny model's
    tokenizer is trained on the dataset and stored beside the ids, so a resumed job gets the very
    same tokenizer.
    """
    key, prefix = _encoding_address(dataset, base)
    ids_name = f"{prefix}/ids.bin"
    if not default_storage.exists(ids_name):
        documents = dataset_read_documents(dataset)
        tokenizer = stats_tokenizer(documents, base)
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
        return load_hub_tokenizer(base)
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


# --- Jobs -------------------------------------------------------------------------------------

ACTIVE_STATES = (State.QUEUED, State.RUNNING)


def _check_limits(owner, steps: int) -> None:
    active = TrainingJob.objects.filter(owner=owner, state__in=ACTIVE_STATES).count()
    if active >= settings.TRAINING_MAX_CONCURRENT_JOBS:
        raise TrainingLimitExceeded(
            f"You already have {active} jobs queued or running (limit {settings.TRAINING_MAX_CONCURRENT_JOBS}). "
            "Wait for one to finish, or pause or cancel one.")
    used = TrainingJob.objects.filter(owner=owner).exclude(state=State.CANCELLED).aggregate(s=Sum("total_steps"))["s"] or 0
    if used + steps > settings.TRAINING_MAX_TOTAL_STEPS:
        raise TrainingLimitExceeded(
            f"This job would bring your total to {used + steps} steps; your limit is {settings.TRAINING_MAX_TOTAL_STEPS}.",
            field="steps")


def job_estimate_for(*, base_model: str, hyperparameters: dict) -> dict:
    return job_estimate(base=_base(base_model), steps=hyperparameters["steps"],
                        batch_size=hyperparameters["batch_size"],
                        context_length=hyperparameters["context_length"], device=available_device())


@transaction.atomic
def job_create(*, owner, dataset: Dataset, name: str, base_model: str, hyperparameters: dict) -> TrainingJob:
    """Create a queued job and enqueue it on the training queue after commit.

    `hyperparameters` are already validated (JobForm). Raises TrainingError for an unknown base
    model or a dataset of someone else, TrainingLimitExceeded over the trainer's limits.
    """
    base = _base(base_model)
    if dataset.owner_id != owner.pk:
        raise TrainingError("Choose one of your own datasets.", field="dataset")
    if hyperparameters["context_length"] > _max_context(base):
        raise TrainingError(f"Context length can be at most {_max_context(base)} for {base.name}.",
                            field="context_length")
    _check_limits(owner, hyperparameters["steps"])
    job = TrainingJob.objects.create(
        owner=owner, dataset=dataset, name=name or f"{dataset.name} on {base.name}", base_model=base.name,
        hyperparameters=hyperparameters, total_steps=hyperparameters["steps"],
        estimate=job_estimate_for(base_model=base.name, hyperparameters=hyperparameters),
        heartbeat_at=timezone.now())
    _enqueue(job)
    return job


def _max_context(base: BaseModel) -> int:
    return 512 if base.name == TINY else base.n_positions


def _enqueue(job: TrainingJob) -> None:
    from .tasks import run_job

    job_id = str(job.pk)
    transaction.on_commit(lambda: run_job.delay(job_id))


# Which requests each state accepts, and the state they lead to directly. Pause and cancel of a
# running job are requests the loop honours at its next step, so they do not change the state here.
_DIRECT = {
    ("pause", State.QUEUED): State.PAUSED,
    ("cancel", State.QUEUED): State.CANCELLED,
    ("cancel", State.PAUSED): State.CANCELLED,
    ("cancel", State.FAILED): State.CANCELLED,
    ("resume", State.PAUSED): State.QUEUED,
    ("resume", State.FAILED): State.QUEUED,
}


@transaction.atomic
def job_control(*, job: TrainingJob, action: str) -> TrainingJob:
    """Pause, cancel or resume a job. Raises IllegalTransition with a message when the job's state
    does not allow it (e.g. resuming a running job, cancelling a finished one)."""
    job = TrainingJob.objects.select_for_update().get(pk=job.pk)
    if action in ("pause", "cancel") and job.state == State.RUNNING:
        if job.control_request == "cancel" and action == "pause":
            raise IllegalTransition("The job is already being cancelled.")
        job.control_request = action
        job.save(update_fields=["control_request"])
        return job
    target = _DIRECT.get((action, job.state))
    if target is None:
        raise IllegalTransition(f"Cannot {action} a job that is {job.state}.")
    if action == "resume":
        _check_limits(job.owner, 0)
    job.state, job.control_request = target, ""
    if target == State.QUEUED:
        job.heartbeat_at = timezone.now()
        job.error_message = job.error_trace = ""
        _enqueue(job)
    if target == State.CANCELLED:
        job.finished_at = timezone.now()
    job.save()
    return job


def job_claim(*, job_id, worker_id: str) -> bool:
    """Take the job for this worker: a queued job, or a running one whose lease expired (its
    worker died). A conditional UPDATE, so two workers can never both win."""
    now = timezone.now()
    stale = now - timezone.timedelta(seconds=settings.TRAINING_LEASE_SECONDS)
    claimed = (
        TrainingJob.objects.filter(pk=job_id)
        .filter(Q(state=State.QUEUED) | Q(state=State.RUNNING, heartbeat_at__lt=stale))
        .update(state=State.RUNNING, worker_id=worker_id, heartbeat_at=now, attempts=F("attempts") + 1)
    )
    if claimed:
        TrainingJob.objects.filter(pk=job_id, started_at__isnull=True).update(started_at=now)
    return bool(claimed)


def jobs_requeue_stale() -> int:
    """Periodic sweep: re-enqueue jobs whose lease expired (a killed worker's message may be lost or
    come back only much later) and queued jobs whose message was lost. Duplicate deliveries are
    harmless: the claim lets one worker in."""
    stale = timezone.now() - timezone.timedelta(seconds=settings.TRAINING_LEASE_SECONDS)
    from .tasks import run_job

    job_ids = list(TrainingJob.objects.filter(state__in=ACTIVE_STATES, heartbeat_at__lt=stale).values_list("pk", flat=True))
    for job_id in job_ids:
        # Touch queued jobs so that one waiting behind another is re-sent once per lease, not per sweep.
        TrainingJob.objects.filter(pk=job_id, state=State.QUEUED).update(heartbeat_at=timezone.now())
        run_job.delay(str(job_id))
    return len(job_ids)


# --- Checkpoints and versions -----------------------------------------------------------------

def checkpoint_prefix(job: TrainingJob, step: int) -> str:
    return f"jobs/{job.pk}/checkpoints/step-{step:08d}"


def checkpoint_record(*, job: TrainingJob, step: int, folder: Path, keep_last: int = 2) -> Checkpoint:
    """Upload a checkpoint folder, record it, and prune all but the newest `keep_last` (and any
    promoted to a version)."""
    prefix = checkpoint_prefix(job, step)
    artifacts.folder_upload(folder, prefix)
    checkpoint, _ = Checkpoint.objects.update_or_create(job=job, step=step, defaults={"storage_prefix": prefix})
    old = Checkpoint.objects.filter(job=job, kept=False).order_by("-step")[keep_last:]
    for stale in list(old):
        artifacts.folder_delete(stale.storage_prefix)
        stale.delete()
    return checkpoint


def version_create(*, job: TrainingJob, folder: Path, step: int, name: str = "") -> ModelVersion:
    """Store a model folder (weights, config, tokenizer; never optimizer state) as a model version
    with its model card and SHA-256 digest. Raises TrainingError if the folder does not load."""
    from transformers import AutoModelForCausalLM

    for extra in TRAINING_STATE_FILES:
        (folder / extra).unlink(missing_ok=True)
    try:
        model = AutoModelForCausalLM.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        raise TrainingError(f"The model folder does not load: {exc}") from exc
    params, n_positions = model.num_parameters(), model.config.n_positions
    del model
    name = name or f"{job.name} · step {step}"
    metrics = _metrics_at(job, step)
    from .modelcard import render_model_card

    (folder / "README.md").write_text(render_model_card(
        name=name, base_model=job.base_model, base_licence=_base(job.base_model).licence,
        dataset_name=job.dataset.name, dataset_digest=job.dataset.sha256, dataset_licence=job.dataset.licence,
        metrics=metrics, params=params, hyperparameters=job.hyperparameters, samples=_card_samples(job, step)))
    manifest = artifacts.folder_manifest(folder)
    digest = artifacts.manifest_digest(manifest)
    existing = ModelVersion.objects.filter(digest=digest).first()
    if existing:
        return existing
    prefix = f"versions/{digest}"
    artifacts.folder_upload(folder, prefix)
    return ModelVersion.objects.create(
        owner=job.owner, job=job, name=name, from_step=step, storage_prefix=prefix, digest=digest,
        parameter_count=params, base_model=job.base_model, base_licence=_base(job.base_model).licence,
        dataset_digest=job.dataset.sha256, dataset_licence=job.dataset.licence, n_positions=n_positions,
        metrics=metrics, card=(folder / "README.md").read_text(), files=manifest)


def _metrics_at(job: TrainingJob, step: int) -> dict:
    latest = job.metrics.filter(step__lte=step).order_by("-step").first()
    evaluated = job.metrics.filter(step__lte=step, val_loss__isnull=False).order_by("-step").first()
    metrics = {"step": step}
    if latest:
        metrics["train_loss"] = latest.train_loss
    if evaluated:
        metrics.update(val_loss=evaluated.val_loss, perplexity=evaluated.perplexity)
    return metrics


def _card_samples(job: TrainingJob, step: int) -> list[dict]:
    last = job.samples.filter(step__lte=step).order_by("-step").values_list("step", flat=True).first()
    samples = Sample.objects.filter(job=job, step=last) if last is not None else []
    return [{"step": s.step, "text": s.text, "longest_span": s.longest_copied_span, "ngram_share": s.ngram_overlap}
            for s in samples]


def version_from_checkpoint(*, job: TrainingJob, checkpoint: Checkpoint, name: str = "") -> ModelVersion:
    """Promote any checkpoint of a paused or finished job to a model version; the checkpoint is
    kept from then on. Raises IllegalTransition while the job runs or is queued."""
    if job.state in ACTIVE_STATES:
        raise IllegalTransition("Pause the job (or let it finish) before making a version from a checkpoint.")
    with tempfile.TemporaryDirectory() as tmp:
        folder = artifacts.folder_download(checkpoint.storage_prefix, Path(tmp) / "model")
        version = version_create(job=job, folder=folder, step=checkpoint.step, name=name)
    Checkpoint.objects.filter(pk=checkpoint.pk).update(kept=True)
    return version
