"""What a watermark scheme is, and the registry of the schemes this server implements.

A scheme (`Scheme`; `WatermarkScheme` for the green-list ones) is a frozen dataclass whose fields are its parameters (typed, with the defaults that every
grant of that scheme had before parameters were stored, so those defaults never change). It says
how a key and a (context, token) pair make a token green, which decode steps get the bias, which
positions of a text are scored, and what a receipt states about it; generation, the vectorised
many-keys pass and the statistics are shared here. A new scheme is a new module in this package
with one `@register_scheme` class, plus its entry in settings.WATERMARK_SCHEMES.
"""

from __future__ import annotations

import functools
import math
import typing
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np
import torch

from .mixing import MASK64, green_threshold, splitmix64, splitmix64_inplace
from .statistics import DEFAULT_ALPHA, Detection, MultiDetection, detected

DEFAULT_DELTA = 2.0
DEFAULT_GAMMA = 0.25
# Keys per block when scoring many: (block × pairs) uint64 buffers stay in the CPU cache.
_KEY_BLOCK = 512


class WatermarkSchemeError(ValueError):
    """A scheme name or parameters this server cannot use."""


class WatermarkSchemeUnknown(WatermarkSchemeError):
    pass


class WatermarkParamsInvalid(WatermarkSchemeError):
    pass


SCHEMES: dict[str, type[Scheme]] = {}


def register_scheme(cls: type[Scheme]) -> type[Scheme]:
    """Class decorator: make the scheme known by its `name` (which grants store)."""
    if SCHEMES.get(cls.name, cls) is not cls:
        raise ValueError(f"Two watermark schemes are named {cls.name!r}.")
    SCHEMES[cls.name] = cls
    return cls


def scheme_class(name: str) -> type[Scheme]:
    """The class of the scheme called `name`. Raises WatermarkSchemeUnknown."""
    try:
        return SCHEMES[name]
    except (KeyError, TypeError):
        raise WatermarkSchemeUnknown(
            f"Unknown watermark scheme {name!r}; this server implements {', '.join(sorted(SCHEMES))}.") from None


def scheme_build(name: str, params: Mapping[str, Any] | None = None) -> Scheme:
    """The scheme `name` with `params` (missing ones take the scheme's defaults), validated and
    normalised. Raises WatermarkSchemeUnknown or WatermarkParamsInvalid."""
    return scheme_class(name).from_params(params or {})


def _coerce(scheme: str, name: str, kind: type, value):
    """A numeric parameter as its declared type (JSON and settings give 1 for 1.0 and back); other
    kinds are left to the scheme's `validate`."""
    if kind not in (int, float):
        return value
    # bool is an int to Python, but a parameter given as true/false is a mistake, not a 1/0.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WatermarkParamsInvalid(f"Watermark scheme {scheme!r}: {name} must be a number, not {value!r}.")
    if not math.isfinite(value):
        raise WatermarkParamsInvalid(f"Watermark scheme {scheme!r}: {name} must be finite, not {value!r}.")
    if kind is int and value != int(value):
        raise WatermarkParamsInvalid(f"Watermark scheme {scheme!r}: {name} must be a whole number, not {value!r}.")
    return kind(value)


@functools.cache
def _parameter_types(cls: type) -> dict[str, type]:
    # Resolved once per class: a verification table builds one scheme per grant.
    return typing.get_type_hints(cls)


