"""How much of a generated sample the model copied verbatim from its training data.

A suffix automaton over the (short) sample recognises every substring of it. Streaming the (long)
training tokens through it, following suffix links on a mismatch, yields at each training position
the longest sample substring ending there: the classic longest-common-substring algorithm, one
pass over the training stream with amortised O(1) work per token and memory proportional to the
sample only.
"""

from __future__ import annotations

from collections.abc import Sequence

NGRAM = 8


class _SuffixAutomaton:
    """Suffix automaton of one token sequence: states with `length` (longest string in the state),
    `link` (suffix link) and `next` (transitions by token). `prefix_state[i]` is the state of
    tokens[: i + 1]."""

    def __init__(self, tokens: Sequence[int]) -> None:
        self.length = [0]
        self.link = [-1]
        self.next: list[dict[int, int]] = [{}]
        self.prefix_state: list[int] = []
        last = 0
        for token in tokens:
            last = self._extend(last, token)
            self.prefix_state.append(last)

    def _new_state(self, length: int, link: int, transitions: dict[int, int]) -> int:
        self.length.append(length)
        self.link.append(link)
        self.next.append(transitions)
        return len(self.length) - 1

    def _extend(self, last: int, token: int) -> int:
        """Standard online construction step; returns the state of the extended prefix."""
        current = self._new_state(self.length[last] + 1, -1, {})
        state = last
        while state != -1 and token not in self.next[state]:
            self.next[state][token] = current
            state = self.link[state]
        if state == -1:
            self.link[current] = 0
            return current
        target = self.next[state][token]
        if self.length[state] + 1 == self.length[target]:
            self.link[current] = target
            return current
        clone = self._new_state(self.length[state] + 1, self.link[target], dict(self.next[target]))
        while state != -1 and self.next[state].get(token) == target:
            self.next[state][token] = clone
            state = self.link[state]
        self.link[target] = clone
        self.link[current] = clone
        return current


def _matched_lengths(automaton: _SuffixAutomaton, train_ids: Sequence[int]) -> list[int]:
    """For every state, the longest of its strings seen in `train_ids` (0 if none).

    Hot loop over the whole training stream: locals only, no method calls per token.
    """
    length, link, transitions = automaton.length, automaton.link, automaton.next
    best = [0] * len(length)
    state, matched = 0, 0
    for token in train_ids:
        while state and token not in transitions[state]:
            state = link[state]
            matched = length[state]
        state = transitions[state].get(token, 0)
        matched = matched + 1 if state else 0
        if matched > best[state]:  # noqa: PLR1730 - a compare is cheaper than max() in this loop
            best[state] = matched
    _propagate_to_suffixes(automaton, best)
    return best


def _propagate_to_suffixes(automaton: _SuffixAutomaton, best: list[int]) -> None:
    """A match in a state means every string of its suffix-link parent occurred too (they are
    suffixes of the match); push that down to the root, longest states first."""
    length, link = automaton.length, automaton.link
    for state in sorted(range(1, len(length)), key=length.__getitem__, reverse=True):
        if best[state]:
            parent = link[state]
            best[parent] = length[parent]


def _state_of_suffix(automaton: _SuffixAutomaton, end: int, size: int) -> int:
    """The state holding the `size`-token substring of the sample that ends at index `end`."""
    state = automaton.prefix_state[end]
    while automaton.length[automaton.link[state]] >= size:
        state = automaton.link[state]
    return state


def memorisation_score(
    sample_ids: list[int], train_ids: Sequence[int], n: int = NGRAM
) -> dict[str, float | int]:
    """Verbatim overlap of a sample with the training stream.

    `longest_span`: length of the longest contiguous run of sample tokens found verbatim in the
    training stream (0 if no token occurs). `ngram_share`: the share of the sample's n-grams
    (counted by position) that occur in the training stream; 0.0 when the sample has fewer than n
    tokens. Time O(len(train_ids) + len(sample_ids) log len(sample_ids)). Raises ValueError for n < 1.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    if not sample_ids or len(train_ids) == 0:
        return {"longest_span": 0, "ngram_share": 0.0}
    automaton = _SuffixAutomaton(sample_ids)
    best = _matched_lengths(automaton, train_ids)
    ngram_count = len(sample_ids) - n + 1
    if ngram_count < 1:
        return {"longest_span": max(best), "ngram_share": 0.0}
    found = sum(best[_state_of_suffix(automaton, end, n)] >= n for end in range(n - 1, len(sample_ids)))
    return {"longest_span": max(best), "ngram_share": found / ngram_count}
