"""Sampled metrics (``gru4rec.sampled_eval``) against a brute-force sampled ranking with the same negatives."""

from __future__ import annotations

import numpy as np
import pytest

from gru4rec.baselines import Markov, Pop
from gru4rec.evaluate import TIE_MODES, evaluate
from gru4rec.sampled_eval import (
    draw_negatives,
    evaluate_sampled,
    metrics_from_ranks,
    sampled_ranks,
    targets_in_data_order,
)
from tests.session_helpers import data_from_sessions

N_ITEMS = 30


def toy_scores(prefix: list) -> np.ndarray:
    """Scores of every item after a session prefix: integers in 0..4 (many ties), depending on the whole prefix."""
    j = np.arange(N_ITEMS)
    return ((sum(prefix) * 7 + prefix[-1] * 3 + j * 5) % 5).astype(np.float32)


class ToyScorer:
    """A stateful scorer over N_ITEMS items whose scores are :func:`toy_scores` of the lane's session so far."""

    n_items = N_ITEMS

    def start(self, batch_size):
        return [[] for _ in range(batch_size)]

    def reset(self, state, mask):
        return [[] if m else s for s, m in zip(state, mask)]

    def step(self, state, items):
        state = [s + [int(i)] for s, i in zip(state, items)]
        return np.stack([toy_scores(s) for s in state]), state


def random_sessions(rng, n_sessions=40):
    return [list(rng.integers(0, N_ITEMS, size=rng.integers(2, 9))) for _ in range(n_sessions)]


def brute_force_ranks(sessions, negatives, tie_mode):
    """Rank of each target among target + its negatives, counted one prediction at a time, by definition."""
    ranks, p = [], 0
    for items in sessions:
        for t in range(1, len(items)):
            scores = toy_scores(items[:t])
            target = scores[items[t]]
            others = [scores[j] for j in negatives[p]]
            greater = sum(s > target for s in others)
            ties = sum(s == target for s in others)
            if tie_mode == "conservative":
                ranks.append(greater + ties + 1)
            elif tie_mode == "median":
                ranks.append(greater + 1 + ties / 2)
            else:
                ranks.append(greater + 1)
            p += 1
    return np.asarray(ranks, dtype=np.float64)


@pytest.mark.parametrize("tie_mode", TIE_MODES)
@pytest.mark.parametrize("sampling", ["uniform", "popularity"])
def test_sampled_ranks_match_brute_force(tie_mode, sampling):
    rng = np.random.default_rng(3)
    sessions = random_sessions(rng)
    data = data_from_sessions(sessions, N_ITEMS)
    support = rng.integers(0, 20, size=N_ITEMS).astype(float)
    targets = targets_in_data_order(data)
    assert targets.tolist() == [i for s in sessions for i in s[1:]]
    negatives = draw_negatives(targets, N_ITEMS, 12, sampling, item_support=support, seed=11)
    expected = brute_force_ranks(sessions, negatives, tie_mode)
    for batch_size in (1, 7, 512):  # the lanes change nothing
        got = sampled_ranks(ToyScorer(), data, negatives, tie_mode=tie_mode, batch_size=batch_size)[0]
        np.testing.assert_array_equal(got, expected)
    # the metrics of evaluate_sampled are those of the brute-force ranks (same seed, same negatives)
    result = evaluate_sampled(ToyScorer(), data, 12, sampling, seed=11, cutoffs=(1, 3, 5), tie_mode=tie_mode,
                              item_support=support, batch_size=5)  # fmt: skip
    for k in (1, 3, 5):
        hit = expected < k if tie_mode == "seed" else expected <= k
        assert result[f"recall@{k}"] == pytest.approx(hit.mean())
        assert result[f"mrr@{k}"] == pytest.approx(np.where(hit, 1 / expected, 0).mean())
    assert result["protocol"] == {"sampled": 12, "sampling": sampling, "seed": 11}
    assert result["n_events"] == len(expected) and result["tie_mode"] == tie_mode


def test_nested_sizes_are_prefixes_of_one_draw():
    rng = np.random.default_rng(5)
    sessions = random_sessions(rng)
    data = data_from_sessions(sessions, N_ITEMS)
    negatives = draw_negatives(targets_in_data_order(data), N_ITEMS, 20, seed=2)
    ranks = sampled_ranks(ToyScorer(), data, negatives, sizes=[3, 10, 20])
    for row, n in zip(ranks, (3, 10, 20)):
        np.testing.assert_array_equal(row, brute_force_ranks(sessions, negatives[:, :n], "conservative"))
    # a draw of 10 with the same seed is the first 10 columns of the draw of 20
    np.testing.assert_array_equal(draw_negatives(targets_in_data_order(data), N_ITEMS, 10, seed=2), negatives[:, :10])
    assert (np.diff(ranks, axis=0) >= 0).all(), "more negatives can only push the target down"


