"""Per-grant green-list watermarks (Kirchenbauer et al. 2023), in two scheme versions.

At a decoding step the context and a per-grant key pick a pseudo-random "green" share `gamma` of the
vocabulary; `delta` is added to the green tokens' logits before sampling. Text made that way holds
more green tokens than the `gamma` share expected by chance, which a one-sided binomial test detects.

- `lefthash` (the first version, kept so that every text made under it stays verifiable): context
  = the previous token; every step biased with delta 2; every distinct (previous, token) pair scored.
- `sweet` (the current version): entropy-selective, after SWEET (Lee et al. 2023). The bias, a
  larger delta, is added only where the model's own next-token entropy exceeds `entropy_threshold`
  nats, and the detector scores only those positions (it recomputes the entropies with the model
  on the text). Why: a fine-tuned model is sure of most of its tokens (the demo model sampled at a
  mean entropy of 0.85 nats); there a bias barely changes the choice, and scoring such tokens only
  adds green-at-chance noise (z 2 for delta 2 at 110 tokens, detected 1/30). Where the model is
  unsure the same bias moves the choice, so a larger delta buys power, and the sure tokens (where a
  bias would do the most harm to the text) are left alone. The selection does not depend on any
  key, so each key's test keeps its chance level. `context_width` 1 seeds the green list with the
  previous token; 0 is one fixed list per key (Unigram-Watermark, Zhao et al. 2023).

Green test: a 64-bit mixer (splitmix64) of the key and the (context, token) pair against
`gamma · 2^64`: each token is green with probability gamma, independently, given key and context.
Unlike transformers' `randperm` green lists it needs no RNG (CPU and CUDA agree), and detection of
one text against many keys is one vectorised pass (`green_counts`): the `sweet` scheme's pair hash
is computed once per text, leaving one mix per (key, pair) — 100,000 grants cost tens of ms.

p-values are exact binomial tails (the normal approximation understates the tail of a short text,
and the verifier multiplies p by up to 10^5 candidate keys).

Keys are per grant: HMAC-SHA256(server secret of version v, grant id) → 64-bit integer
(`watermark_key_derive`). The grant keeps the secret version, scheme and parameters.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

LEFTHASH = "lefthash"
SWEET = "sweet"
SCHEMES = (LEFTHASH, SWEET)

DEFAULT_DELTA = 2.0
DEFAULT_GAMMA = 0.25
# z above which a text is called watermarked (also required after the multiple-test correction).
DEFAULT_Z_THRESHOLD = 4.0
# The chance that a verification names a grant for a text that grant did not generate, whatever the
# number of grants tested (Bonferroni). At 1e-3, 1 of 1,000 clean texts was attributed to one of
# 1,000 grants (bench/watermark_recall.py): as designed, but too often for an accusation; texts of
# 200 tokens from trained models reach p < 1e-17, so the stricter bound costs little recall.
DEFAULT_ALPHA = 1e-6

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
# Keys per block when scoring many: (block × pairs) uint64 buffers stay in the CPU cache.
_KEY_BLOCK = 512


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


_U = {name: np.uint64(value) for name, value in
      {"golden": _GOLDEN, "mix1": _MIX1, "mix2": _MIX2, "s30": 30, "s27": 27, "s31": 31}.items()}


def _splitmix64_inplace(z: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """splitmix64 of z in place, with `scratch` (same shape) for the shifts: no allocation, which
    matters when scoring 10^5 keys at once (most of the time went to temporaries)."""
    with np.errstate(over="ignore"):
        z += _U["golden"]
        np.right_shift(z, _U["s30"], out=scratch)
        z ^= scratch
        z *= _U["mix1"]
        np.right_shift(z, _U["s27"], out=scratch)
        z ^= scratch
        z *= _U["mix2"]
        np.right_shift(z, _U["s31"], out=scratch)
        z ^= scratch
    return z


def _threshold(gamma: float) -> np.uint64:
    return np.uint64(min(int(gamma * 2.0**64), _MASK64))


@dataclass(frozen=True)
class WatermarkKey:
    """What the decode loop and the detector need for one grant: its key, scheme and parameters."""

    key: int
    delta: float = DEFAULT_DELTA
    gamma: float = DEFAULT_GAMMA
    scheme: str = LEFTHASH
    entropy_threshold: float = 0.0  # nats; sweet only
    context_width: int = 1  # sweet only: 1 previous token, 0 none (Unigram)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def selective(self) -> bool:
        return self.scheme == SWEET and self.entropy_threshold > 0

    @property
    def family(self) -> tuple:
        """Keys of one family are scored together: same green test, same scored positions."""
        return (self.scheme, self.gamma, self.entropy_threshold if self.scheme == SWEET else 0.0,
                self.context_width if self.scheme == SWEET else 1)


def watermark_key_build(*, scheme: str, params: dict, secret: bytes, grant_id: str) -> WatermarkKey | None:
    """The key of a grant from its stored scheme and parameters; None for a scheme not implemented
    here. Missing parameters take the defaults every grant of that scheme had before they were
    stored."""
    if scheme not in SCHEMES:
        return None
    key = watermark_key_derive(secret=secret, grant_id=grant_id)
    common = {"key": key, "delta": float(params.get("delta", DEFAULT_DELTA)),
              "gamma": float(params.get("gamma", DEFAULT_GAMMA)), "scheme": scheme}
    if scheme == LEFTHASH:
        return WatermarkKey(**common)
    return WatermarkKey(**common, entropy_threshold=float(params.get("entropy_threshold", 0.0)),
                        context_width=int(params.get("context_width", 1)))


# --- The green test ----------------------------------------------------------------------------

def _key_mixed(keys: np.ndarray) -> np.ndarray:
    return _splitmix64(np.asarray(keys, dtype=np.uint64))


def _pair_hashes(previous: np.ndarray, tokens: np.ndarray, context_width: int) -> np.ndarray:
    """sweet: one key-independent 64-bit hash per (context, token) pair."""
    tokens = np.asarray(tokens, dtype=np.uint64)
    if context_width == 0:
        return _splitmix64(tokens ^ np.uint64(0x5EED))
    with np.errstate(over="ignore"):
        return _splitmix64((np.asarray(previous, dtype=np.uint64) << np.uint64(32)) | tokens)


def _green_lefthash(key: int, previous: np.ndarray, tokens: np.ndarray, gamma: float) -> np.ndarray:
    key_mixed = np.uint64(_splitmix64_scalar(key & _MASK64))
    seeds = _splitmix64(np.asarray(previous).astype(np.uint64) ^ key_mixed)
    with np.errstate(over="ignore"):
        return _splitmix64(np.asarray(tokens).astype(np.uint64) + seeds) < _threshold(gamma)


def is_green(*, key: int, previous: np.ndarray, tokens: np.ndarray, gamma: float = DEFAULT_GAMMA,
             scheme: str = LEFTHASH, context_width: int = 1) -> np.ndarray:
    """Vectorised green test of `tokens[i]` after `previous[i]` for one key."""
    if scheme == LEFTHASH:
        return _green_lefthash(key, previous, tokens, gamma)
    mixed = _key_mixed(np.array([key]))[0]
    return _splitmix64(_pair_hashes(previous, tokens, context_width) ^ mixed) < _threshold(gamma)


def green_mask(*, key: int, previous_token: int, vocab_size: int, gamma: float = DEFAULT_GAMMA,
               scheme: str = LEFTHASH, context_width: int = 1) -> np.ndarray:
    """Boolean mask over the vocabulary: the tokens that are green after `previous_token`."""
    tokens = np.arange(vocab_size, dtype=np.uint64)
    previous = np.full(vocab_size, previous_token, dtype=np.uint64)
    return is_green(key=key, previous=previous, tokens=tokens, gamma=gamma, scheme=scheme,
                    context_width=context_width)


def green_counts(keys: Sequence[int] | np.ndarray, *, previous: np.ndarray, tokens: np.ndarray,
                 gamma: float, scheme: str = LEFTHASH, context_width: int = 1) -> np.ndarray:
    """Green tokens among the given pairs, for every key at once: an int array, one count per key.
    Keys go through in blocks small enough for the CPU cache, in preallocated buffers."""
    keys = np.asarray(keys, dtype=np.uint64)
    counts = np.zeros(len(keys), dtype=np.int64)
    if len(tokens) == 0 or len(keys) == 0:
        return counts
    threshold, width = _threshold(gamma), len(tokens)
    block = min(len(keys), _KEY_BLOCK)
    z, scratch = np.empty((block, width), np.uint64), np.empty((block, width), np.uint64)
    green = np.empty((block, width), bool)
    if scheme == LEFTHASH:  # the first version's hash has no key-independent part: two mixes
        prev, tok = np.asarray(previous, dtype=np.uint64), np.asarray(tokens, dtype=np.uint64)
    else:
        pairs = _pair_hashes(previous, tokens, context_width)
    for start in range(0, len(keys), block):
        mixed = _key_mixed(keys[start:start + block])
        b = len(mixed)
        zb, sb = z[:b], scratch[:b]
        if scheme == LEFTHASH:
            np.bitwise_xor(mixed[:, None], prev[None, :], out=zb)
            _splitmix64_inplace(zb, sb)
            with np.errstate(over="ignore"):
                zb += tok[None, :]
        else:
            np.bitwise_xor(mixed[:, None], pairs[None, :], out=zb)
        _splitmix64_inplace(zb, sb)
        np.less(zb, threshold, out=green[:b])
        counts[start:start + b] = np.count_nonzero(green[:b], axis=1)
    return counts


# --- Generation: the per-step logits processor -------------------------------------------------

def next_token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of softmax(logits) per row ([rows, vocab] → [rows]), at temperature 1: the
    model's own uncertainty, which the detector can recompute without knowing the request."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).nan_to_num().sum(dim=-1)


def watermark_bias(
    *, watermark: WatermarkKey, previous_tokens: Sequence[int], vocab_size: int, device: torch.device | str
) -> torch.Tensor:
    """A [rows, vocab] float tensor: `delta` on each row's green tokens, 0 elsewhere."""
    masks = np.stack([
        green_mask(key=watermark.key, previous_token=int(p), vocab_size=vocab_size, gamma=watermark.gamma,
                   scheme=watermark.scheme, context_width=watermark.context_width)
        for p in previous_tokens
    ])
    return torch.from_numpy(masks.astype(np.float32) * watermark.delta).to(device)


