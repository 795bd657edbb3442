"""The rule that picks a model version's watermark among the candidates measured on it: the one
that meets the recall goal at 200 tokens at the least measured quality cost. One place, used by
publishing (inference.power) and by bench/watermark_recall.py, so the bench measures what the
platform would choose.

Why the cost decides among those that meet the goal, and recall among those that do not: a
watermark found 95 % of the time already names its grant; past that, every point of perplexity is
paid by each customer's every sample. A version on which no candidate meets the goal (text too sure
of itself) gets the one that finds its text most often.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

RECALL_GOAL = 0.95  # share of 200-token texts attributed among 1,000 grants
GOAL_TOKENS = 200


@dataclass(frozen=True)
class Measured:
    """One candidate's figures on one model: recall at GOAL_TOKENS and the perplexity cost
    (0.05 = 5 % higher than plain samples; None when unknown)."""

    label: str
    recall: float | None
    cost: float | None


def _cost(m: Measured) -> float:
    # A cost below zero counts as zero: perplexity lower than plain sampling's is not better text
    # (a sampler that repeats itself lowers it), and ties go to the candidate listed first.
    return float("inf") if m.cost is None else max(0.0, m.cost)


def watermark_pick(measured: Sequence[Measured], *, goal: float = RECALL_GOAL) -> Measured | None:
    """The candidate to use: among those whose recall meets `goal`, the least cost (then the
    higher recall, then the first listed); if none meets it, the highest recall (then the least
    cost). None when nothing was measured."""
    known = [m for m in measured if m.recall is not None]
    if not known:
        return None
    meeting = [m for m in known if m.recall >= goal]
    if meeting:
        return min(meeting, key=lambda m: (_cost(m), -m.recall))
    return min(known, key=lambda m: (-m.recall, _cost(m)))
