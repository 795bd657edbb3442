"""Serving: the `Engine` owns the model cache and a bounded request queue, and one serving thread
batches continuously. Requests for the same model and precision join one running batch between
decode steps and leave it as they finish; each is a `BatchJob` (its `RowSampler` plus its rows in the
batch's KV pool). GPT-2 models run on the lean forward (inference.engine.lean); others on the generic
Hugging Face loop (inference.engine.hf_loop), one request at a time.

Plain Python: every setting (cache bytes, queue length, batch rows) is a constructor argument.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace
from typing import TypeVar

import torch

from core.torch_runtime import on_passing_thread, reuse_freed_memory

from .adapters import LoadedAdapter, RowAdapters
from .cache import LoadedModel, ModelCache, lean_for, model_load, serving_precision
from .hf_loop import generate_with
from .lean import KVPool, LeanGPT2, RowCache
from .perplexity import windows_perplexity
from .sampling import RowSampler
from .types import EngineBusy, EngineError, GenerationRequest, GenerationResult, InvalidGenerationRequest


class BatchJob:
    """One request inside a running batch: its rows' sampler (seed and generators, stop conditions,
    watermark key, callbacks), their caches in the batch's KV pool, its Future and token count."""

    def __init__(self, sampler: RowSampler, future: Future, precision: str, adapter: LoadedAdapter | None = None):
        self.sampler = sampler
        self.future = future
        self.precision = precision
        self.adapter = adapter  # its LoRA adapter on the batch's base, or None
        self.caches: list[RowCache] = []  # one per row, in the batch's pool once admitted
        self.recorded = 0

    @property
    def rows(self) -> int:
        return self.sampler.request.sampling.n

    @property
    def capacity(self) -> int:
        return len(self.sampler.prompt_ids) + self.sampler.request.sampling.max_new_tokens

    def result(self) -> GenerationResult:
        result = self.sampler.result(self.precision)
        result.model_digest = self.sampler.request.model_digest  # an adapter's, not its base's
        return result

    def step_inputs(self) -> tuple[list[int], list[int], list[RowCache]]:
        """(rows, each one's last token, each one's cache) of the rows still decoding: what the next
        batch step feeds the forward for this request."""
        rows = self.sampler.active_rows()
        return rows, [self.sampler.tokens[i][-1] for i in rows], [self.caches[i] for i in rows]

    def begin(self, logits: torch.Tensor) -> bool:
        """Share the prefilled prompt (in the first row) with every row and choose the first tokens
        from its last logits [vocab]. Returns True while the job has rows left to decode."""
        for row in self.caches[1:]:
            self.caches[0].copy_to(row)
        return self.advance(logits.float().unsqueeze(0).expand(self.rows, -1), self.sampler.all_rows)

    def advance(self, logits: torch.Tensor, rows: list[int]) -> bool:
        """Choose and record the next token of `rows` from their logits. Returns True while the
        job has rows left to decode."""
        sampler = self.sampler
        self.recorded += sampler.record(sampler.choose(logits, rows), rows)
        return not (sampler.done or sampler.cancelled())

    def leave(self) -> None:
        """Give the job's rows back to their pool."""
        if self.caches:
            self.caches[0].pool.release(self.caches)
            self.caches = []


_STOP = object()
T = TypeVar("T")


