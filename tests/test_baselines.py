"""Baselines against naive per-session computations, and through the evaluator."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pandas as pd
import pytest
from session_helpers import data_from_sessions

from gru4rec.baselines import BASELINES, ItemKNN, Markov, Pop, SessionPop, SparseRows, make_baseline
from gru4rec.evaluate import evaluate
from gru4rec.session_data import ItemMap, SessionData


def random_sessions(n_sessions, n_items, seed, max_len=9):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        start = rng.uniform(0, 1000)
        # skewed item popularity, and repeats inside sessions
        for j in range(int(rng.integers(2, max_len))):
            rows.append((s + 1, int(min(rng.zipf(1.5), n_items) - 1), start + j))
    frame = pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])
    return SessionData.from_frame(frame, ItemMap(np.arange(n_items)))


def one_step(scorer, items, state=None):
    state = scorer.start(len(items)) if state is None else state
    scores, state = scorer.step(state, np.asarray(items, dtype=np.int32))
    return np.asarray(scores), state


def test_pop_ranks_by_training_support():
    train = data_from_sessions([[0, 1, 1], [1, 2], [2, 1]], 4)
    pop = Pop().fit(train)
    scores, _ = one_step(pop, [0, 3])
    assert scores.shape == (2, 4)
    assert list(np.argsort(-scores[0], kind="stable")) == [1, 2, 0, 3]
    np.testing.assert_array_equal(scores[0], scores[1])


def test_session_pop_counts_session_clicks_and_breaks_ties_by_popularity():
    train = data_from_sessions([[0, 1, 1], [1, 2], [2, 1]], 4)
    spop = SessionPop().fit(train)
    state = spop.start(2)
    s1, state = spop.step(state, np.array([3, 0], np.int32))
    s2, state = spop.step(state, np.array([3, 2], np.int32))
    assert np.argmax(s2[0]) == 3  # clicked twice
    assert list(np.argsort(-s2[1], kind="stable"))[:2] == [2, 0]  # equal counts (1 each): popularity decides
    assert list(np.argsort(-s2[1], kind="stable"))[2] == 1  # then popularity alone
    state = spop.reset(state, np.array([True, False]))
    s3, _ = spop.step(state, np.array([0, 2], np.int32))
    assert s3[0, 3] < 1 and s3[0, 0] > 1  # the session of lane 0 was forgotten
    assert s3[1, 2] > 2


def naive_itemknn(train, n_items, lmbd, alpha):
    sessions = [set(train.session(s).tolist()) for s in range(train.n_sessions)]
    supp = Counter(i for s in sessions for i in s)
    cooc = defaultdict(float)
    for s in sessions:
        for a in s:
            for b in s:
                if a != b:
                    cooc[a, b] += 1
    sims = np.zeros((n_items, n_items))
    for (a, b), c in cooc.items():
        sims[a, b] = c / ((supp[a] + lmbd) ** alpha * (supp[b] + lmbd) ** (1 - alpha))
    return sims


@pytest.mark.parametrize("alpha,lmbd", [(0.5, 20.0), (0.7, 0.0)])
@pytest.mark.parametrize("chunk", [10, 20_000_000])
def test_itemknn_matches_naive_cooccurrence(alpha, lmbd, chunk):
    n_items = 25
    train = random_sessions(80, n_items, seed=1)
    knn = ItemKNN(n_sims=1000, lmbd=lmbd, alpha=alpha, tie_breaker=False).fit(train, max_pairs_per_chunk=chunk)
    want = naive_itemknn(train, n_items, lmbd, alpha)
    got, _ = one_step(knn, np.arange(n_items))
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_itemknn_keeps_top_neighbours_and_breaks_ties_by_popularity():
    n_items = 30
    train = random_sessions(200, n_items, seed=2)
    full = ItemKNN(n_sims=1000, tie_breaker=False).fit(train)
    top3 = ItemKNN(n_sims=3, tie_breaker=False).fit(train)
    with_pop = ItemKNN(n_sims=3, tie_breaker=True).fit(train)
    items = np.arange(n_items)
    f, _ = one_step(full, items)
    t, _ = one_step(top3, items)
    p, _ = one_step(with_pop, items)
    for i in items:
        kept = np.flatnonzero(t[i])
        assert len(kept) == min(3, np.count_nonzero(f[i]))
        assert np.all(f[i, kept] >= np.sort(f[i])[::-1][len(kept) - 1])
        # same neighbours first, the rest in order of popularity, all below the neighbours
        order = np.argsort(-p[i], kind="stable")
        assert set(order[: len(kept)]) == set(kept)
        rest = order[len(kept):]
        supp = train.item_counts
        assert np.all(np.diff(supp[rest]) <= 0)
        assert p[i, rest].max() < p[i, kept].min()


def naive_rules(train, n_items, window):
    w = np.zeros((n_items, n_items))
    for s in range(train.n_sessions):
        items = train.session(s)
        for p in range(len(items)):
            for gap in range(1, window + 1):
                if p + gap < len(items):
                    w[items[p], items[p + gap]] += 1.0 / gap
    return w


@pytest.mark.parametrize("window", [1, 3])
def test_markov_and_sequential_rules_match_naive(window):
    n_items = 20
    train = random_sessions(60, n_items, seed=3)
    markov = Markov(window=window, tie_breaker=False).fit(train)
    got, _ = one_step(markov, np.arange(n_items))
    np.testing.assert_allclose(got, naive_rules(train, n_items, window), rtol=1e-12)


def test_markov_transition_order_equals_probability_order():
    train = data_from_sessions([[0, 1], [0, 1], [0, 2], [3, 0, 2], [0, 1]], 4)
    scores, _ = one_step(Markov().fit(train), [0])
    assert list(np.argsort(-scores[0], kind="stable"))[:2] == [1, 2]


def test_sparse_rows_from_pairs_sums_duplicates():
    m = SparseRows.from_pairs(np.array([2, 0, 2, 2]), np.array([1, 3, 1, 0]), np.array([1.0, 2.0, 3.0, 4.0]), 4)
    assert m.offsets.tolist() == [0, 1, 1, 3, 3]
    cols, vals = m.row(2)
    assert cols.tolist() == [0, 1] and vals.tolist() == [4.0, 4.0]


@pytest.mark.parametrize("method", list(BASELINES))
def test_every_baseline_runs_through_the_evaluator(method):
    train = random_sessions(150, 40, seed=4)
    test = random_sessions(12, 40, seed=5)
    scorer = make_baseline(method, train)
    res = evaluate(scorer, test, cutoffs=(1, 5, 20), batch_size=5)
    assert res["n_events"] == test.n_pairs
    assert 0.0 <= res["recall@1"] <= res["recall@5"] <= res["recall@20"] <= 1.0
    assert "popularity@20" in res  # baselines know their training support
    same = evaluate(scorer, test, cutoffs=(1, 5, 20), batch_size=512)
    assert same["recall@20"] == res["recall@20"] and same["mrr@20"] == pytest.approx(res["mrr@20"])


def test_baselines_beat_pop_where_sequence_matters():
    # a deterministic cycle: item i is always followed by item i + 1
    n_items = 30
    sessions = [[(s + j) % n_items for j in range(6)] for s in range(120)]
    train = data_from_sessions(sessions, n_items)
    test = data_from_sessions([[(s * 7 + j) % n_items for j in range(5)] for s in range(10)], n_items)
    markov = evaluate(make_baseline("markov", train), test, cutoffs=(1,))
    pop = evaluate(make_baseline("pop", train), test, cutoffs=(1,))
    assert markov["recall@1"] == 1.0
    assert pop["recall@1"] < 0.2


def test_unknown_method_and_bad_params():
    train = random_sessions(10, 10, seed=6)
    with pytest.raises(ValueError, match="unknown baseline"):
        make_baseline("bpr", train)
    with pytest.raises(ValueError):
        ItemKNN(n_sims=0)
    with pytest.raises(ValueError):
        Markov(window=0)


@pytest.mark.parametrize(
    "cls, params, name",
    [(ItemKNN, {"lmbd": float("nan")}, "lmbd"), (ItemKNN, {"lmbd": float("inf")}, "lmbd"),
     (ItemKNN, {"alpha": float("nan")}, "alpha"), (ItemKNN, {"n_sims": 2.5}, "n_sims"),
     (ItemKNN, {"n_sims": True}, "n_sims"), (ItemKNN, {"tie_breaker": 1}, "tie_breaker"),
     (Markov, {"window": 1.5}, "window"), (Markov, {"window": True}, "window"),
     (Markov, {"window": float("inf")}, "window")],
)  # fmt: skip
def test_baseline_params_are_checked_by_type_and_finite(cls, params, name):
    with pytest.raises(ValueError, match=name):
        cls(**params)


def test_markov_window_beyond_the_longest_session_is_the_longest_session(monkeypatch):
    train = random_sessions(60, 20, seed=7, max_len=6)  # sessions of at most 5 events: gaps of at most 4
    longest = int(train.session_lengths.max())
    want, _ = one_step(Markov(window=longest - 1, tie_breaker=False).fit(train), np.arange(20))
    calls = []
    real_from_pairs = SparseRows.from_pairs

    def counting(rows, columns, weights, n):
        calls.append(len(rows))
        return real_from_pairs(rows, columns, weights, n)

    monkeypatch.setattr(SparseRows, "from_pairs", staticmethod(counting))
    huge = Markov(window=10_000, tie_breaker=False)  # (1e9: the CLI test, under a memory limit)
    got, _ = one_step(huge.fit(train), np.arange(20))
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got, naive_rules(train, 20, 1_000), rtol=1e-12)
    pairs = int((train.session_lengths * (train.session_lengths - 1) // 2).sum())  # every pair of a session, once
    assert huge.params()["window"] == 10_000 and calls == [pairs]
