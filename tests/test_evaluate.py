"""The evaluator against a brute-force numpy ranking, plus hand-made tie, cut-off and edge cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from session_helpers import data_from_sessions

from gru4rec.evaluate import (
    NextItemScorer,
    evaluate,
    lane_positions,
    metrics_only,
    top_k_indices,
)
from gru4rec.session_data import ItemMap, SessionData


class ToyRNN:
    """A small random recurrent scorer in numpy: h' = tanh(h W + E[item]), scores = h' O^T (+ optional rounding)."""

    def __init__(self, n_items: int, units: int = 8, seed: int = 0, decimals: int | None = None):
        rng = np.random.default_rng(seed)
        self.n_items = n_items
        self.E = rng.normal(size=(n_items, units))
        self.W = rng.normal(size=(units, units)) * 0.5
        self.O = rng.normal(size=(n_items, units))
        self.decimals = decimals  # rounding the scores makes many ties

    def start(self, batch_size):
        return np.zeros((batch_size, self.E.shape[1]))

    def reset(self, state, mask):
        return np.where(mask[:, None], 0.0, state)

    def select(self, state, rows):  # lets the evaluator drop finished lanes
        return state[rows]

    def step(self, state, items):
        state = np.tanh(state @ self.W + self.E[items])
        scores = state @ self.O.T
        if self.decimals is not None:
            scores = np.round(scores, self.decimals)
        return scores, state


class TableScorer:
    """Scores that depend only on the last item: ``table[item]`` (hand-made cases)."""

    def __init__(self, table):
        self.table = np.asarray(table, dtype=np.float64)
        self.n_items = self.table.shape[1]

    def start(self, batch_size):
        return None

    def reset(self, state, mask):
        return state

    def step(self, state, items):
        return self.table[items], state


def random_sessions(n_sessions, n_items, seed, max_len=9):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        start = rng.uniform(0, 1000)
        for j in range(int(rng.integers(2, max_len))):
            rows.append((s + 1, int(rng.integers(0, n_items)), start + j))
    frame = pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])
    return SessionData.from_frame(frame, ItemMap(np.arange(n_items)))


def brute_force(scorer, data, cutoffs, tie_mode, support=None):
    """One session at a time, one event at a time, ranks by the textbook definitions."""
    ranks, tops = [], []
    for s in range(data.n_sessions):
        items = data.session(s)
        state = scorer.start(1)
        for j in range(len(items) - 1):
            scores, state = scorer.step(state, items[j : j + 1])
            row = np.asarray(scores)[0]
            target = row[items[j + 1]]
            others = np.delete(row, items[j + 1])
            greater = int((others > target).sum())
            ties = int((others == target).sum())
            if np.isnan(target):
                rank = float(data.n_items)
            elif tie_mode in ("standard", "seed"):
                rank = 1.0 + greater
            elif tie_mode == "conservative":
                rank = 1.0 + greater + ties
            else:
                rank = 1.0 + greater + ties / 2.0
            ranks.append(rank)
            tops.append(np.argsort(-row, kind="stable"))
    ranks = np.asarray(ranks)
    out = {}
    for k in cutoffs:
        hit = ranks < k if tie_mode == "seed" else ranks <= k
        out[f"recall@{k}"] = hit.mean()
        out[f"mrr@{k}"] = np.where(hit, 1.0 / ranks, 0.0).mean()
        out[f"coverage@{k}"] = len(np.unique(np.concatenate([t[:k] for t in tops]))) / data.n_items
        if support is not None:
            pop = support / support.max()
            out[f"popularity@{k}"] = np.mean([pop[t[:k]].mean() for t in tops])
    return out, ranks


@pytest.mark.parametrize("tie_mode", ["conservative", "standard", "median", "seed"])
@pytest.mark.parametrize("batch_size", [1, 7, 512])
def test_matches_brute_force_numpy_ranking(tie_mode, batch_size):
    data = random_sessions(40, 60, seed=1)
    scorer = ToyRNN(60, seed=2)
    support = np.arange(60, dtype=float) + 1
    cutoffs = (1, 3, 5, 20)
    got = evaluate(scorer, data, cutoffs, tie_mode, batch_size, item_support=support, return_ranks=True)
    want, ranks = brute_force(scorer, data, cutoffs, tie_mode, support)
    assert got["n_events"] == len(ranks) == data.n_pairs
    np.testing.assert_array_equal(got["ranks"], ranks)
    for key, value in want.items():
        if key.startswith("coverage"):
            continue  # the random model has no ties in its top lists, but checked separately below
        assert got[key] == pytest.approx(value, abs=1e-12), key
    for k in cutoffs:
        assert got[f"coverage@{k}"] == pytest.approx(want[f"coverage@{k}"])
    # without per-event ranks the evaluator takes the ranks from the top k + 1 list: same numbers
    fast = evaluate(scorer, data, cutoffs, tie_mode, batch_size, item_support=support)
    assert metrics_only(fast) == metrics_only(got)


@pytest.mark.parametrize("tie_mode", ["conservative", "standard", "median", "seed"])
def test_many_ties_match_brute_force(tie_mode):
    data = random_sessions(30, 50, seed=3)
    scorer = ToyRNN(50, seed=4, decimals=0)  # rounded scores: lots of ties, including with the target
    got = evaluate(scorer, data, (1, 5, 10), tie_mode, batch_size=8, return_ranks=True)
    _, ranks = brute_force(scorer, data, (1, 5, 10), tie_mode)
    np.testing.assert_array_equal(got["ranks"], ranks)
    fast = evaluate(scorer, data, (1, 5, 10), tie_mode, batch_size=8)
    for k in (1, 5, 10):
        hit = ranks < k if tie_mode == "seed" else ranks <= k
        assert got[f"recall@{k}"] == pytest.approx(hit.mean())
        assert fast[f"recall@{k}"] == got[f"recall@{k}"]
        assert fast[f"mrr@{k}"] == pytest.approx(got[f"mrr@{k}"], abs=1e-15)


def test_hand_made_ties_and_cutoffs():
    # After item 1 the scores are [0.5, 0.9, 0.5, 0.5, 0.1]; the true next item is 0.
    # one score above the target, two ties besides the target itself.
    table = np.zeros((5, 5))
    table[1] = [0.5, 0.9, 0.5, 0.5, 0.1]
    data = data_from_sessions([[1, 0]], 5)
    expected_rank = {"standard": 2.0, "conservative": 4.0, "median": 3.0, "seed": 2.0}
    for mode, rank in expected_rank.items():
        res = evaluate(TableScorer(table), data, cutoffs=(1, 2, 3, 4), tie_mode=mode, return_ranks=True)
        assert res["ranks"].tolist() == [rank]
        for k in (1, 2, 3, 4):
            hit = rank < k if mode == "seed" else rank <= k
            assert res[f"recall@{k}"] == (1.0 if hit else 0.0), (mode, k)
            assert res[f"mrr@{k}"] == pytest.approx(1.0 / rank if hit else 0.0)
    # rank == K is a hit (<= K), except for the seed's counting (< K)
    assert evaluate(TableScorer(table), data, cutoffs=(4,))["recall@4"] == 1.0
    assert evaluate(TableScorer(table), data, cutoffs=(2,), tie_mode="standard")["recall@2"] == 1.0
    assert evaluate(TableScorer(table), data, cutoffs=(2,), tie_mode="seed")["recall@2"] == 0.0


def test_constant_scores_flatter_only_under_optimistic_counting():
    table = np.zeros((30, 30))  # a "model" that gives every item the same score
    data = random_sessions(20, 30, seed=5)
    conservative = evaluate(TableScorer(table), data, cutoffs=(20,))
    standard = evaluate(TableScorer(table), data, cutoffs=(20,), tie_mode="standard")
    median = evaluate(TableScorer(table), data, cutoffs=(10, 20), tie_mode="median")
    assert conservative["recall@20"] == 0.0  # every item ties: rank 30
    assert standard["recall@20"] == 1.0 and standard["mrr@20"] == 1.0  # rank 1 for everything
    assert median["recall@10"] == 0.0  # rank (1 + 30) / 2 = 15.5
    assert median["recall@20"] == 1.0 and median["mrr@20"] == pytest.approx(1 / 15.5)
    assert evaluate(TableScorer(table), data, cutoffs=(20,), tie_mode="seed")["recall@20"] == 1.0


def test_nan_target_is_a_miss():
    table = np.full((4, 4), np.nan)
    data = data_from_sessions([[0, 1, 2]], 4)
    for mode in ("conservative", "standard", "median", "seed"):
        res = evaluate(TableScorer(table), data, cutoffs=(1, 3), tie_mode=mode, return_ranks=True)
        assert res["recall@3"] == 0.0 and res["mrr@3"] == 0.0
        assert res["ranks"].tolist() == [4.0, 4.0]


def test_fewer_sessions_than_batch_and_idle_lanes():
    data = random_sessions(3, 20, seed=6)
    scorer = ToyRNN(20, seed=7)
    small = evaluate(scorer, data, batch_size=512, return_ranks=True)
    one = evaluate(scorer, data, batch_size=1, return_ranks=True)
    two = evaluate(scorer, data, batch_size=2, return_ranks=True)  # one lane idles at the end
    assert small["n_sessions"] == 3 and small["batch_size"] == 512
    assert metrics_only(small) | {"batch_size": 0} == metrics_only(one) | {"batch_size": 0}
    np.testing.assert_array_equal(small["ranks"], two["ranks"])


def test_unknown_items_dropped_and_counted():
    train_map = ItemMap(np.array([10, 20, 30, 40]))
    frame = pd.DataFrame(
        {
            "SessionId": [1, 1, 1, 2, 2, 3, 3],
            "ItemId": [10, 99, 20, 30, 98, 40, 10],
            "Time": [0.0, 1, 2, 3, 4, 5, 6],
        }
    )
    data = SessionData.from_frame(frame, train_map)
    res = evaluate(TableScorer(np.eye(4)), data, cutoffs=(1,))
    assert res["n_dropped_unknown"] == 2
    assert res["n_sessions"] == 2  # session 2 is left with one event and removed
    assert res["n_events"] == 2


class NoSelect:
    """A scorer without the optional ``select``: every step scores the full batch."""

    def __init__(self, inner):
        self.inner, self.n_items = inner, inner.n_items
        self.widths = []

    def start(self, batch_size):
        return self.inner.start(batch_size)

    def reset(self, state, mask):
        return self.inner.reset(state, mask)

    def step(self, state, items):
        self.widths.append(len(items))
        return self.inner.step(state, items)


def test_dropping_finished_lanes_changes_nothing_but_the_work():
    rng = np.random.default_rng(15)
    sessions = [list(rng.integers(0, 40, 40))] + [list(rng.integers(0, 40, 3)) for _ in range(30)]
    data = data_from_sessions(sessions, 40)  # one long session keeps a lane busy long after the others
    scorer = ToyRNN(40, seed=16)
    widths = []
    original_step = scorer.step

    def counting_step(state, items):
        widths.append(len(items))
        return original_step(state, items)

    scorer.step = counting_step
    compact = evaluate(scorer, data, batch_size=8, return_ranks=True)
    plain_scorer = NoSelect(ToyRNN(40, seed=16))
    plain = evaluate(plain_scorer, data, batch_size=8, return_ranks=True)
    np.testing.assert_array_equal(compact["ranks"], plain["ranks"])
    assert metrics_only(compact) == metrics_only(plain)
    assert sum(widths) < sum(plain_scorer.widths) / 2 and widths[-1] == 1


def test_positions_and_session_index_for_plots():
    data = data_from_sessions([[0, 1, 2, 3], [4, 5], [1, 2, 3]], 6)
    res = evaluate(ToyRNN(6), data, batch_size=2, return_ranks=True)
    assert res["positions"].tolist() == [0, 1, 2, 0, 0, 1]
    assert res["session_index"].tolist() == [0, 0, 0, 1, 2, 2]


def test_incompatible_item_map_is_refused():
    data = random_sessions(5, 10, seed=8)
    with pytest.raises(ValueError, match="item map"):
        evaluate(ToyRNN(12), data)
    scorer = ToyRNN(10)
    scorer.item_map = ItemMap(np.arange(10) + 1)
    with pytest.raises(ValueError, match="item map"):
        evaluate(scorer, data)


def test_bad_settings_are_refused():
    data = random_sessions(5, 10, seed=8)
    with pytest.raises(ValueError, match="tie_mode"):
        evaluate(ToyRNN(10), data, tie_mode="optimistic")
    with pytest.raises(ValueError, match="cutoffs"):
        evaluate(ToyRNN(10), data, cutoffs=(0, 5))
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(ToyRNN(10), data, batch_size=0)


def test_result_keys():
    data = random_sessions(5, 10, seed=9)
    res = evaluate(ToyRNN(10), data, cutoffs=(20, 5))
    assert res["cutoffs"] == [5, 20]
    for key in ("recall@5", "mrr@20", "coverage@20", "n_events", "n_sessions", "n_dropped_unknown", "tie_mode"):
        assert key in res
    assert "popularity@5" not in res  # no item support known
    assert res["coverage@20"] == 1.0  # 20 > 10 items: everything is in every list
    assert isinstance(ToyRNN(3), NextItemScorer)


@pytest.mark.parametrize("n_items,k", [(37, 5), (1000, 20), (1000, 1), (1030, 20), (64 * 21, 20), (10, 10)])
def test_top_k_indices_exact(n_items, k):
    rng = np.random.default_rng(n_items + k)
    scores = rng.normal(size=(17, n_items))
    got = top_k_indices(scores, k)
    want = np.argsort(-scores, axis=1)[:, :k]
    np.testing.assert_array_equal(got, want)
    # all the best items in one block, and in the tail that does not fill a block
    scores[:, 64:64 + k] += 100.0
    np.testing.assert_array_equal(top_k_indices(scores, k), np.argsort(-scores, axis=1)[:, :k])
    scores[:, -k:] += 1000.0
    np.testing.assert_array_equal(top_k_indices(scores, k), np.argsort(-scores, axis=1)[:, :k])


def test_top_k_indices_with_ties_gives_the_best_values():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(9, 2000)).astype(np.float32)  # every value repeated hundreds of times
    scores[:, rng.integers(0, 2000, 5)] = 7.0
    got = top_k_indices(scores, 20)
    want = -np.sort(-scores, axis=1)[:, :20]
    np.testing.assert_array_equal(np.take_along_axis(scores, got, axis=1), want)
    assert all(len(set(row)) == 20 for row in got.tolist())


def test_lane_positions():
    resets = np.array([[1, 1], [0, 0], [1, 0], [0, 1]], dtype=bool)
    assert lane_positions(resets).tolist() == [[0, 0], [1, 1], [0, 2], [1, 0]]


@pytest.mark.parametrize("tie_mode", ["conservative", "median", "seed"])
def test_tensorflow_ranker_agrees_with_numpy(tie_mode):
    tf = pytest.importorskip("tensorflow")

    class TFToy(ToyRNN):
        def step(self, state, items):
            scores, state = super().step(state, items)
            return tf.constant(scores, tf.float32), state

    data = random_sessions(25, 300, seed=10)
    scorer = TFToy(300, seed=11, decimals=1)
    a = evaluate(scorer, data, (1, 5, 20), tie_mode, batch_size=6, ranker="tf", return_ranks=True)
    b = evaluate(scorer, data, (1, 5, 20), tie_mode, batch_size=6, ranker="numpy", return_ranks=True)
    np.testing.assert_array_equal(a["ranks"], b["ranks"])
    for k in (1, 5, 20):
        assert a[f"recall@{k}"] == b[f"recall@{k}"]
        assert a[f"mrr@{k}"] == pytest.approx(b[f"mrr@{k}"])


@pytest.mark.parametrize("tie_mode", ["conservative", "standard"])
def test_large_catalogue_uses_block_pruning_and_still_matches(tie_mode):
    data = random_sessions(12, 3000, seed=12)
    scorer = ToyRNN(3000, seed=13, decimals=1)  # ties across the catalogue
    got = evaluate(scorer, data, (1, 10, 20), tie_mode, batch_size=5)
    want, _ = brute_force(scorer, data, (1, 10, 20), tie_mode)
    for k in (1, 10, 20):
        assert got[f"recall@{k}"] == pytest.approx(want[f"recall@{k}"])
        assert got[f"mrr@{k}"] == pytest.approx(want[f"mrr@{k}"])


@pytest.mark.parametrize("output", ["numpy", "tf"])
def test_gru4rec_scorer_matches_brute_force_of_the_model(output):
    tf = pytest.importorskip("tensorflow")
    from gru4rec.config import Config
    from gru4rec.evaluate import GRU4RecScorer
    from gru4rec.model import GRU4RecModel

    n_items = 200
    model = GRU4RecModel(n_items, Config(layers=(16, 8), constrained_embedding=False, embedding=0, seed=3))
    model.By.assign(np.random.default_rng(0).normal(size=n_items).astype(np.float32))
    data = random_sessions(15, n_items, seed=14)

    class Naive:  # the model step by step, one session at a time, scores copied to numpy
        def __init__(self):
            self.n_items = n_items

        def start(self, batch_size):
            return model.initial_state(batch_size)

        def step(self, state, items):
            hidden, state = model.step(tf.constant(items, tf.int32), state)
            return model.score_all(hidden).numpy(), state

    scorer = GRU4RecScorer(model, item_map=data.item_map, output=output)
    got = evaluate(scorer, data, (1, 5, 20), batch_size=4, return_ranks=True)
    want, ranks = brute_force(Naive(), data, (1, 5, 20), "conservative")
    # float32 rounding of the numpy output product may flip near-ties; allow none here (no exact ties by design)
    np.testing.assert_array_equal(got["ranks"], ranks)
    for k in (1, 5, 20):
        assert got[f"recall@{k}"] == pytest.approx(want[f"recall@{k}"])
        assert got[f"mrr@{k}"] == pytest.approx(want[f"mrr@{k}"])


class NaNToy(ToyRNN):
    """ToyRNN whose scores hold NaN (and +-inf) at random places: a broken scorer the evaluator must rank as the
    brute force does (NaN is the worst score, a NaN target is a miss)."""

    def __init__(self, n_items, seed, nan_share, rows_all_nan=False, infinities=False):
        super().__init__(n_items, seed=seed, decimals=1)
        self.rng = np.random.default_rng(seed + 100)
        self.nan_share, self.rows_all_nan, self.infinities = nan_share, rows_all_nan, infinities

    def step(self, state, items):
        scores, state = super().step(state, items)
        mask = self.rng.random(scores.shape) < self.nan_share
        scores = np.where(mask, np.nan, scores)
        if self.rows_all_nan:  # every other row: NaN everywhere but a few items
            keep = self.rng.random(scores.shape) < 0.01
            scores[::2] = np.where(keep[::2], scores[::2], np.nan)
        if self.infinities:
            scores[self.rng.random(scores.shape) < 0.01] = -np.inf
            scores[self.rng.random(scores.shape) < 0.005] = np.inf
        return scores, state


@pytest.mark.parametrize("tie_mode", ["conservative", "standard", "median", "seed"])
@pytest.mark.parametrize(
    "n_items, nan_share, all_nan, inf",
    [(60, 0.3, False, False), (3000, 0.05, True, True), (3000, 0.0, True, False), (40, 0.9, False, True)],
)
def test_nan_scores_never_count_as_hits_and_match_brute_force(tie_mode, n_items, nan_share, all_nan, inf):
    data = random_sessions(15, n_items, seed=20)
    # fix the broken scores per (item) so the evaluator's lanes and the brute force see the same numbers
    table = NaNToy(n_items, seed=21, nan_share=nan_share, rows_all_nan=all_nan, infinities=inf).step(
        np.zeros((n_items, 8)), np.arange(n_items))[0]  # fmt: skip
    scorer = TableScorer(table)
    want, ranks = brute_force(scorer, data, (1, 5, 20), tie_mode)
    exact = evaluate(scorer, data, (1, 5, 20), tie_mode, batch_size=4, return_ranks=True)
    fast = evaluate(scorer, data, (1, 5, 20), tie_mode, batch_size=4)
    np.testing.assert_array_equal(exact["ranks"], ranks)
    assert np.all(exact["ranks"] >= 1)
    for result in (exact, fast):
        for k in (1, 5, 20):
            assert result[f"recall@{k}"] == pytest.approx(want[f"recall@{k}"]), (k, result is fast)
            assert result[f"mrr@{k}"] == pytest.approx(want[f"mrr@{k}"]), (k, result is fast)
            assert np.isfinite(result[f"mrr@{k}"]) and result[f"mrr@{k}"] <= 1.0


def test_ranks_from_top_and_top_k_put_nan_last():
    from gru4rec.evaluate import count_above, ranks_from_top

    # the top K+1 scores all NaN, the target a number: once rank 0, i.e. a hit with 1/rank = inf
    scores = np.array([[np.nan, np.nan, np.nan, 0.5, 0.2, 0.1]])
    top = top_k_indices(scores, 3)
    assert top[0].tolist() == [3, 4, 5]  # NaN after every number
    targets = np.array([4])
    assert count_above(scores, targets, "conservative")[1].tolist() == [2.0]  # NaN competitors below the target
    for mode in ("conservative", "standard"):
        rank = ranks_from_top(scores[:, :3], scores[0, targets], mode)[0]  # once 0: a hit with 1/rank = inf
        assert np.isnan(rank) and not rank <= 20  # "count this row over every item", never a hit
        assert ranks_from_top(scores[:, top[0]], scores[0, targets], mode)[0] == 2.0
    nan_target = np.array([[0.1, 0.2, np.nan]])
    for mode in ("conservative", "standard"):
        assert ranks_from_top(nan_target, nan_target[:, 2], mode)[0] == np.inf
        assert count_above(nan_target, np.array([2]), mode)[1].tolist() == [3.0]


def test_nan_scores_give_the_same_ranks_on_the_tensorflow_ranker():
    tf = pytest.importorskip("tensorflow")
    data = random_sessions(10, 200, seed=22)
    table = NaNToy(200, seed=23, nan_share=0.5, rows_all_nan=True).step(np.zeros((200, 8)), np.arange(200))[0]

    class TFTable(TableScorer):
        def step(self, state, items):
            return tf.constant(self.table[items], tf.float64), state

    a = evaluate(TFTable(table), data, (1, 5, 20), "standard", batch_size=3, ranker="tf", return_ranks=True)
    b = evaluate(TableScorer(table), data, (1, 5, 20), "standard", batch_size=3, ranker="numpy", return_ranks=True)
    np.testing.assert_array_equal(a["ranks"], b["ranks"])  # (coverage may differ: NaN items tie, broken arbitrarily)
