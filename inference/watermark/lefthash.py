"""`lefthash`, the first scheme (Kirchenbauer et al. 2023), kept so that every text made under it
stays verifiable: the previous token seeds the green list, every decode step is biased, and every
distinct (previous, token) pair of a text is scored.

Its green test mixes the key with the previous token, then that seed with the token: it has no
key-independent part, so scoring many keys costs two mixes per (key, pair).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import WatermarkScheme, register_scheme, scored_pairs
from .mixing import splitmix64_inplace


@register_scheme
@dataclass(frozen=True)
class LeftHash(WatermarkScheme):
    name: ClassVar[str] = "lefthash"

    def _pairs(self, previous, tokens):
        return np.asarray(previous).astype(np.uint64), np.asarray(tokens).astype(np.uint64)

    def _mix_keys(self, mixed_keys, pairs, out, scratch) -> None:
        previous, tokens = pairs
        np.bitwise_xor(mixed_keys[:, None], previous[None, :], out=out)
        splitmix64_inplace(out, scratch)
        with np.errstate(over="ignore"):
            out += tokens[None, :]

    def scored_pairs(self, token_ids: Sequence[int], *, entropies: np.ndarray | None = None):
        return scored_pairs(token_ids)