@pytest.mark.parametrize("tie_mode", TIE_MODES)
def test_every_other_item_sampled_is_the_full_catalogue(tie_mode):
    rng = np.random.default_rng(8)
    data = data_from_sessions(random_sessions(rng), N_ITEMS)
    honest = evaluate(ToyScorer(), data, cutoffs=(1, 5, 10), tie_mode=tie_mode)
    sampled = evaluate_sampled(ToyScorer(), data, N_ITEMS - 1, cutoffs=(1, 5, 10), tie_mode=tie_mode)
    for k in (1, 5, 10):
        assert sampled[f"recall@{k}"] == pytest.approx(honest[f"recall@{k}"])
        assert sampled[f"mrr@{k}"] == pytest.approx(honest[f"mrr@{k}"])


def test_sampled_metrics_inflate_a_real_baseline():
    rng = np.random.default_rng(1)
    train = data_from_sessions([list(rng.integers(0, N_ITEMS, size=6)) for _ in range(200)], N_ITEMS)
    test = data_from_sessions(random_sessions(rng), N_ITEMS)
    model = Markov().fit(train)
    honest = evaluate(model, test, cutoffs=(5,))
    sampled = evaluate_sampled(model, test, 10, "uniform", seed=0, cutoffs=(5,))
    assert sampled["recall@5"] >= honest["recall@5"]
    # popularity sampling draws strong competitors for POP: it is harder on POP than uniform sampling
    pop = Pop().fit(train)
    uniform = evaluate_sampled(pop, test, 10, "uniform", seed=0, cutoffs=(5,))
    popular = evaluate_sampled(pop, test, 10, "popularity", seed=0, cutoffs=(5,))
    assert popular["recall@5"] < uniform["recall@5"]


def test_draw_negatives_properties():
    targets = np.array([0, 1, 2, 3, 4] * 400)
    negatives = draw_negatives(targets, 10, 4, "uniform", seed=0)
    assert negatives.shape == (2000, 4) and negatives.dtype == np.int32
    assert not (negatives == targets[:, None]).any(), "the target is never its own negative"
    assert all(len(set(row)) == 4 for row in negatives.tolist()), "no negative twice in a row"
    np.testing.assert_array_equal(negatives, draw_negatives(targets, 10, 4, "uniform", seed=0))
    assert not np.array_equal(negatives, draw_negatives(targets, 10, 4, "uniform", seed=1))
    # popularity: zero-support items never drawn; single draws proportional to the support
    support = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 100], dtype=float)
    first = draw_negatives(np.full(20000, 0), 10, 1, "popularity", item_support=support, seed=4)[:, 0]
    freq = np.bincount(first, minlength=10) / len(first)
    np.testing.assert_allclose(freq, support / support.sum(), atol=0.01)
    assert freq[0] == 0


def test_draw_negatives_errors():
    with pytest.raises(ValueError, match="only 9 other items"):
        draw_negatives(np.array([0]), 10, 10)
    with pytest.raises(ValueError, match="only 2 other items"):
        draw_negatives(np.array([0]), 4, 3, "popularity", item_support=np.array([1.0, 1.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="needs the training support"):
        draw_negatives(np.array([0]), 4, 1, "popularity")
    with pytest.raises(ValueError, match="unknown sampling"):
        draw_negatives(np.array([0]), 4, 1, "zipf")
    with pytest.raises(ValueError, match=">= 1"):
        draw_negatives(np.array([0]), 4, 0)


def test_nan_target_gets_the_worst_rank():
    class NanScorer(ToyScorer):
        def step(self, state, items):
            scores, state = super().step(state, items)
            return np.full_like(scores, np.nan), state

    data = data_from_sessions([[1, 2, 3]], N_ITEMS)
    negatives = draw_negatives(targets_in_data_order(data), N_ITEMS, 5)
    for mode in TIE_MODES:
        np.testing.assert_array_equal(sampled_ranks(NanScorer(), data, negatives, tie_mode=mode)[0], [6.0, 6.0])


def test_metrics_from_ranks_seed_count():
    ranks = np.array([1.0, 5.0, 6.0])
    assert metrics_from_ranks(ranks, (5,), "conservative")["recall@5"] == pytest.approx(2 / 3)
    assert metrics_from_ranks(ranks, (5,), "seed")["recall@5"] == pytest.approx(1 / 3)


class TimedScorer(ToyScorer):
    """Scores that also depend on the time of the event being predicted (as session-rec's STAN does)."""

    needs_times = True

    def step(self, state, items, times):
        scores, state = super().step(state, items)
        return scores + (np.asarray(times) % 3)[:, None] * (np.arange(N_ITEMS) % 2)[None, :], state


def test_a_scorer_that_needs_times_gets_the_time_of_the_predicted_event():
    rng = np.random.default_rng(9)
    sessions = random_sessions(rng)
    data = data_from_sessions(sessions, N_ITEMS)  # event j of session s at time 10 s + j
    negatives = draw_negatives(targets_in_data_order(data), N_ITEMS, 8, seed=1)
    expected, p = [], 0
    for s, items in enumerate(sessions):
        for t in range(1, len(items)):
            scores = toy_scores(items[:t]) + ((10.0 * s + t) % 3) * (np.arange(N_ITEMS) % 2)
            target = scores[items[t]]
            expected.append(sum(scores[j] >= target for j in negatives[p]) + 1)
            p += 1
    for batch_size in (1, 6):
        got = sampled_ranks(TimedScorer(), data, negatives, batch_size=batch_size)[0]
        np.testing.assert_array_equal(got, expected)
