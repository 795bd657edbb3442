"""Run one training job on a worker: claim it, prepare its data, resume from its latest checkpoint,
drive `training.loop.run_training` with callbacks that record progress, and finish it.

Safe to call twice for the same job (a re-delivered message): only the worker whose claim
succeeds runs it. While it runs, a LeaseKeeper thread renews its lease, whatever phase the run is
in, and every write it makes checks that the lease is still its own.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Self

from django.conf import settings
from django.db import DatabaseError, connection

from . import artifacts, selectors
from .base_models import BASE_MODELS, TINY
from .errors import LeaseLost
from .loop import CHECKPOINTS_DIR, STATE_FILE, TrainConfig, TrainingCallbacks, run_training
from .memorisation import memorisation_score
from .models import TrainingJob
from .services import bases, jobs, versions

log = logging.getLogger(__name__)
State = TrainingJob.State


class LeaseKeeper:
    """Renews a worker's lease on its job in the background for as long as the worker runs it, so
    no phase (data preparation, base-model loading, evaluation and its memorisation scans, large
    uploads) can outlast the lease while the worker is alive. When a renewal finds the lease taken
    over, `lost` is set and the run stops before its next step; its writes are refused anyway."""

    def __init__(self, job_id, worker_id: str):
        self.job_id, self.worker_id = job_id, worker_id
        self.lost, self._stopped = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _renew(self) -> None:
        # A third of the lease: two renewals in a row may fail before the lease expires.
        interval = max(settings.TRAINING_LEASE_SECONDS / 3, 0.1)
        try:
            while not self._stopped.wait(interval):
                try:
                    jobs.job_lease_renew(job_id=self.job_id, worker_id=self.worker_id)
                except LeaseLost:
                    self.lost.set()
                    return
                except DatabaseError:
                    log.warning("training job %s: lease renewal failed, retrying", self.job_id, exc_info=True)
        finally:
            connection.close()  # this thread's own connection


class JobCallbacks(TrainingCallbacks):
    """Records the loop's progress through the job services, and relays pause/cancel requests."""

    def __init__(self, job: TrainingJob, worker_id: str, tokenizer, train_ids: list[int], lease: LeaseKeeper,
                 keep_checkpoints: int):
        self.job, self.worker_id, self.lease = job, worker_id, lease
        self.tokenizer, self.train_ids = tokenizer, train_ids
        self.keep = keep_checkpoints
        self.last_beat = time.monotonic()
        self.base_mark: dict | None = None  # a LoRA run's base {base_name, base_digest}, written into its adapters

    def _beat(self, step: int | None = None) -> None:
        """Renew the lease with the progress; raises LeaseLost if the lease is no longer ours."""
        now = time.monotonic()
        elapsed, self.last_beat = now - self.last_beat, now
        jobs.job_heartbeat(job_id=self.job.pk, worker_id=self.worker_id, elapsed_seconds=elapsed, step=step)

    def on_step(self, step, loss, lr, tokens_per_second):
        self._beat(step=step)
        jobs.job_metric_record(job=self.job, worker_id=self.worker_id, step=step, train_loss=loss,
                               learning_rate=lr, tokens_per_second=tokens_per_second)

    def on_eval(self, step, val_loss, perplexity):
        jobs.job_metric_evaluate(job=self.job, worker_id=self.worker_id, step=step, val_loss=val_loss,
                                 perplexity=perplexity)

    def on_sample(self, step, texts):
        for index, text in enumerate(texts):
            score = memorisation_score(self.tokenizer.encode(text, add_special_tokens=False), self.train_ids)
            jobs.job_sample_record(job=self.job, worker_id=self.worker_id, step=step, index=index, text=text,
                                   longest_copied_span=score["longest_span"], ngram_overlap=score["ngram_share"])

    def on_checkpoint(self, step, folder):
        if self.base_mark:  # a checkpoint promoted to a version later must say which base it needs
            versions.adapter_base_mark(Path(folder), **self.base_mark)
        versions.checkpoint_record(job=self.job, worker_id=self.worker_id, step=step, folder=Path(folder),
                                   keep_last=self.keep, keep_step=best_step_of(Path(folder)))
        self._beat()

    def control(self):
        if self.lease.lost.is_set():
            raise LeaseLost(str(self.job.pk))
        return selectors.job_control_request(job_id=self.job.pk)


def best_step_of(checkpoint: Path) -> int | None:
    """The step of the best evaluation as of a checkpoint (its trainer state says), or None."""
    state = checkpoint / STATE_FILE
    if not state.exists():
        return None
    return json.loads(state.read_text()).get("progress", {}).get("best_step")


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def job_run(*, job_id, worker_id: str | None = None) -> str:
    """Claim and run a job to its next resting state; returns that state, or "not-claimed"."""
    worker_id = worker_id or worker_identity()
    if not jobs.job_claim(job_id=job_id, worker_id=worker_id):
        return "not-claimed"
    with LeaseKeeper(job_id, worker_id) as lease:
        return _run_claimed(job_id, worker_id, lease)


