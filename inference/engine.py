"""The generation engine: a plain module (no Django, no Celery) that serves text from model folders.

- Models are Hugging Face folders (config, safetensors weights, tokenizer), loaded by digest into a
  bounded LRU cache: the memory limit is in bytes of parameters and buffers; loading a model that
  does not fit evicts the least recently used ones first.
- CUDA when present, else CPU; everything runs under `torch.inference_mode`.
- The engine owns its request queue: `Engine.submit(request) -> Future`. One serving thread batches
  continuously: requests for the same model join one running batch between decode steps
  and leave it as they finish (`Engine` below).
- The decode loop is our own rather than `model.generate`, so that each step applies the per-grant
  watermark bias, per-sample seeded sampling, the cancel check and the token callback, per request.
  GPT-2 models run on a lean forward (inference.decode: a preallocated KV pool per batch, lm_head
  for the last position only, kernels chosen per weight shape on CPU); other models on the generic Hugging Face
  loop (`DecodeLoop.run`), one request at a time. Greedy output at fp32 equals `model.generate`'s.
- Precision is per request (`GenerationRequest.precision`; the site chooses it per deployment and
  per model version): "fp32" exact, "int8" quantised linears on CPU, "bf16" on CUDA. What a
  device cannot serve falls back (`serving_precision`) and the result says what was used.

Sampling is seeded per request and per sample (`torch.Generator`), never from the global RNG: forked
worker processes inherit one global RNG state and would otherwise repeat each other's samples. A
request without a seed gets a fresh random one, reported in the result.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .decode import PRECISIONS
from .watermark import WatermarkKey, watermark_logits

log = logging.getLogger(__name__)

MAX_SAMPLES = 8
MAX_TEMPERATURE = 5.0


class EngineError(Exception):
    """Base of the engine's domain errors."""


class InvalidGenerationRequest(EngineError):
    def __init__(self, message: str, *, param: str | None = None):
        super().__init__(message)
        self.param = param


class ContextTooLong(EngineError):
    """The prompt plus `max_new_tokens` exceeds the model's context (`n_positions`)."""

    def __init__(self, *, prompt_tokens: int, max_new_tokens: int, n_positions: int):
        super().__init__(
            f"The prompt ({prompt_tokens} tokens) plus max_new_tokens ({max_new_tokens}) is "
            f"{prompt_tokens + max_new_tokens} tokens, more than the model's context of {n_positions}."
        )
        self.prompt_tokens = prompt_tokens
        self.max_new_tokens = max_new_tokens
        self.n_positions = n_positions


class ModelTooLarge(EngineError):
    def __init__(self, *, needed: int, limit: int):
        super().__init__(f"The model needs {needed} bytes, more than the cache limit of {limit} bytes.")


class EngineBusy(EngineError):
    """The request queue is full (back-pressure: the caller answers 429)."""


@dataclass(frozen=True)
class TokenEvent:
    """One generated token of one sample, with the text it adds (may be '' while a multi-byte
    character is incomplete; the text catches up on a later token, or on a final event with
    token_id -1 that carries text only)."""

    sample_index: int
    token_id: int
    text: str


@dataclass
class GenerationRequest:
    model_digest: str
    model_dir: Path
    prompt: str
    max_new_tokens: int = 64
    temperature: float = 1.0  # 0 means greedy
    top_k: int = 0  # 0 means no top-k filter
    top_p: float = 1.0
    n: int = 1
    seed: int | None = None
    stop_at_eos: bool = True
    watermark: WatermarkKey | None = None
    should_cancel: Callable[[], bool] | None = None
    on_token: Callable[[TokenEvent], None] | None = None
    precision: str = "fp32"  # one of PRECISIONS; see serving_precision for what a device serves


@dataclass
class Completion:
    index: int
    token_ids: list[int]
    text: str
    finish_reason: str  # "stop" (eos), "length" (max_new_tokens) or "cancelled"


@dataclass
class GenerationResult:
    model_digest: str
    prompt_tokens: int
    completions: list[Completion]
    seed: int
    device: str
    prompt_token_ids: list[int] = field(default_factory=list)
    precision: str = "fp32"  # the precision the text was generated at (recorded in its receipt)

    @property
    def completion_tokens(self) -> int:
        return sum(len(c.token_ids) for c in self.completions)

    @property
    def cancelled(self) -> bool:
        return any(c.finish_reason == "cancelled" for c in self.completions)


