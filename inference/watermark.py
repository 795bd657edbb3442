"""Kirchenbauer et al. (2023) green-list watermark, `lefthash` scheme with a context width of 1.

At each decoding step the previous token and a per-grant key pick a pseudo-random "green" share
`gamma` of the vocabulary; `delta` is added to the green tokens' logits before sampling. Text made
that way holds far more green tokens than the `gamma` share expected by chance, which a one-sided
z-test detects from the token ids alone, without the model.

Why a hash instead of transformers' `randperm` green list: the green test of token t after token p is
`H(key, p, t) < gamma · 2^64` with a 64-bit mixer (splitmix64). It is the same construction (each
token is green with probability gamma, independently, given key and p), but

- detection is vectorised over all tokens and costs microseconds per key, so the verify page can
  test every grant's key (`detect_any`) — `randperm` would need one vocabulary permutation per token
  per key;
- the green list does not depend on the device's RNG (CPU and CUDA `randperm` differ);
- token 0 as context does not collapse every key to seed 0 (`hash_key * prev` does in HF's lefthash).

Keys are per grant: HMAC-SHA256(server secret of version v, grant id) → 64-bit integer
(`watermark_key_derive`). The caller keeps the secret version with the grant, so rotating the server
secret never orphans earlier texts.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

DEFAULT_DELTA = 2.0
DEFAULT_GAMMA = 0.25
# z above which a text is called watermarked. One-sided p(z > 4) = 3.2e-5 for one key.
DEFAULT_Z_THRESHOLD = 4.0

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def watermark_key_derive(*, secret: bytes, grant_id: str) -> int:
    """The 64-bit watermark key of a grant: HMAC-SHA256(secret, grant id), first 8 bytes."""
    digest = hmac.new(secret, str(grant_id).encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big")


def _splitmix64_scalar(z: int) -> int:
    z = (z + _GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK64
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK64
    return z ^ (z >> 31)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    # uint64 arithmetic wraps modulo 2^64 in numpy, as splitmix64 requires.
    with np.errstate(over="ignore"):
        z = z + np.uint64(_GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX2)
        return z ^ (z >> np.uint64(31))


def _context_seeds(key: int, previous: np.ndarray) -> np.ndarray:
    """One 64-bit seed per context token: the key mixed with the previous token id."""
    key_mixed = np.uint64(_splitmix64_scalar(key & _MASK64))
    return _splitmix64(previous.astype(np.uint64) ^ key_mixed)


def _threshold(gamma: float) -> np.uint64:
    return np.uint64(min(int(gamma * 2.0**64), _MASK64))


def green_mask(*, key: int, previous_token: int, vocab_size: int, gamma: float = DEFAULT_GAMMA) -> np.ndarray:
    """Boolean mask over the vocabulary: the tokens that are green after `previous_token`."""
    seed = _context_seeds(key, np.array([previous_token]))[0]
    with np.errstate(over="ignore"):
        hashes = _splitmix64(np.arange(vocab_size, dtype=np.uint64) + seed)
    return hashes < _threshold(gamma)


def is_green(*, key: int, previous: np.ndarray, tokens: np.ndarray, gamma: float = DEFAULT_GAMMA) -> np.ndarray:
    """Vectorised green test of `tokens[i]` after `previous[i]` (the same function as `green_mask`)."""
    seeds = _context_seeds(key, previous)
    with np.errstate(over="ignore"):
        hashes = _splitmix64(tokens.astype(np.uint64) + seeds)
    return hashes < _threshold(gamma)


@dataclass(frozen=True)
class WatermarkKey:
    """What the decode loop needs to watermark one request."""

    key: int
    delta: float = DEFAULT_DELTA
    gamma: float = DEFAULT_GAMMA


SCHEME = "lefthash"  # the one scheme this module implements (context width 1)


def watermark_key_build(*, scheme: str, params: dict, secret: bytes, grant_id: str) -> WatermarkKey | None:
    """The key of a grant from its stored scheme and parameters; None for a scheme not implemented
    here. Missing parameters take the module defaults (the values every grant had before they were
    stored)."""
    if scheme != SCHEME:
        return None
    return WatermarkKey(key=watermark_key_derive(secret=secret, grant_id=grant_id),
                        delta=float(params.get("delta", DEFAULT_DELTA)), gamma=float(params.get("gamma", DEFAULT_GAMMA)))


def watermark_bias(
    *, watermark: WatermarkKey, previous_tokens: Sequence[int], vocab_size: int, device: torch.device | str
) -> torch.Tensor:
    """A [rows, vocab] float tensor: `delta` on each row's green tokens, 0 elsewhere.

    Added to the logits before temperature, top-k and top-p, as in Kirchenbauer et al.
    """
    masks = np.stack(
        [
            green_mask(key=watermark.key, previous_token=int(p), vocab_size=vocab_size, gamma=watermark.gamma)
            for p in previous_tokens
        ]
    )
    return torch.from_numpy(masks.astype(np.float32) * watermark.delta).to(device)


@dataclass(frozen=True)
class Detection:
    """Result of testing one key: green count out of scored tokens, z-score and one-sided p-value."""

    key: int
    scored_tokens: int
    green_tokens: int
    z_score: float
    p_value: float

    def is_watermarked(self, z_threshold: float = DEFAULT_Z_THRESHOLD) -> bool:
        return self.z_score > z_threshold


def _scored_pairs(token_ids: Sequence[int], ignore_repeated: bool) -> tuple[np.ndarray, np.ndarray]:
    """(previous, token) pairs to score. Repeated pairs are scored once: with a context width of 1 a
    repeated bigram always has the same colour, and counting it again would inflate z on repetitive
    (unwatermarked) text."""
    ids = np.asarray(list(token_ids), dtype=np.int64)
    if len(ids) < 2:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    pairs = np.stack([ids[:-1], ids[1:]], axis=1)
    if ignore_repeated:
        _, first = np.unique(pairs, axis=0, return_index=True)
        pairs = pairs[np.sort(first)]
    return pairs[:, 0], pairs[:, 1]


def _z_and_p(green: int, total: int, gamma: float) -> tuple[float, float]:
    if total == 0:
        return 0.0, 1.0
    z = (green - gamma * total) / math.sqrt(total * gamma * (1 - gamma))
    return z, 0.5 * math.erfc(z / math.sqrt(2))


def detect(
    token_ids: Sequence[int], *, key: int, gamma: float = DEFAULT_GAMMA, ignore_repeated: bool = True
) -> Detection:
    """Test `token_ids` (the first token is context only) against one key."""
    previous, tokens = _scored_pairs(token_ids, ignore_repeated)
    green = int(is_green(key=key, previous=previous, tokens=tokens, gamma=gamma).sum())
    z, p = _z_and_p(green, len(tokens), gamma)
    return Detection(key=key, scored_tokens=len(tokens), green_tokens=green, z_score=z, p_value=p)


@dataclass(frozen=True)
class MultiDetection:
    """The best-matching key among many, with its Bonferroni-corrected p-value."""

    best: Detection | None
    candidates: int
    adjusted_p_value: float
    all: tuple[Detection, ...]

    def is_watermarked(self, z_threshold: float = DEFAULT_Z_THRESHOLD, alpha: float = 1e-3) -> bool:
        return self.best is not None and self.best.z_score > z_threshold and self.adjusted_p_value < alpha


def detect_any(
    token_ids: Sequence[int], candidate_keys: Iterable[int], *, gamma: float = DEFAULT_GAMMA,
    ignore_repeated: bool = True,
) -> MultiDetection:
    """Test every candidate key; report the best one with its p-value multiplied by the number of
    keys tested (Bonferroni), so that testing a thousand grants does not make a chance match of one
    of them look significant."""
    keys = list(candidate_keys)
    previous, tokens = _scored_pairs(token_ids, ignore_repeated)
    results = []
    for key in keys:
        green = int(is_green(key=key, previous=previous, tokens=tokens, gamma=gamma).sum())
        z, p = _z_and_p(green, len(tokens), gamma)
        results.append(Detection(key=key, scored_tokens=len(tokens), green_tokens=green, z_score=z, p_value=p))
    if not results:
        return MultiDetection(best=None, candidates=0, adjusted_p_value=1.0, all=())
    best = min(results, key=lambda d: d.p_value)
    return MultiDetection(
        best=best, candidates=len(keys), adjusted_p_value=min(1.0, best.p_value * len(keys)), all=tuple(results)
    )
