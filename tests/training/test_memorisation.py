"""Memorisation figures of generated samples against the training stream."""

from __future__ import annotations

import random
import time

import pytest

from training.memorisation import memorisation_score


def _brute_force(sample: list[int], train: list[int], n: int) -> dict[str, float | int]:
    def occurs(part: list[int]) -> bool:
        return any(train[i : i + len(part)] == part for i in range(len(train) - len(part) + 1))

    longest = max(
        (j - i for i in range(len(sample)) for j in range(i + 1, len(sample) + 1) if occurs(sample[i:j])),
        default=0,
    )
    if len(sample) < n:
        return {"longest_span": longest, "ngram_share": 0.0}
    grams = {tuple(train[i : i + n]) for i in range(len(train) - n + 1)}
    found = sum(tuple(sample[i : i + n]) in grams for i in range(len(sample) - n + 1))
    return {"longest_span": longest, "ngram_share": found / (len(sample) - n + 1)}


def test_longest_span_finds_the_copied_run() -> None:
    train = list(range(100, 200))
    sample = [1, 2, *range(150, 162), 3]
    assert memorisation_score(sample, train)["longest_span"] == 12


def test_ngram_share_counts_sample_ngrams_found_in_training() -> None:
    train = list(range(100, 200))
    sample = [*range(150, 160), 1, 2, 3, 4, 5, 6, 7]  # 10 8-grams, 3 inside the copied run
    assert memorisation_score(sample, train) == {"longest_span": 10, "ngram_share": 3 / 10}


def test_sample_shorter_than_n_has_zero_ngram_share() -> None:
    assert memorisation_score([1, 2, 3], [1, 2, 3]) == {"longest_span": 3, "ngram_share": 0.0}


def test_unseen_sample_scores_zero() -> None:
    assert memorisation_score([9] * 20, [1, 2, 3] * 10) == {"longest_span": 0, "ngram_share": 0.0}


def test_empty_inputs_score_zero() -> None:
    assert memorisation_score([], [1, 2]) == {"longest_span": 0, "ngram_share": 0.0}
    assert memorisation_score([1, 2], []) == {"longest_span": 0, "ngram_share": 0.0}


def test_scores_match_brute_force_on_random_sequences() -> None:
    rng = random.Random(7)
    for _ in range(300):
        alphabet, n = rng.randint(1, 4), rng.randint(1, 4)
        train = [rng.randint(0, alphabet) for _ in range(rng.randint(1, 40))]
        sample = [rng.randint(0, alphabet) for _ in range(rng.randint(1, 12))]
        start = rng.randrange(len(train))
        sample[2:2] = train[start : start + rng.randint(0, 10)]
        assert memorisation_score(sample, train, n) == _brute_force(sample, train, n)


def test_million_token_training_stream_scores_within_two_seconds() -> None:
    rng = random.Random(1)
    train = [rng.randrange(50_000) for _ in range(1_000_000)]
    sample = train[500_000:500_030] + [rng.randrange(50_000) for _ in range(170)]
    started = time.perf_counter()
    score = memorisation_score(sample, train)
    assert time.perf_counter() - started < 2.0
    assert score["longest_span"] >= 30
    assert score["ngram_share"] == pytest.approx(23 / 193, abs=0.02)


def test_n_below_one_is_rejected() -> None:
    with pytest.raises(ValueError):
        memorisation_score([1], [1], n=0)