@dataclass
class LoadedModel:
    digest: str
    model: torch.nn.Module
    tokenizer: object
    device: torch.device
    n_positions: int
    vocab_size: int
    eos_token_id: int | None
    nbytes: int
    # The lean forward (inference.decode) per precision, built on first use; False: unsupported model
    lean: dict = field(default_factory=dict)


def serving_precision(requested: str, device: torch.device) -> str:
    """The precision a request asking for `requested` is served at on `device`: int8 runs on CPU
    kernels (fbgemm), so a CUDA device serves bf16 instead; bf16 needs CUDA (on a CPU without bf16
    matrix units it is slower than fp32), so a CPU serves fp32. Raises InvalidGenerationRequest for
    a name that is none of PRECISIONS."""
    if requested not in PRECISIONS:
        raise InvalidGenerationRequest(f"precision must be one of {', '.join(PRECISIONS)}.", param="precision")
    if device.type == "cuda":
        return "fp32" if requested == "fp32" else "bf16"
    return "int8" if requested == "int8" else "fp32"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def model_nbytes(model: torch.nn.Module) -> int:
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def model_load(folder: Path, *, digest: str, device: torch.device) -> LoadedModel:
    """Load a Hugging Face causal LM folder onto `device`, in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = model.config
    n_positions = getattr(config, "n_positions", None) or config.max_position_embeddings
    return LoadedModel(
        digest=digest, model=model, tokenizer=tokenizer, device=device, n_positions=int(n_positions),
        vocab_size=int(model.get_output_embeddings().weight.shape[0]),
        eos_token_id=config.eos_token_id if config.eos_token_id is not None else tokenizer.eos_token_id,
        nbytes=model_nbytes(model),
    )


class ModelCache:
    """Least-recently-used cache of loaded models under a byte limit. Thread-safe."""

    def __init__(self, *, max_bytes: int, device: torch.device | None = None,
                 loader: Callable[..., LoadedModel] = model_load):
        self.max_bytes = max_bytes
        self.device = device or default_device()
        self._loader = loader
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: str, folder: Path) -> LoadedModel:
        """The loaded model for `digest`, loading it from `folder` on a miss. Raises ModelTooLarge."""
        with self._lock:
            if digest in self._models:
                self._models.move_to_end(digest)
                return self._models[digest]
            loaded = self._loader(Path(folder), digest=digest, device=self.device)
            if loaded.nbytes > self.max_bytes:
                raise ModelTooLarge(needed=loaded.nbytes, limit=self.max_bytes)
            while self._models and self.used_bytes + loaded.nbytes > self.max_bytes:
                evicted_digest, _ = self._models.popitem(last=False)
                log.info("model cache: evicted %s", evicted_digest[:12])
            self._models[digest] = loaded
            return loaded

    def trim(self) -> None:
        """Evict least recently used models while the cache is over its limit, keeping the most
        recent one: a loaded model grows when a precision's lean forward adds its weight copies."""
        with self._lock:
            while len(self._models) > 1 and self.used_bytes > self.max_bytes:
                evicted_digest, _ = self._models.popitem(last=False)
                log.info("model cache: evicted %s (over the limit after a forward was built)", evicted_digest[:12])

    @property
    def used_bytes(self) -> int:
        return sum(m.nbytes for m in self._models.values())

    def digests(self) -> list[str]:
        """Cached digests, least recently used first."""
        with self._lock:
            return list(self._models)


def _sample_seed(seed: int, index: int) -> int:
    # Each sample gets its own generator so that one sample's tokens depend only on (seed, index):
    # the batched engine can then reproduce them row by row.
    return (seed * 1_000_003 + index) % (2**63 - 1)


