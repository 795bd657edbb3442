"""Checkpoints of a running job and the model versions made from them: weights, config and
tokenizer with a model card, content-addressed by the SHA-256 digest of their files."""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from audit.services import audit_append

from .. import artifacts
from ..base_models import base_model_get
from ..lora import ADAPTER_CONFIG, adapter_base_name_set, is_adapter_folder
from ..errors import IllegalTransition, LeaseLost, TrainingError, VersionHeld
from ..models import Checkpoint, ModelVersion, Sample, TrainingJob
from . import jobs
from .jobs import ACTIVE_STATES

# Files of a checkpoint that a model version never contains: optimizer and loop state.
TRAINING_STATE_FILES = {"optimizer.pt", "scheduler.pt", "rng.pt", "trainer_state.json"}
# In an adapter folder (checkpoint or version): the base it applies to, by Imprint name and digest, so
# the adapter's own digest covers which base it needs.
BASE_FILE = "imprint_base.json"


def base_store(folder: Path) -> str:
    """Store a base model folder under `bases/<digest>/` (content-addressed: a base stored before
    is left as it is) and return its SHA-256 digest. Adapter versions point there."""
    digest = artifacts.manifest_digest(artifacts.folder_manifest(folder))
    artifacts.folder_store(folder, f"bases/{digest}")
    return digest


def adapter_base_mark(folder: Path, *, base_name: str, base_digest: str) -> None:
    """Record in an adapter folder the base it applies to (its config names the base by name too)."""
    adapter_base_name_set(folder, base_name)
    (Path(folder) / BASE_FILE).write_text(json.dumps({"name": base_name, "digest": base_digest}, sort_keys=True) + "\n")