def _run_claimed(job_id, worker_id: str, lease: LeaseKeeper) -> str:
    job = selectors.job_for_run(job_id=job_id)
    work = settings.TRAINING_WORK_DIR / str(job.pk) / f"attempt-{job.attempts}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        return _run(job, worker_id, work, lease)
    except LeaseLost:
        log.warning("training job %s: lease lost to another worker, stopping", job.pk)
        return "lease-lost"
    except Exception as exc:  # noqa: BLE001 - any failure ends the job as failed, with its trace
        log.exception("training job %s failed", job.pk)
        jobs.job_fail(job_id=job.pk, worker_id=worker_id, error=exc)
        return State.FAILED
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(job: TrainingJob, worker_id: str, work: Path, lease: LeaseKeeper) -> str:
    import torch

    base = BASE_MODELS[job.base_model]
    config = job.config  # a stored row out of its limits fails the job here, naming the field
    windows = selectors.job_windows(job=job, scratch=work)
    tokenizer, ids, train, val = windows.tokenizer, windows.ids, windows.train, windows.val
    jobs.job_data_split_record(job_id=job.pk, worker_id=worker_id, split=windows.split)
    job.data_split = windows.split
    resume_from = _prepare_resume(job, worker_id, work)
    callbacks = JobCallbacks(job, worker_id, tokenizer, ids, lease, config.keep_checkpoints)
    if config.is_lora:  # the base is loaded every time (checkpoints hold the adapter) and stored once
        model_path = _local_folder(_base_model_folder(base, tokenizer, config, work), work)
        callbacks.base_mark = {"base_name": base.name, "base_digest": versions.base_store(model_path)}
    else:
        model_path = _base_model_folder(base, tokenizer, config, work) if resume_from is None else resume_from
    device = "cuda" if torch.cuda.is_available() else "cpu"
    jobs.job_device_set(job_id=job.pk, worker_id=worker_id, device=device)
    result = run_training(model_path=model_path, train_windows=train, val_windows=val, config=config,
                          callbacks=callbacks, work_dir=work / "run", resume_from=resume_from, device=device)
    return _finish(job, worker_id, result, callbacks.base_mark, model_path)


def _local_folder(source, work: Path) -> Path:
    """A base given by hub name saved as a local folder: an adapter names its base by the digest of
    the folder it was trained on, which the engine loads from storage."""
    if Path(str(source)).is_dir():
        return Path(source)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = work / "base"
    AutoModelForCausalLM.from_pretrained(source).save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return folder


def _prepare_resume(job: TrainingJob, worker_id: str, work: Path) -> Path | None:
    """Download the latest checkpoint, if any, and forget progress recorded after it (those steps
    are recomputed; steps up to the checkpoint never are)."""
    checkpoint = selectors.checkpoint_latest(job=job)
    if checkpoint is None:
        jobs.job_progress_rewind(job_id=job.pk, worker_id=worker_id, to_step=None)
        return None
    folder = artifacts.folder_download(checkpoint.storage_prefix, work / "resume")
    jobs.job_progress_rewind(job_id=job.pk, worker_id=worker_id, to_step=checkpoint.step)
    _fetch_best(job, folder, work)
    return folder


def _fetch_best(job: TrainingJob, resume_from: Path, work: Path) -> None:
    """Put the best evaluation's checkpoint, when it is an earlier one than the checkpoint the run
    resumes from, where the loop looks for it (its work dir), so the run still ends with the best
    weights. The checkpoint pruning keeps it stored (keep_step)."""
    best = best_step_of(resume_from)
    stored = selectors.checkpoint_at(job=job, step=best) if best is not None else None
    if stored is not None and stored.storage_prefix != selectors.checkpoint_latest(job=job).storage_prefix:
        artifacts.folder_download(stored.storage_prefix, work / "run" / CHECKPOINTS_DIR / f"step-{best:08d}")


def _base_model_folder(base, tokenizer, config: TrainConfig, work: Path):
    """The starting weights: the built-in tiny GPT-2 (random init, seeded), the built-in pretrained
    base's prepared folder, or a GPT-2 family model loaded by `from_pretrained` from its hub name or
    configured local copy."""
    if base.builtin:
        return bases.builtin_base_folder()
    if base.name != TINY:
        return base.source
    import torch
    from transformers import GPT2LMHeadModel

    from .tiny import tiny_config

    folder = work / "base"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = GPT2LMHeadModel(tiny_config(len(tokenizer), n_positions=max(128, config.context_length)))
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def _finish(job: TrainingJob, worker_id: str, result, base_mark: dict | None, base_folder: Path) -> str:
    """Store the model of a finished run, its best evaluation's weights, as a version, then end
    the attempt in its state."""
    if result.status in ("succeeded", "early_stopped"):
        job.refresh_from_db()
        step = result.best_step or result.step
        selection = versions.version_selection(job=job, step=step, stopped_at=result.step, best=True)
        if base_mark:
            versions.adapter_base_mark(result.output_dir, **base_mark)
        versions.version_create(job=job, folder=result.output_dir, step=step, worker_id=worker_id,
                                selection=selection, base_folder=base_folder if base_mark else None)
        jobs.job_finish(job_id=job.pk, worker_id=worker_id, state=State.SUCCEEDED, step=result.step)
        return State.SUCCEEDED
    state = State.PAUSED if result.status == "paused" else State.CANCELLED
    jobs.job_finish(job_id=job.pk, worker_id=worker_id, state=state)
    return state