def validate_request(request: GenerationRequest) -> None:
    """Raises InvalidGenerationRequest for values the decode loop cannot serve."""
    checks = [
        (not request.prompt, "prompt", "The prompt must not be empty."),
        (not 1 <= request.max_new_tokens, "max_new_tokens", "max_new_tokens must be at least 1."),
        (not 0.0 <= request.temperature <= MAX_TEMPERATURE, "temperature",
         f"temperature must be between 0 and {MAX_TEMPERATURE}."),
        (request.top_k < 0, "top_k", "top_k must be 0 (off) or positive."),
        (not 0.0 < request.top_p <= 1.0, "top_p", "top_p must be in (0, 1]."),
        (not 1 <= request.n <= MAX_SAMPLES, "n", f"n must be between 1 and {MAX_SAMPLES}."),
        (request.precision not in PRECISIONS, "precision", f"precision must be one of {', '.join(PRECISIONS)}."),
    ]
    for failed, param, message in checks:
        if failed:
            raise InvalidGenerationRequest(message, param=param)


def context_check(*, prompt_tokens: int, max_new_tokens: int, n_positions: int) -> None:
    """Raises ContextTooLong when the request would run past the model's positions."""
    if prompt_tokens + max_new_tokens > n_positions:
        raise ContextTooLong(prompt_tokens=prompt_tokens, max_new_tokens=max_new_tokens, n_positions=n_positions)


def _filter_logits(logits: torch.Tensor, *, top_k: int, top_p: float) -> torch.Tensor:
    """Top-k then nucleus (top-p) filtering of [rows, vocab] logits, as transformers does it."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1, None]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=False, dim=-1)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove_sorted = cumulative <= (1 - top_p)
        remove_sorted[..., -1:] = False  # always keep the most likely token
        remove = remove_sorted.scatter(-1, order, remove_sorted)
        logits = logits.masked_fill(remove, float("-inf"))
    return logits


def decode_text(tokenizer, token_ids: list[int]) -> str:
    """The text of generated tokens, without NUL characters: a byte-level model can emit the 0x00
    byte, which is never meaningful text, and PostgreSQL cannot store it (text or jsonb) nor DRF
    accept it back for verification. Receipts hash exactly this text."""
    return tokenizer.decode(token_ids, skip_special_tokens=True).replace("\x00", "")


class _IncrementalText:
    """Turns a growing token list into text deltas without splitting a multi-byte character."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.emitted = ""

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        text = decode_text(self.tokenizer, self.ids)
        if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for the next token
            return ""
        delta, self.emitted = text[len(self.emitted):], text
        return delta


class DecodeLoop:
    """One request's decode: prefill the prompt for n rows, then step with the KV cache."""

    def __init__(self, loaded: LoadedModel, request: GenerationRequest, prompt_ids: list[int], seed: int):
        self.m, self.r, self.prompt_ids, self.seed = loaded, request, prompt_ids, seed
        device = loaded.device
        self.generators = [
            torch.Generator(device=device).manual_seed(_sample_seed(seed, i)) for i in range(request.n)
        ]
        self.tokens: list[list[int]] = [[] for _ in range(request.n)]
        self.finished = [None] * request.n  # finish reason per row once done
        self.texts = [_IncrementalText(loaded.tokenizer) for _ in range(request.n)]

    def run(self) -> list[Completion]:
        r, device = self.r, self.m.device
        if self._cancelled():  # the client left while the request waited in the queue
            return self._completions()
        input_ids = torch.tensor([self.prompt_ids] * r.n, dtype=torch.long, device=device)
        out = self.m.model(input_ids=input_ids, use_cache=True, logits_to_keep=1)
        for _step in range(r.max_new_tokens):
            next_ids = self._choose(out.logits[:, -1, :].float())
            self._record(next_ids)
            if all(self.finished) or self._cancelled():
                break
            out = self.m.model(input_ids=next_ids.view(-1, 1), cache=out.cache, use_cache=True, logits_to_keep=1)
        return self._completions()

    def _cancelled(self) -> bool:
        if self.r.should_cancel is None or not self.r.should_cancel():
            return False
        for i, reason in enumerate(self.finished):
            self.finished[i] = reason or "cancelled"
        return True

    def _choose(self, logits: torch.Tensor, rows: list[int] | None = None) -> torch.Tensor:
        """Next token of each of `rows` (default: all) from their logits [len(rows), vocab]; each row
        samples from its own generator, so its tokens never depend on the other rows of a batch."""
        r = self.r
        rows = list(range(r.n)) if rows is None else rows
        if r.watermark is not None:  # a per-step logits processor of this request's rows only
            previous = [self.tokens[i][-1] if self.tokens[i] else self.prompt_ids[-1] for i in rows]
            logits = watermark_logits(watermark=r.watermark, previous_tokens=previous, logits=logits)
        if r.temperature == 0:
            return logits.argmax(dim=-1)
        logits = _filter_logits(logits / r.temperature, top_k=r.top_k, top_p=r.top_p)
        probs = logits.softmax(dim=-1)
        picks = [torch.multinomial(probs[j], 1, generator=self.generators[i]) for j, i in enumerate(rows)]
        return torch.cat(picks)

    def _record(self, next_ids: torch.Tensor, rows: list[int] | None = None) -> int:
        """Append each row's token (calling on_token); returns how many tokens were recorded."""
        eos, r, recorded = self.m.eos_token_id, self.r, 0
        rows = list(range(r.n)) if rows is None else rows
        for i, token_id in zip(rows, next_ids.tolist()):
            if self.finished[i]:
                continue
            if r.stop_at_eos and token_id == eos:
                self.finished[i] = "stop"
                continue
            self.tokens[i].append(token_id)
            recorded += 1
            if r.on_token is not None:
                r.on_token(TokenEvent(sample_index=i, token_id=token_id, text=self.texts[i].push(token_id)))
            if len(self.tokens[i]) >= r.max_new_tokens:
                self.finished[i] = "length"
        return recorded

    def _completions(self) -> list[Completion]:
        tokenizer, completions = self.m.tokenizer, []
        for i, ids in enumerate(self.tokens):
            text = decode_text(tokenizer, ids)
            self._flush(i, text)
            completions.append(Completion(index=i, token_ids=ids, text=text,
                                          finish_reason=self.finished[i] or "length"))
        return completions

    def _flush(self, index: int, text: str) -> None:
        """Send the text held back for an incomplete character at the end (token_id -1: no new
        token), so that a stream's deltas always join to the final text."""
        emitted = self.texts[index].emitted
        if self.r.on_token is not None and text != emitted and text.startswith(emitted):
            self.r.on_token(TokenEvent(sample_index=index, token_id=-1, text=text[len(emitted):]))


