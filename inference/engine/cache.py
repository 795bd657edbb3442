"""Loaded models and where they run: Hugging Face folders loaded by digest into a bounded LRU cache
(`ModelCache`), the device (CUDA when present, else CPU), and the precision a device serves.

The cache's memory limit is in bytes of parameters and buffers, a model's lean forwards' weight copies
included; loading a model that does not fit evicts the least recently used ones first. Loading is
injected (`loader`), so a cache of something other than whole models (a resident base with adapters)
is a new loader and entry type here, not a change to the decode loops.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .adapters import LoadedAdapter, adapter_load
from .lean import LeanGPT2
from .types import PRECISIONS, InvalidGenerationRequest, ModelTooLarge

log = logging.getLogger(__name__)


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
    # The lean forward (inference.engine.lean) per precision, built on first use; False: unsupported model
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
    """Least-recently-used cache of loaded models under a byte limit. Thread-safe.

    LoRA adapters live beside them in a second LRU with a budget of its own (`adapter_bytes`, part of
    `max_bytes`): a base is resident once per digest whatever adapters serve on it, and when room is
    needed adapters go first (one is reloaded in milliseconds; a base in seconds)."""

    def __init__(self, *, max_bytes: int, device: torch.device | None = None,
                 loader: Callable[..., LoadedModel] = model_load, adapter_bytes: int | None = None):
        self.max_bytes = max_bytes
        self.adapter_max_bytes = min(max_bytes, adapter_bytes if adapter_bytes is not None else max_bytes // 8)
        self.device = device or default_device()
        self._loader = loader
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._adapters: OrderedDict[str, LoadedAdapter] = OrderedDict()
        self._adapter_bytes = 0  # their sum, kept as they come and go (a thousand adapters' tensors are slow to add up)
        self._lock = threading.Lock()
        self.adapter_loads = 0  # cold adapter loads, for tests and benches

    def adapter(self, digest: str, folder: Path, *, base_digest: str) -> LoadedAdapter:
        """The loaded adapter for `digest` (reading `folder` on a miss). Raises ModelTooLarge for an
        adapter over the adapter budget, AdapterError for a folder that is no servable adapter."""
        with self._lock:
            if digest in self._adapters:
                self._adapters.move_to_end(digest)
                return self._adapters[digest]
        loaded = adapter_load(Path(folder), digest=digest, base_digest=base_digest)  # outside the lock: file I/O
        if loaded.nbytes > self.adapter_max_bytes:
            raise ModelTooLarge(needed=loaded.nbytes, limit=self.adapter_max_bytes)
        with self._lock:
            self.adapter_loads += 1
            if digest in self._adapters:  # another thread loaded it meanwhile
                self._adapters.move_to_end(digest)
                return self._adapters[digest]
            while self._adapters and self._adapter_bytes + loaded.nbytes > self.adapter_max_bytes:
                self._adapter_evict()
            self._evict(keep=len(self._models), room_for=loaded.nbytes, why="")
            self._adapters[digest] = loaded
            self._adapter_bytes += loaded.nbytes
            return loaded

    def _adapter_evict(self) -> None:
        """Drop the least recently used adapter. The caller holds the lock."""
        _digest, evicted = self._adapters.popitem(last=False)
        self._adapter_bytes -= evicted.nbytes

    @property
    def adapter_bytes(self) -> int:
        return self._adapter_bytes

    def adapter_digests(self) -> list[str]:
        with self._lock:
            return list(self._adapters)

    def get(self, digest: str, folder: Path) -> LoadedModel:
        """The loaded model for `digest`, loading it from `folder` on a miss. Raises ModelTooLarge."""
        with self._lock:
            if digest in self._models:
                self._models.move_to_end(digest)
                return self._models[digest]
            loaded = self._loader(Path(folder), digest=digest, device=self.device)
            if loaded.nbytes > self.max_bytes:
                raise ModelTooLarge(needed=loaded.nbytes, limit=self.max_bytes)
            self._evict(keep=0, room_for=loaded.nbytes, why="")
            self._models[digest] = loaded
            return loaded

    def trim(self) -> None:
        """Evict least recently used models while the cache is over its limit, keeping the most
        recent one: a loaded model grows when a precision's lean forward adds its weight copies."""
        with self._lock:
            self._evict(keep=1, room_for=0, why=" (over the limit after a forward was built)")

    def _evict(self, *, keep: int, room_for: int, why: str) -> None:
        """Drop least recently used adapters, then models (never the `keep` most recent), until
        `room_for` more bytes fit under the limit. The caller holds the lock. A batch that still
        decodes with an evicted adapter or model keeps its own reference until it ends."""
        while self.used_bytes + room_for > self.max_bytes:
            if self._adapters:
                self._adapter_evict()
            elif len(self._models) > keep:
                evicted_digest, _ = self._models.popitem(last=False)
                log.info("model cache: evicted %s%s", evicted_digest[:12], why)
            else:
                return

    @property
    def used_bytes(self) -> int:
        return sum(m.nbytes for m in self._models.values()) + self.adapter_bytes

    def digests(self) -> list[str]:
        """Cached digests, least recently used first."""
        with self._lock:
            return list(self._models)


_LEAN_LOCK = threading.Lock()


def lean_for(loaded: LoadedModel, precision: str = "fp32") -> LeanGPT2 | None:
    """The lean forward of a loaded model at a precision the device serves (built once, on first
    use), or None when the model does not support it (it then runs the generic loop at fp32)."""
    with _LEAN_LOCK:  # the serving thread and a perplexity measurement may ask at once
        if precision not in loaded.lean:
            lean = LeanGPT2(loaded.model, precision) if LeanGPT2.supports(loaded.model) else False
            loaded.lean[precision] = lean
            if lean:  # its weight copies (split fp32, int8 or bf16) count against the cache's byte limit
                loaded.nbytes += lean.extra_bytes
        return loaded.lean[precision] or None
