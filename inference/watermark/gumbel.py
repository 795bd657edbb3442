"""`gumbel`, a distortion-free scheme: Gumbel-max / EXP sampling (Aaronson 2022; Kuditipudi et al.
2023), per grant key.

At a decode step the key and the last `context_width` tokens give every vocabulary token i a
pseudo-random r_i, uniform on (0, 1); the token chosen is argmax r_i^(1/p_i), p being the final
sampling distribution (after temperature, top-k and top-p). Over the keys that choice is exactly
a sample of p, so no token is distorted; given the key, the chosen token tends to have a large r.
The detector sums -log(1 - r) over the text's scored (context, token) pairs: without the key's
watermark each term is Exp(1), so the sum of n is Gamma(n, 1) and its upper tail is exact.

Why it acts after temperature, top-k and top-p: a bias before them is divided by the temperature
(its strength and its cost follow the customer's setting); sampling the final distribution keeps
that distribution whatever the setting. Greedy decoding (temperature 0) has no randomness to
carry a watermark and is left alone.

Identical requests must not repeat (a Gumbel-max sampler is deterministic given key and context):
a `free_share` of each row's steps, drawn from the row's own seeded generator, samples plainly.
Once two rows differ in a token, their contexts (and the model's distributions) differ and they
go their own ways; the detector needs nothing of that draw (a plain step scores as chance), so
a text is attributed from itself alone, and nothing is added to receipts. Nor may one text loop:
a context seen before in the row would pick the same token again (measured: 11-34 % of 4-grams
repeated against 0-1 % for plain sampling), so a repeated context is sampled plainly too, and
the detector scores each context's first occurrence only (the same positions, from the text).

Detection scores only positions where the model's own entropy, recomputed on the text, exceeds
`entropy_threshold` (as `sweet` does): where the model is sure, any sampler picks the same token
and its r says nothing; the selection does not depend on any key, so each key's test keeps its
exact chance distribution. Distinct contexts give independent r, so the scored terms are
independent Exp(1) without the watermark.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from .base import Scheme, register_scheme
from .mixing import MASK64, splitmix64, splitmix64_inplace
from .statistics import Detection

_SEED = np.uint64(0x6A09E667F3BCC909)
_KEY_BLOCK = 512
_TWO_53 = 2.0**-53


def _context_hashes(ids: np.ndarray, width: int) -> np.ndarray:
    """hash[j]: the key-independent hash of the `width` tokens before position j + width of `ids`
    (len(ids) - width values)."""
    n = len(ids) - width
    h = np.full(max(0, n), _SEED, dtype=np.uint64)
    for back in range(width, 0, -1):  # oldest token first
        h = splitmix64(h ^ ids[width - back:width - back + n].astype(np.uint64))
    return h


def _pair_hashes(contexts: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    # splitmix64 is a bijection: for one context, distinct tokens never share a hash.
    return splitmix64(splitmix64(contexts) ^ np.asarray(tokens, dtype=np.uint64))


def _uniform(z: np.ndarray) -> np.ndarray:
    """uint64 → float64 uniform on (0, 1) (53 bits, never 0 or 1)."""
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) * _TWO_53


@register_scheme
@dataclass(frozen=True)
class Gumbel(Scheme):
    name: ClassVar[str] = "gumbel"
    acts_at: ClassVar[str] = "sampling"
    distortion_free: ClassVar[bool] = True

    context_width: int = 2  # tokens of context that seed each step's r
    entropy_threshold: float = 0.5  # nats; the detector scores only positions above it (0: all)
    free_share: float = field(default=0.1, metadata={"generation_only": True})  # steps sampled plainly

    def validate(self) -> None:
        if not 1 <= self.context_width <= 8:
            self.invalid(f"context_width must be between 1 and 8, not {self.context_width}")
        if self.entropy_threshold < 0:
            self.invalid(f"entropy_threshold must be 0 or more nats, not {self.entropy_threshold}")
        if not 0 <= self.free_share < 1:
            self.invalid(f"free_share must be at least 0 and below 1, not {self.free_share}")

    def describe(self) -> str:
        scored = (f"scored where the model's entropy exceeds {self.entropy_threshold} nats"
                  if self.entropy_threshold > 0 else "every position scored")
        return (f"distortion-free Gumbel-max sampling after temperature, top-k and top-p, "
                f"{self.context_width} tokens of context, {self.free_share:.0%} of steps sampled plainly, {scored}")

    @property
    def history_tokens(self) -> int:  # type: ignore[override]
        return self.context_width

    # --- Generation --------------------------------------------------------------------------

    def uniforms(self, *, key: int, history: Sequence[int], vocab_size: int) -> np.ndarray:
        """r over the vocabulary after `history` (its last context_width tokens) for one key."""
        ids = np.asarray(list(history)[-self.context_width:], dtype=np.int64)
        if len(ids) < self.context_width:  # a prompt shorter than the context: pad as the detector never scores
            ids = np.concatenate([np.zeros(self.context_width - len(ids), np.int64), ids])
        context = _context_hashes(np.concatenate([ids, [0]]), self.context_width)
        pairs = _pair_hashes(np.repeat(context, vocab_size), np.arange(vocab_size, dtype=np.uint64))
        mixed = splitmix64(np.array([key & MASK64], dtype=np.uint64))[0]
        return _uniform(splitmix64(pairs ^ mixed))

    def choose(self, *, key: int, histories, probs: torch.Tensor, generators, memories) -> torch.Tensor:
        picks = []
        for j, generator in enumerate(generators):
            row, context = probs[j], tuple(histories[j][-self.context_width:])
            repeated = context in memories[j]
            memories[j].add(context)
            draw = torch.rand(1, generator=generator, device=row.device)
            if repeated or float(draw) < self.free_share:
                picks.append(torch.multinomial(row, 1, generator=generator))
                continue
            r = torch.from_numpy(self.uniforms(key=key, history=histories[j], vocab_size=row.shape[-1]))
            p = row.double().cpu()
            # argmax r^(1/p) = argmax log(r) / p; tokens with p = 0 (filtered out) never win.
            score = torch.where(p > 0, torch.log(r) / p.clamp_min(1e-300), torch.full_like(p, -torch.inf))
            picks.append(score.argmax().reshape(1).to(row.device))
        return torch.cat(picks)

    # --- Detection ---------------------------------------------------------------------------

    @property
    def needs_entropies(self) -> bool:
        return self.entropy_threshold > 0

    def scored_pairs(self, token_ids: Sequence[int], *, entropies: np.ndarray | None = None):
        """(context hash, token) of each position from the context_width-th on (those before have
        context in the prompt, which the detector does not know) whose context is new to the text
        (generation samples a repeated context plainly), at entropy above the threshold."""
        ids = np.asarray(list(token_ids), dtype=np.int64)
        width = self.context_width
        if len(ids) <= width:
            return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
        contexts, tokens = _context_hashes(ids, width), ids[width:]
        _, first = np.unique(contexts, return_index=True)
        keep = np.zeros(len(tokens), bool)
        keep[first] = True
        if entropies is not None and self.entropy_threshold > 0:
            keep &= np.asarray(entropies, dtype=np.float64)[width:len(ids)] > self.entropy_threshold
        return contexts[keep], tokens[keep]

    def scores(self, keys, *, previous: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Σ -log(1 - r) over the pairs, for every key (blocks of keys stay in the CPU cache)."""
        keys = np.asarray(keys, dtype=np.uint64)
        out = np.zeros(len(keys), dtype=np.float64)
        if len(tokens) == 0 or len(keys) == 0:
            return out
        pairs = _pair_hashes(previous, tokens)
        block = min(len(keys), _KEY_BLOCK)
        z, scratch = np.empty((block, len(tokens)), np.uint64), np.empty((block, len(tokens)), np.uint64)
        for start in range(0, len(keys), block):
            chunk = keys[start:start + block]
            b = len(chunk)
            np.bitwise_xor(splitmix64(chunk)[:, None], pairs[None, :], out=z[:b])
            splitmix64_inplace(z[:b], scratch[:b])
            out[start:start + b] = -np.log1p(-_uniform(z[:b])).sum(axis=1)
        return out

    def detection(self, key: int, score: float, scored: int) -> Detection:
        return Detection.of_score(key, score, scored)