def generate_with(loaded: LoadedModel, request: GenerationRequest) -> GenerationResult:
    """Run one request on a loaded model. Raises InvalidGenerationRequest, ContextTooLong."""
    validate_request(request)
    prompt_ids = loaded.tokenizer(request.prompt)["input_ids"]
    if not prompt_ids:
        raise InvalidGenerationRequest("The prompt encodes to no tokens.", param="prompt")
    context_check(prompt_tokens=len(prompt_ids), max_new_tokens=request.max_new_tokens,
                  n_positions=loaded.n_positions)
    seed = request.seed if request.seed is not None else secrets.randbits(63)
    with torch.inference_mode():
        completions = DecodeLoop(loaded, request, prompt_ids, seed).run()
    return GenerationResult(model_digest=loaded.digest, prompt_tokens=len(prompt_ids), completions=completions,
                            seed=seed, device=str(loaded.device), prompt_token_ids=list(prompt_ids))


def _prepare(loaded: LoadedModel, request: GenerationRequest) -> tuple[list[int], int]:
    """Validate a request against its model; returns (prompt ids, seed)."""
    validate_request(request)
    prompt_ids = loaded.tokenizer(request.prompt)["input_ids"]
    if not prompt_ids:
        raise InvalidGenerationRequest("The prompt encodes to no tokens.", param="prompt")
    context_check(prompt_tokens=len(prompt_ids), max_new_tokens=request.max_new_tokens,
                  n_positions=loaded.n_positions)
    seed = request.seed if request.seed is not None else secrets.randbits(63)
    return prompt_ids, seed


_LEAN_LOCK = threading.Lock()


def lean_for(loaded: LoadedModel, precision: str = "fp32"):
    """The lean forward of a loaded model at a precision the device serves (built once, on first
    use), or None when the model does not support it (it then runs the generic loop at fp32)."""
    with _LEAN_LOCK:  # the serving thread and a perplexity measurement may ask at once
        if precision not in loaded.lean:
            from .decode import LeanGPT2

            lean = LeanGPT2(loaded.model, precision) if LeanGPT2.supports(loaded.model) else False
            loaded.lean[precision] = lean
            if lean:  # its weight copies (split fp32, int8 or bf16) count against the cache's byte limit
                loaded.nbytes += lean.extra_bytes
        return loaded.lean[precision] or None


