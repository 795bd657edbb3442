"""The test every scheme's detector ends with: green tokens among the scored ones against the
`gamma` share expected by chance, as a z-score and an exact one-sided binomial p-value.

p-values are exact binomial tails (the normal approximation understates the tail of a short text,
and the verifier multiplies p by up to 10^5 candidate keys).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# z above which a text is called watermarked (also required after the multiple-test correction).
DEFAULT_Z_THRESHOLD = 4.0
# The chance that a verification names a grant for a text that grant did not generate, whatever the
# number of grants tested (Bonferroni). At 1e-3, 1 of 1,000 clean texts was attributed to one of
# 1,000 grants (bench/watermark_recall.py): as designed, but too often for an accusation; texts of
# 200 tokens from trained models reach p < 1e-17, so the stricter bound costs little recall.
DEFAULT_ALPHA = 1e-6


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


def gamma_sf(score: float, n: int) -> float:
    """P(S >= score) for S the sum of n independent Exp(1) variables (Gamma(n, 1)), exact:
    e^-s * sum_{k<n} s^k / k!, summed in log space."""
    if n <= 0:
        return 1.0 if score <= 0 else 0.0
    if score <= 0:
        return 1.0
    log_s = math.log(score)
    terms = [k * log_s - math.lgamma(k + 1) - score for k in range(n)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def z_score(green: int, total: int, gamma: float) -> float:
    if total == 0:
        return 0.0
    return (green - gamma * total) / math.sqrt(total * gamma * (1 - gamma))


@dataclass(frozen=True)
class Detection:
    """Result of testing one key: its statistic over the scored tokens (the green count of a
    green-list scheme, whose `green_tokens` it also is; the summed score of a Gumbel-max scheme,
    which has no green tokens), z-score and one-sided p-value."""

    key: int
    scored_tokens: int
    green_tokens: int | None
    z_score: float
    p_value: float
    score: float | None = None

    def is_watermarked(self, z_threshold: float = DEFAULT_Z_THRESHOLD) -> bool:
        return self.z_score > z_threshold

    @classmethod
    def of(cls, key: int, green: int, total: int, gamma: float) -> Detection:
        return cls(key=int(key), scored_tokens=total, green_tokens=int(green), score=float(green),
                   z_score=z_score(int(green), total, gamma), p_value=binomial_sf(int(green), total, gamma))

    @classmethod
    def of_score(cls, key: int, score: float, total: int) -> Detection:
        """A sum of `total` scores that are Exp(1) without the watermark: z and the exact Gamma tail."""
        score, total = float(score), int(total)  # plain Python numbers: verdicts go out as JSON
        z = (score - total) / math.sqrt(total) if total else 0.0
        return cls(key=int(key), scored_tokens=total, green_tokens=None, score=float(score), z_score=z,
                   p_value=gamma_sf(float(score), total))


@dataclass(frozen=True)
class MultiDetection:
    """The best-matching key among many, with its Bonferroni-corrected p-value."""

    best: Detection | None
    candidates: int
    adjusted_p_value: float

    def is_watermarked(self, z_threshold: float = DEFAULT_Z_THRESHOLD, alpha: float = DEFAULT_ALPHA) -> bool:
        return self.best is not None and self.best.z_score > z_threshold and self.adjusted_p_value < alpha


def detected(detection: Detection | None, *, candidates: int, alpha: float = DEFAULT_ALPHA,
             z_threshold: float = DEFAULT_Z_THRESHOLD) -> bool:
    """The verdict rule, one place: z above the threshold and the p-value, multiplied by the number
    of keys tested, below alpha."""
    return (detection is not None and detection.z_score > z_threshold
            and detection.p_value * max(1, candidates) < alpha)
