"""SR, SKNN, V-SKNN and STAN: against rn5l/session-rec's own numbers, against brute-force definitions, and through
the evaluator and the CLI.

``tests/fixtures/session_rec_tiny.json`` holds session-rec's per-event ranks and scores on ``data/tiny`` (how they
were made: the file's ``note`` and ``source``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gru4rec import io as gio
from gru4rec.baselines import BASELINES, STAN, VSKNN, SequentialRules, SessionKNN, make_baseline
from gru4rec.cli import main
from gru4rec.evaluate import evaluate
from gru4rec.session_data import SessionData

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "data" / "tiny" / "rsc15_train_full.txt"
TEST = ROOT / "data" / "tiny" / "rsc15_test.txt"
FIXTURE = json.loads((ROOT / "tests" / "fixtures" / "session_rec_tiny.json").read_text())
CONFIGS = FIXTURE["configs"]
# configurations where no tie is left to Python's set order (no neighbour cut among equal similarities): exact
EXACT = ["sr", "sr_steps3_div_pruning5", "sknn_no_cut", "vsknn", "stan", "stan_k10_sample40"]
# configurations with a cut at the k-th neighbour among equal similarities (session-rec: set order; kit: recency)
TIE_CUT = ["sknn", "sknn_k10_sample40", "vsknn_k10_sample40"]


@pytest.fixture(scope="module")
def tiny():
    train = SessionData.from_frame(gio.read_sessions(TRAIN))
    test = SessionData.from_frame(gio.read_sessions(TEST), train.item_map)
    return train, test


def _fitted(name: str, train: SessionData):
    config = CONFIGS[name]
    return make_baseline(config["method"], train, **config["params"])


def _ranks_in_session_rec_order(result: dict, test: SessionData) -> np.ndarray:
    """The evaluator's per-prediction ranks reordered as session-rec walks the test set (SessionId, then time)."""
    session_ids = test.session_ids[result["session_index"]]
    return result["ranks"][np.lexsort((result["positions"], session_ids))]


def test_fixture_events_are_the_kits_predictions(tiny):
    _, test = tiny
    order = np.argsort(test.session_ids, kind="stable")
    sessions, targets = [], []
    for s in order:
        items = test.item_map.ids[test.session(s)]
        sessions += [int(test.session_ids[s])] * (len(items) - 1)
        targets += [int(i) for i in items[1:]]
    assert sessions == FIXTURE["events"]["session"] and targets == FIXTURE["events"]["target"]


@pytest.mark.parametrize("name", EXACT)
def test_ranks_equal_session_rec(tiny, name):
    train, test = tiny
    scorer = _fitted(name, train)
    config = CONFIGS[name]
    for mode in ("conservative", "standard"):
        result = evaluate(scorer, test, cutoffs=(20,), tie_mode=mode, return_ranks=True)
        ranks = _ranks_in_session_rec_order(result, test)
        np.testing.assert_array_equal(ranks, np.asarray(config[mode], dtype=np.float64))
    result = evaluate(scorer, test, cutoffs=(20,))
    assert result["recall@20"] == pytest.approx(config["metrics"]["recall@20"], abs=1e-12)
    assert result["mrr@20"] == pytest.approx(config["metrics"]["mrr@20"], abs=1e-12)


@pytest.mark.parametrize("name", TIE_CUT)
def test_close_to_session_rec_where_the_kth_neighbour_is_a_tie(tiny, name):
    """Only the choice among equally similar neighbours at the k-th place differs (docs/baselines.md)."""
    train, test = tiny
    config = CONFIGS[name]
    result = evaluate(_fitted(name, train), test, cutoffs=(20,), return_ranks=True)
    ranks = _ranks_in_session_rec_order(result, test)
    assert np.mean(ranks == np.asarray(config["conservative"])) > 0.7
    assert abs(result["recall@20"] - config["metrics"]["recall@20"]) < 0.03
    assert abs(result["mrr@20"] - config["metrics"]["mrr@20"]) < 0.03


def _replay(scorer, data: SessionData, session: int) -> list[np.ndarray]:
    """The score rows of one session's predictions, lane by lane as the evaluator would (batch of 1)."""
    items = data.session(session)
    times = data.times[data.offsets[session] : data.offsets[session + 1]]
    state = scorer.start(1)
    rows = []
    for position in range(len(items) - 1):
        kwargs = {"times": times[position + 1 : position + 2]} if getattr(scorer, "needs_times", False) else {}
        scores, state = scorer.step(state, items[position : position + 1], **kwargs)
        rows.append(np.array(scores[0]))
    return rows


