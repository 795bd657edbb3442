"""The generation engine: plain Python (no Django, no Celery) that serves text from model folders.

- `types`: requests (`GenerationRequest` with its `SamplingParams`), results, token events, errors.
- `cache`: model loading by digest into a bounded LRU cache (`ModelCache`), the device, and the
  precision a device serves (`serving_precision`): "fp32" exact, "int8" quantised linears on CPU,
  "bf16" on CUDA; what a device cannot serve falls back and the result says what was used.
- `sampling`: validation against a model (`context_check`), logits filtering, the watermark bias
  and `RowSampler`, the one sampler of a request's rows.
- `hf_loop`: the generic Hugging Face decode loop (any causal LM, one request at a time).
- `lean`: the lean GPT-2 forward (a preallocated KV pool per batch, kernels chosen per weight shape).
- `adapters`: LoRA adapters from peft folders (`adapter_load`) and their per-row delta (`RowAdapters`),
  so one batch on a resident base holds rows of different adapters and rows without one.
- `batching`: `Engine`, whose serving thread batches requests continuously (`BatchJob`).
- `perplexity`: perplexity of token windows by the engine's own forward.

Greedy output at fp32 equals `model.generate`'s, and a request's tokens are the same alone or batched.
"""

from .adapters import AdapterError, LoadedAdapter, RowAdapters, adapter_load
from .batching import BatchJob, Engine
from .cache import (
    LoadedModel,
    ModelCache,
    default_device,
    lean_for,
    model_load,
    model_nbytes,
    serving_precision,
)
from .hf_loop import DecodeLoop, generate_with
from .perplexity import windows_perplexity
from .sampling import RowSampler, context_check, decode_text, filter_logits, validate_request
from .types import (
    PRECISIONS,
    Completion,
    ContextTooLong,
    EngineBusy,
    EngineError,
    GenerationRequest,
    GenerationResult,
    InvalidGenerationRequest,
    ModelTooLarge,
    SamplingParams,
    TokenEvent,
)

__all__ = [
    "AdapterError", "LoadedAdapter", "RowAdapters", "adapter_load",
    "PRECISIONS", "BatchJob", "Completion", "ContextTooLong", "DecodeLoop", "Engine", "EngineBusy", "EngineError",
    "GenerationRequest", "GenerationResult", "InvalidGenerationRequest", "LoadedModel", "ModelCache",
    "ModelTooLarge", "RowSampler", "SamplingParams", "TokenEvent", "context_check", "decode_text",
    "default_device", "filter_logits", "generate_with", "lean_for", "model_load", "model_nbytes",
    "serving_precision", "validate_request", "windows_perplexity",
]
