"""The arithmetic every scheme's green test shares: per-grant keys and the splitmix64 mixer.

Keys are per grant: HMAC-SHA256(server secret of version v, grant id) → 64-bit integer. The green
test mixes the key with the (context, token) pair through splitmix64 and compares the result with
`gamma · 2^64`: each token is green with probability gamma, independently, given key and context.
Unlike transformers' `randperm` green lists it needs no RNG (CPU and CUDA agree), and scoring one
text against many keys is plain uint64 array arithmetic.
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np

MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB

_U = {name: np.uint64(value) for name, value in
      {"golden": _GOLDEN, "mix1": _MIX1, "mix2": _MIX2, "s30": 30, "s27": 27, "s31": 31}.items()}


def watermark_key_derive(*, secret: bytes, grant_id: str) -> int:
    """The 64-bit watermark key of a grant: HMAC-SHA256(secret, grant id), first 8 bytes."""
    digest = hmac.new(secret, str(grant_id).encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big")


def splitmix64(z: np.ndarray) -> np.ndarray:
    """splitmix64 of every element of a uint64 array (a new array)."""
    # uint64 arithmetic wraps modulo 2^64 in numpy, as splitmix64 requires.
    with np.errstate(over="ignore"):
        z = z + _U["golden"]
        z = (z ^ (z >> _U["s30"])) * _U["mix1"]
        z = (z ^ (z >> _U["s27"])) * _U["mix2"]
        return z ^ (z >> _U["s31"])


def splitmix64_inplace(z: np.ndarray, scratch: np.ndarray) -> np.ndarray:
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


def green_threshold(gamma: float) -> np.uint64:
    """A mixed value below this is green: a `gamma` share of the 64-bit range."""
    return np.uint64(min(int(gamma * 2.0**64), MASK64))