def watermark_logits(*, watermark: WatermarkKey, previous_tokens: Sequence[int], logits: torch.Tensor) -> torch.Tensor:
    """The logits processor of one decode step ([rows, vocab] in, [rows, vocab] out), applied
    before temperature, top-k and top-p, as in Kirchenbauer et al. With an entropy threshold only
    the rows where the model is unsure get the bias (the others are returned unchanged)."""
    if not watermark.selective:
        return logits + watermark_bias(watermark=watermark, previous_tokens=previous_tokens,
                                       vocab_size=logits.shape[-1], device=logits.device)
    unsure = (next_token_entropy(logits) > watermark.entropy_threshold).tolist()
    rows = [i for i, flag in enumerate(unsure) if flag]
    if not rows:
        return logits
    bias = watermark_bias(watermark=watermark, previous_tokens=[previous_tokens[i] for i in rows],
                          vocab_size=logits.shape[-1], device=logits.device)
    logits = logits.clone()
    logits[rows] += bias
    return logits


# --- Detection ---------------------------------------------------------------------------------

def text_entropies(model: torch.nn.Module, token_ids: Sequence[int], *, n_positions: int,
                   bos_token_id: int = 0) -> np.ndarray:
    """entropies[i]: the model's entropy (nats) before token i of `token_ids`, given the tokens
    before it (after a BOS token; beyond the context, the last n_positions - 1 tokens). The
    detector's view of where the generator was unsure; it does not know the prompt, so the first
    tokens may differ slightly from what generation saw."""
    ids = [bos_token_id, *map(int, token_ids)]
    device = next(model.parameters()).device
    out = np.empty(len(token_ids), dtype=np.float64)
    window = max(2, int(n_positions))
    stride = max(1, window // 2)
    done, start = 0, 0  # entropies known for out[:done]; window covers ids[start:start + window]
    with torch.inference_mode():
        while done < len(token_ids):
            chunk = ids[start:start + window]
            logits = model(input_ids=torch.tensor([chunk], device=device)).logits[0]
            # logits[j] predicts ids[start + j + 1] = token_ids[start + j]
            ent = next_token_entropy(logits[:-1] if len(chunk) > 1 else logits).cpu().numpy()
            first = done - start
            last = min(len(chunk) - 1, len(token_ids) - start)
            out[done:start + last] = ent[first:last]
            done = start + last
            start = max(start + stride, done - (window - stride))
    return out


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exact (log-space sum of the upper tail)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) + j * log_p + (n - j) * log_q
             for j in range(k, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def z_score(green: int, total: int, gamma: float) -> float:
    if total == 0:
        return 0.0
    return (green - gamma * total) / math.sqrt(total * gamma * (1 - gamma))


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


def _detection(key: int, green: int, total: int, gamma: float) -> Detection:
    return Detection(key=int(key), scored_tokens=total, green_tokens=int(green),
                     z_score=z_score(int(green), total, gamma), p_value=binomial_sf(int(green), total, gamma))


def detect(token_ids: Sequence[int], *, key: int, gamma: float = DEFAULT_GAMMA, scheme: str = LEFTHASH,
           context_width: int = 1, entropies: np.ndarray | None = None, entropy_threshold: float = 0.0) -> Detection:
    """Test `token_ids` (the first token is context only) against one key."""
    previous, tokens = scored_pairs(token_ids, context_width=context_width, entropies=entropies,
                                    entropy_threshold=entropy_threshold)
    green = int(is_green(key=key, previous=previous, tokens=tokens, gamma=gamma, scheme=scheme,
                         context_width=context_width).sum())
    return _detection(key, green, len(tokens), gamma)


@dataclass(frozen=True)
class MultiDetection:
    """The best-matching key among many, with its Bonferroni-corrected p-value."""

    best: Detection | None
    candidates: int
    adjusted_p_value: float

    def is_watermarked(self, z_threshold: float = DEFAULT_Z_THRESHOLD, alpha: float = DEFAULT_ALPHA) -> bool:
        return self.best is not None and self.best.z_score > z_threshold and self.adjusted_p_value < alpha


def detect_best(previous: np.ndarray, tokens: np.ndarray, keys: Sequence[int] | np.ndarray, *,
                gamma: float, scheme: str = LEFTHASH, context_width: int = 1) -> Detection | None:
    """The key with the most green tokens among the scored pairs (all keys share the pairs, so the
    most green is the smallest p-value), with its exact p-value; None without keys."""
    keys = np.asarray(keys, dtype=np.uint64)
    if len(keys) == 0:
        return None
    counts = green_counts(keys, previous=previous, tokens=tokens, gamma=gamma, scheme=scheme,
                          context_width=context_width)
    best = int(np.argmax(counts))
    return _detection(int(keys[best]), int(counts[best]), len(tokens), gamma)


def detect_any(token_ids: Sequence[int], candidate_keys: Iterable[int], *, gamma: float = DEFAULT_GAMMA,
               scheme: str = LEFTHASH, context_width: int = 1, entropies: np.ndarray | None = None,
               entropy_threshold: float = 0.0) -> MultiDetection:
    """Test every candidate key; report the best one with its p-value multiplied by the number of
    keys tested (Bonferroni), so that testing a thousand grants does not make a chance match of one
    of them look significant."""
    keys = np.fromiter((k & _MASK64 for k in candidate_keys), dtype=np.uint64)
    previous, tokens = scored_pairs(token_ids, context_width=context_width, entropies=entropies,
                                    entropy_threshold=entropy_threshold)
    best = detect_best(previous, tokens, keys, gamma=gamma, scheme=scheme, context_width=context_width)
    if best is None:
        return MultiDetection(best=None, candidates=0, adjusted_p_value=1.0)
    return MultiDetection(best=best, candidates=len(keys), adjusted_p_value=min(1.0, best.p_value * len(keys)))


def detected(detection: Detection | None, *, candidates: int, alpha: float = DEFAULT_ALPHA,
             z_threshold: float = DEFAULT_Z_THRESHOLD) -> bool:
    """The verdict rule, one place: z above the threshold and the p-value, multiplied by the number
    of keys tested, below alpha."""
    return (detection is not None and detection.z_score > z_threshold
            and detection.p_value * max(1, candidates) < alpha)