@pytest.mark.parametrize("name", EXACT)
def test_scores_equal_session_rec(tiny, name):
    train, test = tiny
    scorer = _fitted(name, train)
    config = CONFIGS[name]
    n_top = len(config["top_scores"])
    by_id = {int(sid): s for s, sid in enumerate(test.session_ids)}
    events = FIXTURE["events"]
    i = 0
    while i < n_top:
        sid = events["session"][i]
        rows = _replay(scorer, test, by_id[sid])
        for row in rows:
            if i >= n_top:
                break
            target = test.item_map.index_of(np.array([events["target"][i]]))[0]
            assert row[target] == pytest.approx(config["target_score"][i], rel=1e-9, abs=1e-300)
            assert np.count_nonzero(row) == config["n_nonzero"][i]
            top = np.sort(row)[::-1][: len(config["top_scores"][i])]
            np.testing.assert_allclose(top, config["top_scores"][i], rtol=1e-9)
            i += 1


# ----------------------------------------------------------------------------------------------------------------
# Brute-force definitions on a toy data set (written from docs/baselines.md, one session at a time)

TOY_SESSIONS = [  # (items, times): eight training sessions over six items, every session ending at its own time
    ([0, 1, 2], [10, 20, 30]),
    ([1, 2, 3, 1], [40, 50, 60, 70]),
    ([2, 4], [80, 90]),
    ([0, 2, 5, 2], [100, 110, 120, 130]),
    ([3, 4, 5], [140, 150, 160]),
    ([1, 5], [170, 180]),
    ([0, 3, 0, 4], [190, 200, 210, 220]),
    ([5, 2, 1], [230, 240, 250]),
]
DAY = 86400.0