def windows_perplexity(loaded: LoadedModel, windows: torch.Tensor, *, precision: str) -> float:
    """exp(mean next-token NLL) over token windows [N, T] with the engine's own forward at
    `precision` (what a device serves of it): the figure that tells whether a quantised version
    still writes like its fp32 self. Logits are taken in fp32; chunks keep them to ~4k positions."""
    if windows.dim() != 2 or windows.shape[1] < 2 or len(windows) == 0:
        raise ValueError("windows must be [N, T] token ids with N >= 1 and T >= 2")
    precision = serving_precision(precision, loaded.device)
    lean = lean_for(loaded, precision)
    per_chunk = max(1, 4096 // windows.shape[1])
    total, count = 0.0, 0
    with torch.inference_mode():
        for chunk in windows.to(torch.long).split(per_chunk):
            if lean is None:
                logits = loaded.model(input_ids=chunk.to(loaded.device)).logits
            else:
                logits = lean.logits_all(chunk.tolist()).view(len(chunk), chunk.shape[1], -1)
            targets = chunk[:, 1:].to(loaded.device)
            total += float(torch.nn.functional.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum"))
            count += targets.numel()
    return float(torch.exp(torch.tensor(total / count)))


class BatchJob(DecodeLoop):
    """One request inside a running batch: its rows, their KV caches, and its own bookkeeping
    (seed and generators, stop conditions, watermark key, callbacks, token count)."""

    def __init__(self, loaded: LoadedModel, request: GenerationRequest, future: Future, precision: str):
        prompt_ids, seed = _prepare(loaded, request)
        super().__init__(loaded, request, prompt_ids, seed)
        self.future = future
        self.precision = precision
        self.caches: list = []
        self.recorded = 0

    @property
    def capacity(self) -> int:
        return len(self.prompt_ids) + self.r.max_new_tokens

    def result(self) -> GenerationResult:
        return GenerationResult(model_digest=self.m.digest, prompt_tokens=len(self.prompt_ids),
                                completions=self._completions(), seed=self.seed, device=str(self.m.device),
                                prompt_token_ids=list(self.prompt_ids), precision=self.precision)

    def active_rows(self) -> list[int]:
        return [i for i, reason in enumerate(self.finished) if not reason]

    def begin(self, logits: torch.Tensor) -> bool:
        """Share the prefilled prompt (in the first row) with every row and choose the first tokens
        from its last logits [vocab]. Returns True while the job has rows left to decode."""
        for row in self.caches[1:]:
            self.caches[0].copy_to(row)
        return self.advance(logits.float().unsqueeze(0).expand(self.r.n, -1), list(range(self.r.n)))

    def leave(self) -> None:
        """Give the job's rows back to their pool."""
        if self.caches:
            self.caches[0].pool.release(self.caches)
            self.caches = []

    def advance(self, logits: torch.Tensor, rows: list[int]) -> bool:
        self.recorded += self._record(self._choose(logits, rows), rows)
        return not (all(self.finished) or self._cancelled())


_STOP = object()


def _setting_max_batch() -> int:
    try:
        from django.conf import settings

        if settings.configured:
            return int(getattr(settings, "INFERENCE_MAX_BATCH", 8))
    except ImportError:  # the engine is a plain module: Django is optional
        pass
    return 8


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
                 loader: Callable[..., LoadedModel] = model_load, max_batch: int | None = None):
        self.cache = ModelCache(max_bytes=cache_bytes, device=device, loader=loader)
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._max_batch = max_batch
        # Counters for tests and benches: decode steps, rows of the largest step, tokens recorded,
        # prefill passes and the most prompts one of them ran.
        self.stats = {"steps": 0, "max_rows": 0, "tokens": 0, "prefills": 0, "max_prefill": 0}

    @property
    def max_batch(self) -> int:
        if self._max_batch is None:
            self._max_batch = max(1, _setting_max_batch())
        return self._max_batch

    @property
    def device(self) -> torch.device:
        return self.cache.device

    def load(self, digest: str, folder: Path) -> LoadedModel:
        """Load (or touch) a model in the cache; callers may use it to pre-warm or read n_positions."""
        return self.cache.get(digest, folder)

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

    def perplexity(self, digest: str, folder: Path, windows: torch.Tensor, *, precision: str) -> float:
        """`windows_perplexity` of a model loaded through the cache, on the caller's thread."""
        loaded = self.cache.get(digest, folder)
        try:
            return windows_perplexity(loaded, windows, precision=precision)
        finally:
            self.cache.trim()

    def _batch_key(self, request: GenerationRequest) -> tuple[str, str]:
        """Rows share a decode step only with rows of the same model at the same precision."""
        try:
            return request.model_digest, serving_precision(request.precision, self.device)
        except InvalidGenerationRequest:  # refused at admission, with the request's own error
            return request.model_digest, str(request.precision)

    def _serve(self) -> None:
        # Decoding allocates and frees the same large tensors (logits, KV-cache growth) every step;
        # glibc would hand them back to the OS and page-fault them in again (the first requests of a
        # process ran 2-8x slower here). Keep freed memory for reuse, as the training loop does.
        from core.torch_runtime import reuse_freed_memory

        reuse_freed_memory()
        batches: dict[tuple[str, str], list[BatchJob]] = {}
        pools: dict[tuple[str, str], object] = {}  # each batch's KV pool (inference.decode.KVPool)
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
                    rows = sum(len(job.active_rows()) for job in batches.get(key, [])) + joining_rows.get(key, 0)
                    if rows and rows + request.n > self.max_batch:
                        break
                    held = None
                    joining.append((request, future))
                    joining_rows[key] = joining_rows.get(key, 0) + request.n
                if joining:
                    self._admit(joining, batches, pools)
                for key in list(batches):
                    if batches[key]:
                        self._step(batches[key])
                    if not batches[key]:  # the pool goes with its batch: an idle engine holds no KV memory
                        del batches[key]
                        pools.pop(key, None)

    def _admit(self, joining: list[tuple[GenerationRequest, Future]], batches: dict, pools: dict) -> None:
        """Start the requests taken in this round: the prompts of each batch's newcomers are
        prefilled together in one forward pass, then each chooses its first tokens and joins."""
        groups: dict[tuple[str, str], tuple[object, list[BatchJob]]] = {}
        for request, future in joining:
            if not future.set_running_or_notify_cancel():
                continue
            try:
                loaded = self.cache.get(request.model_digest, request.model_dir)
                precision = serving_precision(request.precision, loaded.device)
                lean = lean_for(loaded, precision)
                self.cache.trim()
                if lean is None:
                    future.set_result(generate_with(loaded, request))
                    continue
                job = BatchJob(loaded, request, future, precision)
                if job._cancelled():  # the client left while the request waited in the queue
                    future.set_result(job.result())
                    continue
            except BaseException as exc:  # noqa: BLE001 - the Future carries every failure to the caller
                future.set_exception(exc)
                continue
            groups.setdefault((request.model_digest, precision), (lean, []))[1].append(job)
        for key, (lean, jobs) in groups.items():
            pool = pools.get(key) or pools.setdefault(key, lean.new_pool())
            try:
                for job in jobs:
                    job.caches = pool.acquire(job.r.n, job.capacity)
                logits = lean.prefill([job.prompt_ids for job in jobs], [job.caches[0] for job in jobs])
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

    def _step(self, jobs: list[BatchJob]) -> None:
        """One decode step of every row of a batch; finished, cancelled and failed jobs leave it."""
        lean = lean_for(jobs[0].m, jobs[0].precision)
        plan = [(job, job.active_rows()) for job in jobs]
        token_ids = [job.tokens[i][-1] for job, rows in plan for i in rows]
        caches = [job.caches[i] for job, rows in plan for i in rows]
        try:
            logits = lean.step(token_ids, caches).float()
        except BaseException as exc:  # noqa: BLE001 - a failed step fails the whole batch (and its pool)
            for job in jobs:
                job.future.set_exception(exc)
            jobs.clear()
            return
        self.stats["steps"] += 1
        self.stats["max_rows"] = max(self.stats["max_rows"], len(token_ids))
        offset, keep = 0, []
        for job, rows in plan:
            part = logits[offset:offset + len(rows)]
            offset += len(rows)
            if self._carry_on(job, job.advance, part, rows):
                keep.append(job)
        jobs[:] = keep

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
