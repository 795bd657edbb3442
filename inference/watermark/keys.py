"""A grant's watermark as the decode loop and the detector hold it: its key and its scheme."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .base import Scheme, scheme_build
from .lefthash import LeftHash
from .mixing import watermark_key_derive


@dataclass(frozen=True, init=False)
class WatermarkKey:
    """One grant's 64-bit key and its scheme with parameters. Built from a scheme name and its
    parameters (`WatermarkKey(key, scheme="sweet", delta=3.0)`; a bare key is the first scheme's,
    with its defaults), or from a scheme object; `to_dict()` is what crosses process boundaries
    and builds it again."""

    key: int
    scheme: Scheme

    def __init__(self, key: int, scheme: str | Scheme = LeftHash.name, **params):
        if not isinstance(scheme, Scheme):
            scheme = scheme_build(scheme, params)
        elif params:
            raise TypeError("A scheme object carries its own parameters.")
        # The key is not checked here: a bad one fails the request that uses it, at its first step.
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "scheme", scheme)

    def to_dict(self) -> dict:
        return {"key": self.key, "scheme": self.scheme.name, **self.scheme.params()}


def watermark_key_build(*, scheme: str, params: dict, secret: bytes, grant_id: str) -> WatermarkKey:
    """The key of a grant from its stored scheme and parameters (missing parameters take the
    defaults every grant of that scheme had before they were stored). Raises
    SchemeUnknown or WatermarkParamsInvalid."""
    return WatermarkKey(watermark_key_derive(secret=secret, grant_id=grant_id), _grant_scheme(scheme, params))


def _grant_scheme(name: str, params: dict) -> Scheme:
    # Grants share a handful of (scheme, parameters): each is validated once, not once per grant
    # (a verifier reads 10^5 grants' keys when it starts).
    try:
        # with each value's type: True == 1 to Python, but only 1 is a valid parameter
        return _grant_scheme_cached(name, frozenset((k, type(v), v) for k, v in params.items()))
    except (TypeError, AttributeError):  # not a mapping, or unhashable values: refused uncached
        return scheme_build(name, params)


@functools.lru_cache(maxsize=64)
def _grant_scheme_cached(name: str, items: frozenset) -> Scheme:
    return scheme_build(name, {k: v for k, _, v in items})


def watermark_bias(*, watermark: WatermarkKey, previous_tokens: Sequence[int], vocab_size: int,
                   device: torch.device | str) -> torch.Tensor:
    """A [rows, vocab] float tensor: `delta` on each row's green tokens, 0 elsewhere."""
    return watermark.scheme.bias(key=watermark.key, previous_tokens=previous_tokens, vocab_size=vocab_size,
                                 device=device)


def watermark_choose(*, watermark: WatermarkKey, histories: Sequence[Sequence[int]], probs: torch.Tensor,
                     generators: Sequence[torch.Generator], memories: Sequence[set]) -> torch.Tensor | None:
    """The scheme's pick of each row's next token from the final distribution (after temperature,
    top-k and top-p), or None where the scheme leaves sampling to the engine."""
    return watermark.scheme.choose(key=watermark.key, histories=histories, probs=probs, generators=generators,
                                   memories=memories)


def watermark_logits(*, watermark: WatermarkKey, previous_tokens: Sequence[int], logits: torch.Tensor) -> torch.Tensor:
    """The logits processor of one decode step ([rows, vocab] in, [rows, vocab] out), before
    temperature, top-k and top-p; the scheme decides which rows get the bias."""
    return watermark.scheme.logits_biased(key=watermark.key, previous_tokens=previous_tokens, logits=logits)