def _toy() -> SessionData:
    rows = [(s, item, t * 3600.0) for s, (items, times) in enumerate(TOY_SESSIONS) for item, t in zip(items, times)]
    return SessionData.from_frame(pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"]))


def _kit_scores(scorer, prefix: list[int], now: float) -> np.ndarray:
    state = scorer.start(1)
    for item in prefix:
        kwargs = {"times": np.array([now])} if getattr(scorer, "needs_times", False) else {}
        scores, state = scorer.step(state, np.array([item]), **kwargs)
    return np.array(scores[0])


def _candidates(prefix: list[int], sample_size: int) -> list[int]:
    """Training sessions sharing an item with the prefix, the ``sample_size`` most recent."""
    shared = [s for s, (items, _) in enumerate(TOY_SESSIONS) if set(items) & set(prefix)]
    shared.sort(key=lambda s: TOY_SESSIONS[s][1][-1], reverse=True)
    return shared[:sample_size] if sample_size else shared


def _top(sims: dict, k: int) -> dict:
    best = sorted(sims, key=lambda s: (sims[s], TOY_SESSIONS[s][1][-1]), reverse=True)[:k]
    return {s: sims[s] for s in best}


def _normalised(scores: np.ndarray) -> np.ndarray:
    return scores / scores.max() if scores.max() > 0 else scores


def brute_sr(prefix, steps, weight):
    rules = np.zeros((6, 6))
    for items, _ in TOY_SESSIONS:
        for b in range(len(items)):
            for gap in range(1, min(steps, b) + 1):
                rules[items[b - gap], items[b]] += weight(gap)
    return _normalised(rules[prefix[-1]])


def brute_sknn(prefix, k, sample_size):
    current = set(prefix)
    sims = {}
    for s in _candidates(prefix, sample_size):
        neighbour = set(TOY_SESSIONS[s][0])
        sims[s] = len(current & neighbour) / math.sqrt(len(neighbour)) * math.sqrt(len(current))
    scores = np.zeros(6)
    for s, sim in _top(sims, k).items():
        for item in set(TOY_SESSIONS[s][0]):
            scores[item] += sim
    return _normalised(scores)


def brute_vsknn(prefix, k, sample_size, idf_weighting):
    length = len(prefix)
    weight = {item: ((i + 1) / length) ** 2 for i, item in enumerate(prefix)}  # the last event of an item wins
    sims = {}
    for s in _candidates(prefix, sample_size):
        sims[s] = sum(weight[i] for i in set(prefix) & set(TOY_SESSIONS[s][0])) / len(set(prefix))
    events = np.bincount([i for items, _ in TOY_SESSIONS for i in items], minlength=6)
    idf = np.log(len(TOY_SESSIONS) / events)
    scores = np.zeros(6)
    for s, sim in _top(sims, k).items():
        neighbour = set(TOY_SESSIONS[s][0])
        back = next(d for d, item in enumerate(reversed(prefix), start=1) if item in neighbour)
        for item in neighbour:
            scores[item] += sim * (1 + idf_weighting * idf[item]) / back
    return _normalised(scores)


def brute_stan(prefix, now, k, sample_size, spw, snh, inh):
    length = len(prefix)
    weight = {item: math.exp((i + 1 - length) / spw) for i, item in enumerate(prefix)}
    norm = math.sqrt(sum(w * w for w in weight.values()))
    sims = {}
    for s in _candidates(prefix, sample_size):
        items, times = TOY_SESSIONS[s]
        shared = sum(weight[i] for i in set(prefix) & set(items))
        sims[s] = shared / (norm * math.sqrt(len(set(items)))) * math.exp(-(now - times[-1] * 3600.0) / (snh * DAY))
    scores = np.zeros(6)
    for s, sim in _top(sims, k).items():
        items = TOY_SESSIONS[s][0]
        last = {item: p + 1 for p, item in enumerate(items)}
        anchor = max(last[i] for i in set(items) & set(prefix))
        for item, position in last.items():
            scores[item] += sim * math.exp(-abs(position - anchor) / inh)
    return scores


PREFIXES = [[2], [2, 0], [1, 2, 1], [4, 0, 3, 0], [5, 3, 2, 4, 1]]


@pytest.mark.parametrize("prefix", PREFIXES, ids=str)
@pytest.mark.parametrize("steps", [1, 2, 20])
def test_sr_against_brute_force(prefix, steps):
    scorer = SequentialRules(steps=steps, weighting="quadratic", pruning=0).fit(_toy())
    np.testing.assert_allclose(_kit_scores(scorer, prefix, 0.0), brute_sr(prefix, steps, lambda g: 1 / g**2))


def test_sr_pruning_keeps_the_strongest_rules_first_seen_on_ties():
    # item 0 is followed by 1 (twice), 2, 3 and 4 once each; item 1 then 3 comes first in the data among the ties
    data = SessionData.from_frame(pd.DataFrame(
        [(0, 0, 1), (0, 1, 2), (1, 0, 3), (1, 3, 4), (2, 0, 5), (2, 1, 6), (3, 0, 7), (3, 2, 8), (4, 0, 9), (4, 4, 10)],
        columns=["SessionId", "ItemId", "Time"]))  # fmt: skip
    scores = _kit_scores(SequentialRules(steps=1, weighting="same", pruning=2).fit(data), [0], 0.0)
    np.testing.assert_array_equal(np.flatnonzero(scores), [1, 3])


@pytest.mark.parametrize("prefix", PREFIXES, ids=str)
@pytest.mark.parametrize("k, sample_size", [(100, 0), (100, 3), (2, 0)])
def test_sknn_against_brute_force(prefix, k, sample_size):
    scorer = SessionKNN(k=k, sample_size=sample_size).fit(_toy())
    np.testing.assert_allclose(_kit_scores(scorer, prefix, 0.0), brute_sknn(prefix, k, sample_size))


@pytest.mark.parametrize("prefix", PREFIXES, ids=str)
@pytest.mark.parametrize("k, sample_size, idf", [(100, 0, 5.0), (100, 3, 0.0), (2, 0, 5.0)])
def test_vsknn_against_brute_force(prefix, k, sample_size, idf):
    scorer = VSKNN(k=k, sample_size=sample_size, idf_weighting=idf).fit(_toy())
    np.testing.assert_allclose(_kit_scores(scorer, prefix, 0.0), brute_vsknn(prefix, k, sample_size, idf))


@pytest.mark.parametrize("prefix", PREFIXES, ids=str)
@pytest.mark.parametrize("k, sample_size", [(100, 0), (100, 3), (2, 0)])
def test_stan_against_brute_force(prefix, k, sample_size):
    now = 300 * 3600.0
    scorer = STAN(k=k, sample_size=sample_size, lambda_snh=0.5).fit(_toy())
    expected = brute_stan(prefix, now, k, sample_size, 1.02, 0.5, 2.05)
    np.testing.assert_allclose(_kit_scores(scorer, prefix, now), expected, rtol=1e-12)


def test_remind_false_leaves_the_sessions_items_out():
    prefix = [1, 2]
    with_items = _kit_scores(VSKNN(remind=True).fit(_toy()), prefix, 0.0)
    without = _kit_scores(VSKNN(remind=False).fit(_toy()), prefix, 0.0)
    assert with_items[prefix].min() > 0 and np.all(without[prefix] == 0)
    outside = np.setdiff1d(np.arange(6), prefix)
    # the other items keep their order (each row is divided by its own maximum)
    np.testing.assert_array_equal(np.argsort(with_items[outside]), np.argsort(without[outside]))


def test_stan_needs_times():
    scorer = STAN().fit(_toy())
    with pytest.raises(ValueError, match="time of each prediction"):
        scorer.step(scorer.start(1), np.array([0]))


# ----------------------------------------------------------------------------------------------------------------
# Through the evaluator: lanes, unknown items, one-event sessions, tie modes

NEW = ["sr", "sknn", "vsknn", "stan"]


@pytest.mark.parametrize("method", NEW)
def test_batch_size_changes_no_rank(tiny, method):
    train, test = tiny
    scorer = make_baseline(method, train)
    one = evaluate(scorer, test, cutoffs=(20,), batch_size=1, return_ranks=True)["ranks"]
    many = evaluate(scorer, test, cutoffs=(20,), batch_size=37, return_ranks=True)["ranks"]
    np.testing.assert_array_equal(one, many)


@pytest.mark.parametrize("method", NEW)
def test_unknown_items_and_one_event_sessions(tiny, method):
    train, _ = tiny
    known = train.item_map.ids
    unknown = int(known.max()) + 1
    rows = [  # session 1: an unknown item in the middle; 2: one known event only; 3: becomes one event; 4: plain
        (1, known[0], 1.4e9), (1, unknown, 1.4e9 + 1), (1, known[1], 1.4e9 + 2), (1, known[2], 1.4e9 + 3),
        (2, known[3], 1.4e9 + 4),
        (3, unknown, 1.4e9 + 5), (3, known[4], 1.4e9 + 6),
        (4, known[5], 1.4e9 + 7), (4, known[6], 1.4e9 + 8),
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])
    test = SessionData.from_frame(frame, train.item_map)
    cleaned = SessionData.from_frame(frame[frame.ItemId != unknown].query("SessionId in (1, 4)"), train.item_map)
    scorer = make_baseline(method, train)
    result = evaluate(scorer, test, cutoffs=(20,), return_ranks=True)
    assert result["n_dropped_unknown"] == 2 and result["n_events"] == 3 and result["n_sessions"] == 2
    np.testing.assert_array_equal(result["ranks"], evaluate(scorer, cleaned, cutoffs=(20,), return_ranks=True)["ranks"])


