"""The scheme operations called with a scheme name and loose parameters (benches, tests and older
callers). Parameters the named scheme does not have are ignored, as they always were (a `lefthash`
test given `context_width` uses its own context)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields

import numpy as np

from .base import DEFAULT_GAMMA, WatermarkScheme, scheme_class
from .lefthash import LeftHash
from .statistics import Detection, MultiDetection

LEFTHASH = LeftHash.name


def scheme_of(name: str, **given) -> WatermarkScheme:
    """The scheme `name` with those of `given` it has. Raises WatermarkSchemeUnknown or
    WatermarkParamsInvalid."""
    cls = scheme_class(name)
    return cls.from_params({f.name: given[f.name] for f in fields(cls) if f.name in given})


def is_green(*, key: int, previous: np.ndarray, tokens: np.ndarray, gamma: float = DEFAULT_GAMMA,
             scheme: str = LEFTHASH, context_width: int = 1) -> np.ndarray:
    """Vectorised green test of `tokens[i]` after `previous[i]` for one key."""
    return scheme_of(scheme, gamma=gamma, context_width=context_width).is_green(
        key=key, previous=previous, tokens=tokens)


def green_mask(*, key: int, previous_token: int, vocab_size: int, gamma: float = DEFAULT_GAMMA,
               scheme: str = LEFTHASH, context_width: int = 1) -> np.ndarray:
    """Boolean mask over the vocabulary: the tokens that are green after `previous_token`."""
    return scheme_of(scheme, gamma=gamma, context_width=context_width).green_mask(
        key=key, previous_token=previous_token, vocab_size=vocab_size)


def green_counts(keys: Sequence[int] | np.ndarray, *, previous: np.ndarray, tokens: np.ndarray,
                 gamma: float, scheme: str = LEFTHASH, context_width: int = 1) -> np.ndarray:
    """Green tokens among the given pairs, for every key at once: one count per key."""
    return scheme_of(scheme, gamma=gamma, context_width=context_width).green_counts(
        keys, previous=previous, tokens=tokens)


def detect(token_ids: Sequence[int], *, key: int, gamma: float = DEFAULT_GAMMA, scheme: str = LEFTHASH,
           context_width: int = 1, entropies: np.ndarray | None = None, entropy_threshold: float = 0.0) -> Detection:
    """Test `token_ids` (the first token is context only) against one key."""
    chosen = scheme_of(scheme, gamma=gamma, context_width=context_width, entropy_threshold=entropy_threshold)
    return chosen.detect(token_ids, key=key, entropies=entropies)


def detect_best(previous: np.ndarray, tokens: np.ndarray, keys: Sequence[int] | np.ndarray, *,
                gamma: float, scheme: str = LEFTHASH, context_width: int = 1) -> Detection | None:
    """The key with the most green tokens among the scored pairs; None without keys."""
    return scheme_of(scheme, gamma=gamma, context_width=context_width).detect_best(previous, tokens, keys)


def detect_any(token_ids: Sequence[int], candidate_keys: Iterable[int], *, gamma: float = DEFAULT_GAMMA,
               scheme: str = LEFTHASH, context_width: int = 1, entropies: np.ndarray | None = None,
               entropy_threshold: float = 0.0) -> MultiDetection:
    """Test every candidate key; the best with its Bonferroni-corrected p-value."""
    chosen = scheme_of(scheme, gamma=gamma, context_width=context_width, entropy_threshold=entropy_threshold)
    return chosen.detect_any(token_ids, candidate_keys, entropies=entropies)