def adapter_base(folder: Path) -> dict | None:
    """{name, digest} of the base an adapter folder applies to; None for a whole model's folder.
    Raises TrainingError for an adapter that does not say."""
    if not is_adapter_folder(folder):
        return None
    try:
        return json.loads((Path(folder) / BASE_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise TrainingError("The adapter folder does not name its base model.") from exc


def checkpoint_prefix(job: TrainingJob, step: int) -> str:
    # A prefix of its own per upload: a worker that loses its lease while uploading never
    # overwrites files its successor stored, and what it leaves behind is never referenced.
    return f"jobs/{job.pk}/checkpoints/step-{step:08d}-{uuid.uuid4().hex[:12]}"


def checkpoint_record(*, job: TrainingJob, worker_id: str, step: int, folder: Path, keep_last: int,
                      keep_step: int | None = None) -> Checkpoint:
    """Upload a checkpoint folder, record it, and prune all but the newest `keep_last`, the one
    at `keep_step` (the best evaluation's, which the version will be made from) and any promoted
    to a version. Raises LeaseLost, with nothing recorded or left stored, when this worker no
    longer holds the job."""
    jobs.job_lease_renew(job_id=job.pk, worker_id=worker_id)  # don't start an upload for nothing
    prefix = checkpoint_prefix(job, step)
    artifacts.folder_upload(folder, prefix)
    try:
        with jobs.job_lease_hold(job_id=job.pk, worker_id=worker_id):
            replaced = Checkpoint.objects.filter(job=job, step=step).values_list("storage_prefix", flat=True).first()
            checkpoint, _ = Checkpoint.objects.update_or_create(
                job=job, step=step, defaults={"storage_prefix": prefix})
            stale = [c for c in Checkpoint.objects.filter(job=job, kept=False).order_by("-step")[keep_last:]
                     if c.step != keep_step]
            Checkpoint.objects.filter(pk__in=[c.pk for c in stale]).delete()
    except LeaseLost:
        artifacts.folder_delete(prefix)
        raise
    # Storage is deleted only once the rows are gone, so no one can be pointed at a missing folder.
    for gone in [replaced, *(c.storage_prefix for c in stale)]:
        if gone:
            artifacts.folder_delete(gone)
    return checkpoint


def version_selection(*, job: TrainingJob, step: int, stopped_at: int | None = None, best: bool = False) -> dict:
    """Why a version holds the weights of `step`: the run's best evaluation (`best`), or a
    checkpoint the trainer chose. The text is what the card and the job page say."""
    evaluated = job.metrics.filter(step=step, val_loss__isnull=False).values_list("val_loss", flat=True).first()
    loss = f"validation loss {evaluated:.3f}" if evaluated is not None else "not evaluated"
    if best:
        rule, text = "lowest_validation_loss", f"step {step} of {job.total_steps}: lowest {loss}"
        if stopped_at is not None and stopped_at < job.total_steps:
            text += f" (stopped early at step {stopped_at})"
    else:
        rule, text = "checkpoint", f"step {step} of {job.total_steps}: a checkpoint chosen by the trainer ({loss})"
    return {"rule": rule, "step": step, "of_steps": job.total_steps, "stopped_at": stopped_at,
            "val_loss": evaluated, "text": text}


def version_create(*, job: TrainingJob, folder: Path, step: int, name: str = "",
                   worker_id: str | None = None, base_folder: Path | None = None,
                   selection: dict | None = None) -> ModelVersion:
    """Store a model folder (weights, config, tokenizer; never optimizer state) as the job owner's
    model version with its model card and SHA-256 digest; an identical folder the owner stored
    before is that version, one another owner stored shares its files. With `worker_id` (a run's
    final model), only while that worker holds the job. An adapter folder (a LoRA run's) is stored
    as it is, recording its base's digest; `base_folder` is that base when the caller has it (else
    it is fetched from storage to prove the adapter loads on it). `selection` says why these weights
    (version_selection; default: a checkpoint chosen by the trainer). The version carries the
    memorisation warning of the samples of its step, if they copy the data. Raises TrainingError
    if the folder does not load, LeaseLost when the worker no longer holds the job."""
    for extra in TRAINING_STATE_FILES:
        (folder / extra).unlink(missing_ok=True)
    base = adapter_base(folder)
    params, n_positions = _adapter_size(folder, base, base_folder) if base else _model_size(folder)
    name = name or f"{job.name} · step {step}"
    metrics = _metrics_at(job, step)
    selection = selection or version_selection(job=job, step=step)
    warnings = _version_warnings(job, step)
    _write_card(job=job, folder=folder, step=step, name=name, metrics=metrics, params=params, base=base,
                selection=selection, warnings=warnings)
    manifest = artifacts.folder_manifest(folder)
    digest = artifacts.manifest_digest(manifest)
    existing = ModelVersion.objects.filter(owner=job.owner, digest=digest).first()
    if existing:
        return existing
    if worker_id is not None:
        jobs.job_lease_renew(job_id=job.pk, worker_id=worker_id)
    prefix = f"versions/{digest}"
    artifacts.folder_store(folder, prefix)
    with _held(job, worker_id):
        version, _ = ModelVersion.objects.get_or_create(owner=job.owner, digest=digest, defaults={
            "job": job, "name": name, "from_step": step, "storage_prefix": prefix, "parameter_count": params,
            "base_model": job.base_model, "base_licence": base_model_get(job.base_model).licence,
            "dataset_digest": job.dataset.sha256, "dataset_licence": job.dataset.licence,
            "n_positions": n_positions, "metrics": metrics, "card": (folder / "README.md").read_text(),
            "files": manifest, "method": "lora" if base else "full", "base_digest": base["digest"] if base else "",
            "selection": selection, "warnings": warnings})
    return version


def _version_warnings(job: TrainingJob, step: int) -> list[dict]:
    from ..job_warnings import memorisation_warning

    samples = job.samples.values("step", "longest_copied_span", "ngram_overlap")
    warning = memorisation_warning(samples, upto_step=step)
    return [warning] if warning else []


def version_memorisation_unacknowledged(version: ModelVersion) -> dict | None:
    """The version's memorisation warning when the trainer has not acknowledged it yet, else None."""
    if version.memorisation_acknowledged_at is not None:
        return None
    return next((w for w in version.warnings if w.get("code") == "memorisation"), None)


@transaction.atomic
def version_memorisation_acknowledge(*, version: ModelVersion, trainer) -> ModelVersion:
    """Record that `trainer` (the owner) publishes the version knowing its samples copy its
    training data: the time and who, a paragraph on the version's card (the stored folder, being
    content-addressed, keeps its card as trained), and an audit entry. Once only; a version without
    a memorisation warning is returned unchanged. Raises IllegalTransition for someone else's version."""
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if version.owner_id != trainer.pk:
        raise IllegalTransition("Only the version's owner can acknowledge its warnings.")
    warning = version_memorisation_unacknowledged(version)
    if warning is None:
        return version
    version.memorisation_acknowledged_at, version.memorisation_acknowledged_by = timezone.now(), trainer
    version.card = _card_with_acknowledgement(version.card, warning, version.memorisation_acknowledged_at)
    version.save(update_fields=["memorisation_acknowledged_at", "memorisation_acknowledged_by", "card"])
    audit_append(event="model_version.memorisation_acknowledged", actor=trainer, subject=version,
                 data={"figures": warning["figures"]})
    return version


def _card_with_acknowledgement(card: str, warning: dict, when) -> str:
    figures = warning["figures"]
    note = (f"\n\n## Memorisation\n\nSamples of this model copy its training data (longest verbatim span "
            f"{figures['longest_copied_span']} tokens, 8-gram overlap {figures['ngram_overlap']:.0%}). The trainer "
            f"acknowledged this before publishing, on {when:%Y-%m-%d %H:%M} UTC: outputs may reproduce the "
            f"training text word for word.\n")
    return card.rstrip("\n") + note


def _held(job: TrainingJob, worker_id: str | None):
    if worker_id is None:
        return transaction.atomic()
    return jobs.job_lease_hold(job_id=job.pk, worker_id=worker_id)


def _model_size(folder: Path) -> tuple[int, int]:
    """(parameters, positions) of the model in the folder, loaded once to prove it loads."""
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        raise TrainingError(f"The model folder does not load: {exc}") from exc
    return model.num_parameters(), model.config.n_positions


def _adapter_size(folder: Path, base: dict, base_folder: Path | None) -> tuple[int, int]:
    """(adapter parameters, positions) of an adapter, loaded with peft onto its base to prove both load."""
    if base_folder is not None:
        return _adapter_load_check(folder, base_folder)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            fetched = artifacts.folder_download(f"bases/{base['digest']}", Path(tmp) / "base")
        except FileNotFoundError as exc:
            raise TrainingError(f"The adapter's base {base['digest'][:12]} is not stored here.") from exc
        return _adapter_load_check(folder, fetched)


def _adapter_load_check(folder: Path, base_folder: Path) -> tuple[int, int]:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    try:
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_folder), folder)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise TrainingError(f"The adapter does not load on its base: {exc}") from exc
    adapter = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    return adapter, model.base_model.model.config.n_positions


