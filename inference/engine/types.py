"""The engine's vocabulary: what a caller asks for (`SamplingParams`, `GenerationRequest`), what it
gets back (`GenerationResult`, `Completion`, `TokenEvent`), and the domain errors it may raise."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # the engine applies it; the watermark module never needs the engine
    from ..watermark import WatermarkKey

# The numeric precisions the engine serves (inference.engine.cache.serving_precision says which one
# a device serves for each; config.settings.SERVING_PRECISIONS must list the same names).
PRECISIONS = ("fp32", "int8", "bf16")


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
class SamplingParams:
    """How to sample a generation: the one place its defaults and limits are stated. Both APIs derive
    their fields from it, the services and the Celery payload carry it, the engine decodes by it.

    Raises InvalidGenerationRequest (naming the parameter) for a value outside its limits."""

    MAX_NEW_TOKENS: ClassVar[int] = 4096
    MAX_TEMPERATURE: ClassVar[float] = 5.0
    MAX_SAMPLES: ClassVar[int] = 8
    MAX_SEED: ClassVar[int] = 2**63 - 1

    max_new_tokens: int = 64
    temperature: float = 1.0  # 0 means greedy
    top_k: int = 0  # 0 means no top-k filter
    top_p: float = 1.0
    n: int = 1  # samples of one prompt
    seed: int | None = None  # None: a fresh random seed, reported in the result
    stop_at_eos: bool = True  # False: exactly max_new_tokens per sample (the APIs' ignore_eos)

    def __post_init__(self):
        checks = [
            (not 1 <= self.max_new_tokens <= self.MAX_NEW_TOKENS, "max_new_tokens",
             f"max_new_tokens must be between 1 and {self.MAX_NEW_TOKENS}."),
            (not 0.0 <= self.temperature <= self.MAX_TEMPERATURE, "temperature",
             f"temperature must be between 0 and {self.MAX_TEMPERATURE}."),
            (self.top_k < 0, "top_k", "top_k must be 0 (off) or positive."),
            (not 0.0 < self.top_p <= 1.0, "top_p", "top_p must be in (0, 1]."),
            (not 1 <= self.n <= self.MAX_SAMPLES, "n", f"n must be between 1 and {self.MAX_SAMPLES}."),
            (self.seed is not None and not 0 <= self.seed <= self.MAX_SEED, "seed",
             f"seed must be between 0 and {self.MAX_SEED}."),
        ]
        for failed, param, message in checks:
            if failed:
                raise InvalidGenerationRequest(message, param=param)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (the Celery payload, receipts)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamplingParams:
        """The parameters among `data`'s keys (others are ignored; missing ones take their default)."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    @classmethod
    def given(cls, sampling: SamplingParams | None, flat: dict[str, Any]) -> SamplingParams:
        """`sampling`, or the parameters given one by one (`max_new_tokens=...`) by a caller that
        builds a request flat; not both."""
        if sampling is not None and flat:
            raise TypeError(f"give sampling or its fields ({', '.join(flat)}), not both")
        return sampling if sampling is not None else cls(**flat)


@dataclass(frozen=True)
class TokenEvent:
    """One generated token of one sample, with the text it adds (may be '' while a multi-byte
    character is incomplete; the text catches up on a later token, or on a final event with
    token_id -1 that carries text only)."""

    sample_index: int
    token_id: int
    text: str


@dataclass(init=False)
class GenerationRequest:
    """One request to the engine: a prompt for a model (by digest, loaded from `model_dir`; or an
    adapter on its base), how to sample it, the watermark of its grant, the precision asked for, and the caller's callbacks.

    Sampling is given as `sampling=SamplingParams(...)` or flat (`max_new_tokens=32, n=2`)."""

    model_digest: str
    model_dir: Path | None
    prompt: str
    sampling: SamplingParams
    watermark: WatermarkKey | None = None
    should_cancel: Callable[[], bool] | None = None
    on_token: Callable[[TokenEvent], None] | None = None
    precision: str = "fp32"  # one of PRECISIONS; see serving_precision for what a device serves
    # A LoRA adapter: `model_digest`/`model_dir` are the adapter's, these its base's (resident once
    # for every adapter on it). None: `model_dir` is a whole model.
    base_digest: str | None = None
    base_dir: Path | None = None

    def __init__(self, *, model_digest: str, model_dir: Path | None, prompt: str,
                 sampling: SamplingParams | None = None, watermark: WatermarkKey | None = None,
                 should_cancel: Callable[[], bool] | None = None,
                 on_token: Callable[[TokenEvent], None] | None = None, precision: str = "fp32",
                 base_digest: str | None = None, base_dir: Path | None = None, **sampling_fields):
        self.model_digest, self.model_dir, self.prompt = model_digest, model_dir, prompt
        self.base_digest, self.base_dir = base_digest, base_dir
        self.sampling = SamplingParams.given(sampling, sampling_fields)
        self.watermark, self.should_cancel, self.on_token = watermark, should_cancel, on_token
        self.precision = precision


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