class Engine:
    """Owns the model cache and a bounded request queue served by its own thread.

    `submit` returns a Future at once; `generate` waits for it. Threads of one process (Celery's
    thread pool, gunicorn threads) share one Engine. The serving thread starts on first use, so an
    Engine created before a fork is still safe to use in the child.

    Continuous batching: the serving thread keeps one running batch per model and precision; between
    decode steps it admits queued requests (those joining in the same step prefilled together in one
    forward pass) while the batch has fewer than
    `max_batch` rows (a request brings `n` rows; one larger than `max_batch` runs when its batch is
    empty), and a request leaves the batch as soon as its rows finish, are cancelled, or it fails —
    a failure (a bad parameter, a callback that raises) fails that request's Future only. Requests
    waiting for room stay in the bounded queue, so a full queue still answers EngineBusy (429).
    Models the lean forward does not support (non-GPT-2) run one request at a time on the generic
    Hugging Face loop.
    """

    def __init__(self, *, cache_bytes: int, device: torch.device | None = None, max_queue: int = 64,
                 loader: Callable[..., LoadedModel] = model_load, max_batch: int = 8,
                 adapter_bytes: int | None = None):
        self.cache = ModelCache(max_bytes=cache_bytes, device=device, loader=loader, adapter_bytes=adapter_bytes)
        self._row_adapters: dict[tuple[str, str], RowAdapters] = {}  # each batch's rows' adapters, while unchanged
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.max_batch = max(1, max_batch)
        # Counters for tests and benches: decode steps, rows of the largest step, tokens recorded,
        # prefill passes and the most prompts one of them ran.
        self.stats = {"steps": 0, "max_rows": 0, "tokens": 0, "prefills": 0, "max_prefill": 0}

    @property
    def device(self) -> torch.device:
        return self.cache.device

    def load(self, digest: str, folder: Path, *, base_digest: str | None = None,
             base_dir: Path | None = None) -> LoadedModel:
        """Load (or touch) a model in the cache; callers may use it to pre-warm or read n_positions.
        For an adapter (`base_digest` given) it loads the adapter too and returns its base."""
        return self._resolve(digest, folder, base_digest, base_dir)[0]

    def submit(self, request: GenerationRequest) -> Future:
        """Queue a request. Raises EngineBusy when the queue is full; the Future raises the engine's
        domain errors (InvalidGenerationRequest, ContextTooLong, ModelTooLarge)."""
        self._ensure_thread()
        future: Future = Future()
        try:
            self._queue.put_nowait((request, future))
        except queue.Full:
            raise EngineBusy("The generation queue is full; retry shortly.") from None
        return future

    def generate(self, request: GenerationRequest, timeout: float | None = None) -> GenerationResult:
        return self.submit(request).result(timeout=timeout)

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put((_STOP, None))
            self._thread.join(timeout=10)

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="imprint-engine", daemon=True)
                self._thread.start()

    def perplexity(self, digest: str, folder: Path, windows: torch.Tensor, *, precision: str,
                   base_digest: str | None = None, base_dir: Path | None = None) -> float:
        """`windows_perplexity` of a model (or an adapter on its base) loaded through the cache, on
        a thread of its own that ends with it (core.torch_runtime.on_passing_thread: the caller's
        thread keeps no torch thread team that would slow the engine's)."""
        def measure() -> float:
            loaded, adapter = self._resolve(digest, folder, base_digest, base_dir)
            try:
                return windows_perplexity(loaded, windows, precision=precision, adapter=adapter)
            finally:
                self.cache.trim()

        return on_passing_thread(measure)

    def measure(self, work: Callable[[LoadedModel, torch.nn.Module], T], digest: str, folder: Path, *,
                base_digest: str | None = None, base_dir: Path | None = None) -> T:
        """`work(loaded, model)` with the model as this engine serves it (`served_model`), loaded
        and run on a thread of its own that ends with it, as `perplexity` is: for measurements
        (perplexity of samples, entropies) from a pool or web thread. `work` may call `generate`."""
        return on_passing_thread(lambda: work(*self.served_model(digest, folder, base_digest=base_digest,
                                                                 base_dir=base_dir)))

    def served_model(self, digest: str, folder: Path, *, base_digest: str | None = None,
                     base_dir: Path | None = None) -> tuple[LoadedModel, torch.nn.Module]:
        """(what `load` returns, the model as this engine serves it), for measurements on the
        caller's thread that call `model(input_ids=...).logits` (perplexity, entropies): a whole
        model as loaded; an adapter on its base through the lean forward with the adapter applied
        (fp32)."""
        loaded, adapter = self._resolve(digest, folder, base_digest, base_dir)
        if adapter is None:
            return loaded, loaded.model
        lean = lean_for(loaded, "fp32")
        if lean is None:
            raise InvalidGenerationRequest("LoRA adapters are served on GPT-2 bases only.", param="model")
        return loaded, _AdaptedModel(loaded.model, lean, adapter)

    def _resolve(self, digest: str, folder: Path | None, base_digest: str | None,
                 base_dir: Path | None) -> tuple[LoadedModel, LoadedAdapter | None]:
        """(the loaded model, its adapter or None): an adapter's base is the model that runs."""
        if base_digest is None:
            return self.cache.get(digest, folder), None
        loaded = self.cache.get(base_digest, base_dir)
        return loaded, self.cache.adapter(digest, folder, base_digest=base_digest)

    def _batch_key(self, request: GenerationRequest) -> tuple[str, str]:
        """Rows share a decode step only with rows on the same resident model (an adapter's rows
        with its base's and its other adapters') at the same precision."""
        model = request.base_digest or request.model_digest
        try:
            return model, serving_precision(request.precision, self.device)
        except InvalidGenerationRequest:  # refused at admission, with the request's own error
            return model, str(request.precision)

    def _serve(self) -> None:
        # Decoding allocates and frees the same large tensors (logits, KV-cache growth) every step;
        # glibc would hand them back to the OS and page-fault them in again (the first requests of a
        # process ran 2-8x slower here). Keep freed memory for reuse, as the training loop does.
        reuse_freed_memory()
        batches: dict[tuple[str, str], list[BatchJob]] = {}
        pools: dict[tuple[str, str], KVPool] = {}  # each batch's KV pool
        held = None  # a request taken from the queue that waits for room in its batch
        with torch.inference_mode():
            while True:
                joining: list[tuple[GenerationRequest, Future]] = []
                joining_rows: dict[tuple[str, str], int] = {}  # rows taken this round, per batch
                while True:  # take queued requests while their batch has room
                    if held is None:
                        try:
                            held = self._queue.get(block=not (any(batches.values()) or joining))
                        except queue.Empty:
                            break
                        if held[0] is _STOP:
                            for jobs in batches.values():
                                for job in jobs:
                                    job.future.set_exception(EngineError("The engine was closed."))
                            for _request, future in joining:
                                future.set_exception(EngineError("The engine was closed."))
                            return
                    request, future = held
                    key = self._batch_key(request)
                    rows = sum(len(job.sampler.active_rows()) for job in batches.get(key, []))
                    rows += joining_rows.get(key, 0)
                    if rows and rows + request.sampling.n > self.max_batch:
                        break
                    held = None
                    joining.append((request, future))
                    joining_rows[key] = joining_rows.get(key, 0) + request.sampling.n
                if joining:
                    self._admit(joining, batches, pools)
                for key in list(batches):
                    if batches[key]:
                        self._step(batches[key], key)
                    if not batches[key]:  # the pool goes with its batch: an idle engine holds no KV memory
                        del batches[key]
                        pools.pop(key, None)
                        self._row_adapters.pop(key, None)

    def _admit(self, joining: list[tuple[GenerationRequest, Future]], batches: dict, pools: dict) -> None:
        """Start the requests taken in this round: the prompts of each batch's newcomers are
        prefilled together in one forward pass, then each chooses its first tokens and joins."""
        groups: dict[tuple[str, str], tuple[LeanGPT2, list[BatchJob]]] = {}
        for request, future in joining:
            if not future.set_running_or_notify_cancel():
                continue
            try:
                loaded, adapter = self._resolve(request.model_digest, request.model_dir, request.base_digest,
                                                request.base_dir)
                precision = serving_precision(request.precision, loaded.device)
                lean = lean_for(loaded, precision)
                self.cache.trim()
                if lean is None and adapter is not None:
                    raise InvalidGenerationRequest("LoRA adapters are served on GPT-2 bases only.", param="model")
                if lean is None:
                    future.set_result(generate_with(loaded, request))
                    continue
                job = BatchJob(RowSampler.start(loaded, request), future, precision, adapter)
                if job.sampler.cancelled():  # the client left while the request waited in the queue
                    future.set_result(job.result())
                    continue
            except BaseException as exc:  # noqa: BLE001 - the Future carries every failure to the caller
                future.set_exception(exc)
                continue
            groups.setdefault((loaded.digest, precision), (lean, []))[1].append(job)
        for key, (lean, jobs) in groups.items():
            pool = pools.get(key) or pools.setdefault(key, lean.new_pool())
            try:
                for job in jobs:
                    job.caches = pool.acquire(job.rows, job.capacity)
                logits = lean.prefill([job.sampler.prompt_ids for job in jobs], [job.caches[0] for job in jobs],
                                      [job.adapter for job in jobs])
            except BaseException as exc:  # noqa: BLE001 - a failed prefill fails the requests it held
                for job in jobs:
                    job.leave()
                    job.future.set_exception(exc)
                continue
            self.stats["prefills"] += 1
            self.stats["max_prefill"] = max(self.stats["max_prefill"], len(jobs))
            for job, row_logits in zip(jobs, logits):
                if self._carry_on(job, job.begin, row_logits):
                    batches.setdefault(key, []).append(job)

    def _step(self, jobs: list[BatchJob], key: tuple[str, str] | None = None) -> None:
        """One decode step of every row of a batch; finished, cancelled and failed jobs leave it."""
        lean = lean_for(jobs[0].sampler.loaded, jobs[0].precision)
        plan = [(job, *job.step_inputs()) for job in jobs]
        token_ids = [token for _job, _rows, tokens, _caches in plan for token in tokens]
        caches = [cache for _job, _rows, _tokens, row_caches in plan for cache in row_caches]
        try:
            logits = lean.step(token_ids, caches, self._step_adapters(plan, key)).float()
        except BaseException as exc:  # noqa: BLE001 - a failed step fails the whole batch (and its pool)
            for job in jobs:
                job.future.set_exception(exc)
            jobs.clear()
            return
        self.stats["steps"] += 1
        self.stats["max_rows"] = max(self.stats["max_rows"], len(token_ids))
        offset, keep = 0, []
        for job, rows, _tokens, _caches in plan:
            part = logits[offset:offset + len(rows)]
            offset += len(rows)
            if self._carry_on(job, job.advance, part, rows):
                keep.append(job)
        jobs[:] = keep

    def _step_adapters(self, plan: list, key: tuple[str, str] | None) -> RowAdapters | None:
        """The rows' adapters for this step (None when no row has one), reusing the previous step's
        gathered matrices while the rows' adapters are the same."""
        adapters = [job.adapter for job, rows, _tokens, _caches in plan for _row in rows]
        if all(a is None for a in adapters):
            return None
        rows = RowAdapters(adapters)
        kept = self._row_adapters.get(key)
        if kept is not None and kept.key() == rows.key():
            return kept
        self._row_adapters[key] = rows
        return rows

    def _carry_on(self, job: BatchJob, choose: Callable[..., bool], *args) -> bool:
        """Let a job choose its next tokens (`choose(*args)`: whether it has rows left), counting
        the tokens it records. A job that finished, was cancelled or failed leaves its pool with its
        Future settled (a failure fails this request only; the others go on). Returns whether it
        stays in the batch."""
        before, failure = job.recorded, None
        try:
            running = choose(*args)
        except BaseException as exc:  # noqa: BLE001 - the Future carries the failure to its caller
            running, failure = False, exc
        self.stats["tokens"] += job.recorded - before
        if running:
            return True
        job.leave()  # before the Future settles: a caller woken by it sees the rows given back
        if failure is not None:
            job.future.set_exception(failure)
        else:
            job.future.set_result(job.result())
        return False


class _AdaptedModel(torch.nn.Module):
    """An adapter on its resident base, callable as `model(input_ids=[rows, T]).logits` [rows, T,
    vocab]: the engine's own forward with the adapter applied to every row (its weights stay the
    base's, shared with every other adapter)."""

    def __init__(self, base: torch.nn.Module, lean, adapter: LoadedAdapter):
        super().__init__()
        self._base, self._lean, self._adapter = [base], lean, adapter  # a list: not a submodule to copy

    def parameters(self, recurse: bool = True):
        return self._base[0].parameters(recurse)

    def forward(self, input_ids: torch.Tensor, **_ignored):
        rows = input_ids.tolist()
        logits = self._lean.logits_all(rows, [self._adapter] * len(rows)).view(len(rows), input_ids.shape[1], -1)
        return SimpleNamespace(logits=logits)