@dataclass(frozen=True)
class Scheme(ABC):
    """What every scheme shares, whatever its statistic: typed parameters, the registry's name,
    receipt claims, key families, the decode-step hooks (a logits processor before temperature, or
    a sampler after it) and the detector's vectorised many-keys pass. Green-list schemes subclass
    `WatermarkScheme`; a scheme with another statistic (the Gumbel-max score) subclasses this."""

    name: ClassVar[str]
    # Where the scheme acts on a decode step, for people (the model card): "logits" (a bias added
    # before temperature, top-k and top-p) or "sampling" (it picks the token from the distribution
    # that temperature, top-k and top-p made, leaving that distribution unchanged).
    acts_at: ClassVar[str] = "logits"
    # Whether every token is distributed exactly as without the watermark.
    distortion_free: ClassVar[bool] = False

    # --- Parameters --------------------------------------------------------------------------

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Scheme:
        """The scheme with `params`. Raises WatermarkParamsInvalid (unknown, mistyped, out of range)."""
        if not isinstance(params, Mapping):
            raise WatermarkParamsInvalid(f"Watermark scheme {cls.name!r}: parameters must be a mapping, not {params!r}.")
        unknown = sorted(set(params) - {f.name for f in fields(cls)})
        if unknown:
            raise WatermarkParamsInvalid(f"Watermark scheme {cls.name!r} has no parameter {', '.join(unknown)} "
                                         f"(it has {', '.join(f.name for f in fields(cls))}).")
        return cls(**params)

    def __post_init__(self):
        kinds = _parameter_types(type(self))
        for f in fields(self):
            object.__setattr__(self, f.name, _coerce(self.name, f.name, kinds[f.name], getattr(self, f.name)))
        self.validate()

    def validate(self) -> None:
        """Raises WatermarkParamsInvalid for values out of range (subclasses add their own)."""

    def invalid(self, message: str) -> typing.NoReturn:
        raise WatermarkParamsInvalid(f"Watermark scheme {self.name!r}: {message}.")

    def params(self) -> dict:
        """Every parameter with its value: what a grant stores and a receipt states."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def claims(self) -> dict:
        """The watermark claim of a receipt (the key's secret version is the grant's to add)."""
        return {"scheme": self.name, **self.params()}

    @property
    def family(self) -> tuple:
        """Keys of one family are scored together: same statistic, same scored positions (the
        parameters that only change generation do not split a family)."""
        return (self.name, *(getattr(self, f.name) for f in fields(self) if not f.metadata.get("generation_only")))

    def describe(self) -> str:
        """The parameters for people (the model card)."""
        return ", ".join(f"{f.name} {getattr(self, f.name)}" for f in fields(self))

    # --- Generation: the decode-step hooks ---------------------------------------------------

    # Tokens of history (prompt and generated) the `choose` hook needs per row.
    history_tokens: ClassVar[int] = 1

    def logits_biased(self, *, key: int, previous_tokens: Sequence[int], logits: torch.Tensor) -> torch.Tensor:
        """The logits processor of one decode step ([rows, vocab] in, [rows, vocab] out), applied
        before temperature, top-k and top-p. The default leaves the logits alone."""
        return logits

    def choose(self, *, key: int, histories: Sequence[Sequence[int]], probs: torch.Tensor,
               generators: Sequence[torch.Generator], memories: Sequence[set]) -> torch.Tensor | None:
        """The next token of each row from its final sampling distribution `probs` [rows, vocab]
        (after temperature, top-k and top-p), each row's last tokens (`histories`), its own
        generator and a set the scheme may keep across the row's steps (`memories`); None: the
        engine samples as without a watermark. Never called for greedy decoding."""
        return None

    # --- Detection ---------------------------------------------------------------------------

    @property
    def needs_entropies(self) -> bool:
        """Whether scoring a text needs the model's entropy at each position (`text_entropies`)."""
        return False

    @abstractmethod
    def scored_pairs(self, token_ids: Sequence[int], *, entropies: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
        """(context, token) pairs of a text that the detector scores (the first tokens are context
        only): the key-independent part of scoring, computed once per text."""

    @abstractmethod
    def scores(self, keys: Sequence[int] | np.ndarray, *, previous: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """The statistic of every key over the scored pairs (larger: more evidence)."""

    @abstractmethod
    def detection(self, key: int, score: float, scored: int) -> Detection:
        """One key's statistic over `scored` pairs as a Detection (z and an exact p-value)."""

    def is_detected(self, scored: int, score: float, *, candidates: int, alpha: float = DEFAULT_ALPHA) -> bool:
        """The verifier's rule for a text with this statistic among `candidates` keys."""
        return detected(self.detection(0, score, scored), candidates=candidates, alpha=alpha)

    def detect(self, token_ids: Sequence[int], *, key: int, entropies: np.ndarray | None = None) -> Detection:
        """Test `token_ids` against one key."""
        previous, tokens = self.scored_pairs(token_ids, entropies=entropies)
        score = self.scores([key & MASK64], previous=previous, tokens=tokens)[0]
        return self.detection(key, score, len(tokens))

    def detect_best(self, previous: np.ndarray, tokens: np.ndarray, keys: Sequence[int] | np.ndarray
                    ) -> Detection | None:
        """The key with the largest statistic over the scored pairs (all keys share the pairs, so
        the largest is the smallest p-value), with its exact p-value; None without keys."""
        keys = np.asarray(keys, dtype=np.uint64)
        if len(keys) == 0:
            return None
        scores = self.scores(keys, previous=previous, tokens=tokens)
        best = int(np.argmax(scores))
        return self.detection(int(keys[best]), scores[best], len(tokens))

    def detect_any(self, token_ids: Sequence[int], candidate_keys: Iterable[int], *,
                   entropies: np.ndarray | None = None) -> MultiDetection:
        """Test every candidate key; report the best one with its p-value multiplied by the number
        of keys tested (Bonferroni), so that testing a thousand grants does not make a chance match
        of one of them look significant."""
        keys = np.fromiter((k & MASK64 for k in candidate_keys), dtype=np.uint64)
        best = self.detect_best(*self.scored_pairs(token_ids, entropies=entropies), keys)
        if best is None:
            return MultiDetection(best=None, candidates=0, adjusted_p_value=1.0)
        return MultiDetection(best=best, candidates=len(keys), adjusted_p_value=min(1.0, best.p_value * len(keys)))


@dataclass(frozen=True)
class WatermarkScheme(Scheme):
    """A green-list scheme with its parameters. `gamma` (the green share of the vocabulary) and
    `delta` (the logit bias of green tokens) are every green-list scheme's; delta matters to
    generation only. Its statistic is the count of green tokens (an exact binomial tail)."""

    gamma: float = DEFAULT_GAMMA
    delta: float = field(default=DEFAULT_DELTA, metadata={"generation_only": True})

    def validate(self) -> None:
        if not 0 < self.gamma < 1:
            self.invalid(f"gamma must be between 0 and 1 (exclusive), not {self.gamma}")
        if self.delta < 0:
            self.invalid(f"delta must be 0 or more, not {self.delta}")

    def describe(self) -> str:
        return f"δ {self.delta}, γ {self.gamma}"

    def scores(self, keys, *, previous, tokens) -> np.ndarray:
        return self.green_counts(keys, previous=previous, tokens=tokens)

    def detection(self, key: int, score: float, scored: int) -> Detection:
        return Detection.of(key, int(score), scored, self.gamma)

    # --- The green test ----------------------------------------------------------------------

    @abstractmethod
    def _pairs(self, previous: np.ndarray, tokens: np.ndarray):
        """The key-independent part of the green test of (previous[i], tokens[i]), computed once
        per text whatever the number of keys."""

    @abstractmethod
    def _mix_keys(self, mixed_keys: np.ndarray, pairs, out: np.ndarray, scratch: np.ndarray) -> None:
        """out[k, i]: key k combined with pair i, before the final splitmix64 (`mixed_keys` are the
        keys through splitmix64 once)."""

    def _green_into(self, keys: np.ndarray, pairs, z: np.ndarray, scratch: np.ndarray, out: np.ndarray) -> None:
        """out[k, i]: whether pair i is green for keys[k] (z and scratch: buffers of out's shape)."""
        self._mix_keys(splitmix64(keys), pairs, z, scratch)
        splitmix64_inplace(z, scratch)
        np.less(z, green_threshold(self.gamma), out=out)

    def is_green(self, *, key: int, previous: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Vectorised green test of `tokens[i]` after `previous[i]` for one key."""
        keys = np.array([key & MASK64], dtype=np.uint64)
        shape = (1, len(tokens))
        out = np.empty(shape, bool)
        self._green_into(keys, self._pairs(previous, tokens), np.empty(shape, np.uint64), np.empty(shape, np.uint64), out)
        return out[0]

    def green_mask(self, *, key: int, previous_token: int, vocab_size: int) -> np.ndarray:
        """Boolean mask over the vocabulary: the tokens that are green after `previous_token`."""
        tokens = np.arange(vocab_size, dtype=np.uint64)
        return self.is_green(key=key, previous=np.full(vocab_size, previous_token, dtype=np.uint64), tokens=tokens)

    def green_counts(self, keys: Sequence[int] | np.ndarray, *, previous: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Green tokens among the given pairs, for every key at once: an int array, one count per
        key. Keys go through in blocks small enough for the CPU cache."""
        keys = np.asarray(keys, dtype=np.uint64)
        counts = np.zeros(len(keys), dtype=np.int64)
        if len(tokens) == 0 or len(keys) == 0:
            return counts
        pairs, block = self._pairs(previous, tokens), min(len(keys), _KEY_BLOCK)
        shape = (block, len(tokens))
        z, scratch, green = np.empty(shape, np.uint64), np.empty(shape, np.uint64), np.empty(shape, bool)
        for start in range(0, len(keys), block):
            chunk = keys[start:start + block]
            b = len(chunk)
            self._green_into(chunk, pairs, z[:b], scratch[:b], green[:b])
            counts[start:start + b] = np.count_nonzero(green[:b], axis=1)
        return counts

    # --- Generation: the per-step logits processor -------------------------------------------

    def biased_rows(self, logits: torch.Tensor) -> list[int] | None:
        """The rows of a decode step that get the bias; None: every row."""
        return None

    def bias(self, *, key: int, previous_tokens: Sequence[int], vocab_size: int,
             device: torch.device | str) -> torch.Tensor:
        """A [rows, vocab] float tensor: `delta` on each row's green tokens, 0 elsewhere."""
        masks = np.stack([self.green_mask(key=key, previous_token=int(p), vocab_size=vocab_size)
                          for p in previous_tokens])
        return torch.from_numpy(masks.astype(np.float32) * self.delta).to(device)

    def logits_biased(self, *, key: int, previous_tokens: Sequence[int], logits: torch.Tensor) -> torch.Tensor:
        """The logits processor of one decode step ([rows, vocab] in, [rows, vocab] out), applied
        before temperature, top-k and top-p, as in Kirchenbauer et al.; rows the scheme leaves
        alone are returned unchanged."""
        rows = self.biased_rows(logits)
        if rows is None:
            return logits + self.bias(key=key, previous_tokens=previous_tokens, vocab_size=logits.shape[-1],
                                      device=logits.device)
        if not rows:
            return logits
        bias = self.bias(key=key, previous_tokens=[previous_tokens[i] for i in rows], vocab_size=logits.shape[-1],
                         device=logits.device)
        logits = logits.clone()
        logits[rows] += bias
        return logits


def scored_pairs(token_ids: Sequence[int], *, context_width: int = 1, entropies: np.ndarray | None = None,
                 entropy_threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(previous, token) pairs to score: token i (from the second on: the first has no context)
    where the model's entropy before it exceeded the threshold (all, without entropies), each
    distinct pair once. Why once: a repeated pair always has the same colour, and counting it again
    would inflate z on repetitive (unwatermarked) text; with no context, each distinct token once."""
    ids = np.asarray(list(token_ids), dtype=np.int64)
    if len(ids) < 2:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    positions = np.arange(1, len(ids))
    if entropies is not None and entropy_threshold > 0:
        positions = positions[np.asarray(entropies)[1:len(ids)] > entropy_threshold]
    previous, tokens = ids[positions - 1], ids[positions]
    keyed = tokens if context_width == 0 else previous * (1 << 32) + tokens
    _, first = np.unique(keyed, return_index=True)
    keep = np.sort(first)
    return previous[keep], tokens[keep]