def _write_card(*, job: TrainingJob, folder: Path, step: int, name: str, metrics: dict, params: int,
                selection: dict, warnings: list[dict], base: dict | None = None) -> None:
    from ..modelcard import render_model_card

    adapter = None
    if base is not None:
        settings = json.loads((folder / ADAPTER_CONFIG).read_text())
        adapter = {"r": settings["r"], "alpha": settings["lora_alpha"], "base_digest": base["digest"],
                   "targets": sorted(settings["target_modules"])}

    (folder / "README.md").write_text(render_model_card(
        name=name, base_model=job.base_model, base_licence=base_model_get(job.base_model).licence,
        dataset_name=job.dataset.name, dataset_digest=job.dataset.sha256, dataset_licence=job.dataset.licence,
        metrics=metrics, params=params, hyperparameters=job.hyperparameters, samples=_card_samples(job, step),
        dataset_rights_holders=job.dataset.rights_holders or (), adapter=adapter, data_split=job.data_split,
        selection=selection.get("text", ""), warnings=warnings))


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
    kept from then on. Raises IllegalTransition while the job runs or is queued, or when the
    checkpoint no longer loads."""
    if job.state in ACTIVE_STATES:
        raise IllegalTransition("Pause the job (or let it finish) before making a version from a checkpoint.")
    with tempfile.TemporaryDirectory() as tmp:
        folder = artifacts.folder_download(checkpoint.storage_prefix, Path(tmp) / "model")
        try:
            version = version_create(job=job, folder=folder, step=checkpoint.step, name=name)
        except TrainingError as exc:
            # Kept a conflict (409) for the API's clients, who have always been told so here.
            raise IllegalTransition(exc.message) from exc
    Checkpoint.objects.filter(pk=checkpoint.pk).update(kept=True)
    return version


def version_archive(*, version: ModelVersion, merged: bool = False) -> Path:
    """A zip of the owner's version in a temporary file (the caller deletes it): the stored folder
    as it is (for an adapter, a peft folder that `PeftModel.from_pretrained` loads onto its base),
    or with `merged` a whole Hugging Face folder, the adapter folded into its base's weights. Raises
    VersionHeld for a version trained on data lent to its trainer exclusively (its files stay here),
    TrainingError when `merged` is asked of a whole model or the base is missing."""
    from . import access

    if access.version_held_exclusively(version):
        raise VersionHeld("This version was trained on data lent to you exclusively: its files stay here.")
    if merged and not version.is_adapter:
        raise TrainingError("Only an adapter version has a merged download; this one is a whole model.",
                            param="merged")
    work = Path(tempfile.mkdtemp(prefix="version-"))
    try:
        folder = artifacts.folder_download(version.storage_prefix, work / "version")
        if merged:
            folder = _merged_folder(version, folder, work)
        archive = shutil.make_archive(str(work.with_suffix("")) + "-zip", "zip", root_dir=folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Path(archive)


def _merged_folder(version: ModelVersion, adapter: Path, work: Path) -> Path:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    try:
        base = artifacts.folder_download(version.base_prefix, work / "base")
    except FileNotFoundError as exc:
        raise TrainingError(f"The adapter's base {version.base_digest[:12]} is not stored here.") from exc
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).merge_and_unload()
    merged = work / "merged"
    model.save_pretrained(merged, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                 "README.md"):
        if (adapter / name).is_file():
            shutil.copy2(adapter / name, merged / name)
    return merged