@pytest.mark.parametrize("method", NEW)
def test_tie_modes_on_exact_zeros(tiny, method):
    """Most items score exactly 0: the tie modes must count those ties as the module says."""
    train, test = tiny
    scorer = make_baseline(method, train)
    ranks = {mode: evaluate(scorer, test, cutoffs=(20,), tie_mode=mode, return_ranks=True)["ranks"]
             for mode in ("conservative", "standard", "median")}  # fmt: skip
    rows = _replay(scorer, test, 0)  # the first session's predictions come first in the evaluator's data order
    for i, (row, target) in enumerate(zip(rows, test.session(0)[1:])):
        t = row[target]
        assert ranks["conservative"][i] == np.count_nonzero(row >= t)
        assert ranks["standard"][i] == 1 + np.count_nonzero(row > t)
        assert ranks["median"][i] == (ranks["conservative"][i] + ranks["standard"][i]) / 2
    assert np.all(ranks["conservative"] >= ranks["median"]) and np.all(ranks["median"] >= ranks["standard"])
    # a target scored 0 ties with every other unscored item: conservative puts it last among them
    zero = ranks["conservative"] == train.n_items
    assert zero.any() and np.all(ranks["standard"][zero] < train.n_items)


# ----------------------------------------------------------------------------------------------------------------
# CLI


@pytest.mark.parametrize("method", NEW)
def test_cli_runs_each_method(tmp_path, method):
    out = tmp_path / "m.json"
    assert main(["baseline", "--method", method, "--train", str(TRAIN), "--test", str(TEST), "--cutoffs", "20",
                 "--json", str(out)]) == 0  # fmt: skip
    written = json.loads(out.read_text())
    assert written["method"] == method and written["n_events"] == 450
    if method in EXACT:  # the default parameters, where the kit equals session-rec exactly
        assert written["recall@20"] == pytest.approx(CONFIGS[method]["metrics"]["recall@20"], abs=1e-12)


@pytest.mark.parametrize(
    "method, param, message",
    [
        ("sr", "steps=abc", "--param steps=abc: expected an integer (default 20)"),
        ("sknn", "k=2.5", "--param k=2.5: expected an integer"),
        ("vsknn", "weighting=cubic", "weighting must be one of linear, same, div, log, quadratic; got 'cubic'"),
        ("vsknn", "idf_weighting=yes", "--param idf_weighting=yes: expected a number"),
        ("stan", "lambda_snh=-1", "lambda_snh must be > 0"),
        ("stan", "remind=2", "--param remind=2: expected true or false"),
        ("sknn", "similarity=dice", "similarity must be one of cosine, jaccard, tanimoto, binary"),
        ("stan", "lambda", "--param 'lambda': expected NAME=VALUE"),
        ("sr", "window=3", "--param window: not a parameter of baseline 'sr'; its parameters: steps=20"),
    ],
)
def test_cli_rejects_bad_parameters_in_one_line(capsys, method, param, message):
    # the files do not exist: the parameters are checked before any data is read
    assert main(["baseline", "--method", method, "--param", param, "--train", "nope.txt", "--test", "nope.txt"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_every_new_method_is_registered():
    assert {"sr", "sknn", "vsknn", "stan"} <= set(BASELINES)
