"""The logic of notebook 08 (``gru4rec.lessons.evaluation_flaws``): flawed data, the verdict, the sampled sweep."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gru4rec.baselines import BASELINES, Markov, Pop
from gru4rec.io import read_sessions
from gru4rec.lessons import evaluation_flaws as flaws
from gru4rec.sampled_eval import evaluate_sampled
from gru4rec.session_data import SessionData
from tests.session_helpers import data_from_sessions

TINY = Path(__file__).resolve().parents[1] / "data" / "tiny"


@pytest.fixture(scope="module")
def tiny_frames():
    return read_sessions(TINY / "rsc15_train_full.txt"), read_sessions(TINY / "rsc15_test.txt")


def test_available_models_skips_the_unknown_with_their_names():
    included, skipped = flaws.available_models(["gru4rec", "pop", "nope", "markov"])
    assert included == ["gru4rec", "pop", "markov"] and skipped == ["nope"]
    included, skipped = flaws.available_models(list(flaws.CORE_MODELS) + list(flaws.OPTIONAL_MODELS))
    for name in flaws.OPTIONAL_MODELS:  # session-rec's SR and V-SKNN: in when make_baseline knows them
        assert (name in included) == (name in BASELINES) and (name in skipped) == (name not in BASELINES)


def test_model_order_compare_and_verdict():
    honest = {"a": {"recall@20": 0.5, "mrr@20": 0.2}, "b": {"recall@20": 0.4, "mrr@20": 0.3},
              "c": {"recall@20": 0.1, "mrr@20": 0.05}}  # fmt: skip
    same = {"a": {"recall@20": 0.9, "mrr@20": 0.5}, "b": {"recall@20": 0.8, "mrr@20": 0.6},
            "c": {"recall@20": 0.7, "mrr@20": 0.1}}  # fmt: skip
    flipped = {"a": {"recall@20": 0.6, "mrr@20": 0.2}, "b": {"recall@20": 0.4, "mrr@20": 0.3},
               "c": {"recall@20": 0.7, "mrr@20": 0.1}}  # fmt: skip
    assert flaws.model_order(honest, "recall@20") == ["a", "b", "c"]
    assert flaws.model_order(honest, "mrr@20") == ["b", "a", "c"]
    kept = flaws.verdict(honest, same, "recall@20")
    assert kept["order_changes"] is False and kept["swapped"] == []
    assert "does not change: A > B > C" in flaws.verdict_sentence(kept, {"a": "A", "b": "B", "c": "C"})
    moved = flaws.verdict(honest, flipped, "recall@20")
    assert moved["order_changes"] is True and moved["flawed_order"] == ["c", "a", "b"]
    assert moved["swapped"] == [["a", "c"], ["b", "c"]]
    assert "changes" in flaws.verdict_sentence(moved) and "swapped: a / c, b / c" in flaws.verdict_sentence(moved)
    # a tie made by the flaw is not a change of order (e.g. every model at Recall@20 = 1 with 10 negatives)
    all_one = {m: {"recall@20": 1.0, "mrr@20": 0.5} for m in honest}
    tie = flaws.verdict(honest, all_one, "recall@20")
    assert tie["order_changes"] is False and tie["swapped"] == [] and len(tie["tied"]) == 3
    assert "(tied by the flaw: a = b, a = c, b = c)" in flaws.verdict_sentence(tie)
    table = flaws.compare(honest, flipped)
    assert table["model"].tolist() == ["a", "b", "c"]
    assert table["honest place"].tolist() == [1, 2, 3] and table["flawed place"].tolist() == [2, 3, 1]
    assert table.loc[2, "ratio"] == pytest.approx(7.0)
    with pytest.raises(ValueError, match="same models"):
        flaws.compare(honest, {"a": honest["a"]})


def test_random_session_split_keeps_sessions_whole_and_leaks_time(tiny_frames):
    train, test = tiny_frames
    leaky_train, leaky_test = flaws.random_session_split(train, test, seed=1)
    assert leaky_test["SessionId"].nunique() == test["SessionId"].nunique()
    assert len(leaky_train) + len(leaky_test) == len(train) + len(test)
    assert not set(leaky_train["SessionId"]) & set(leaky_test["SessionId"])
    for frame in (leaky_train, leaky_test):  # every session whole
        both = pd.concat([train, test])
        sizes = both.groupby("SessionId").size()
        assert (frame.groupby("SessionId").size() == sizes.loc[frame["SessionId"].unique()]).all()
    # the time split tests after training; the random one has training sessions later than most test sessions
    assert test["Time"].min() >= train.groupby("SessionId")["Time"].max().min()
    later = (leaky_train["Time"].max() > leaky_test.groupby("SessionId")["Time"].max()).mean()
    assert later > 0.9
    again = flaws.random_session_split(train, test, seed=1)[1]
    pd.testing.assert_frame_equal(again, leaky_test)


def test_shuffle_within_sessions_keeps_each_sessions_items_and_times(tiny_frames):
    train, _ = tiny_frames
    shuffled = flaws.shuffle_within_sessions(train, seed=0)
    assert len(shuffled) == len(train)
    key = ["SessionId"]
    a = train.groupby(key)["ItemId"].apply(sorted)
    b = shuffled.groupby(key)["ItemId"].apply(sorted)
    assert a.equals(b), "every session keeps its multiset of items"
    assert train.groupby(key)["Time"].apply(sorted).equals(shuffled.groupby(key)["Time"].apply(sorted))
    ordered = train.sort_values(["SessionId", "Time"], kind="stable").reset_index(drop=True)
    moved = (ordered["ItemId"].to_numpy() != shuffled["ItemId"].to_numpy()).mean()
    assert moved > 0.3, "the order really changes"
    # SessionData (sorted by session start and time) holds the shuffled order
    test = read_sessions(TINY / "rsc15_test.txt")
    honest_train = SessionData.from_frame(train)
    shuffled_train = SessionData.from_frame(shuffled)
    assert not np.array_equal(honest_train.items, shuffled_train.items)
    np.testing.assert_array_equal(np.sort(honest_train.items), np.sort(shuffled_train.items))
    assert len(flaws.shuffle_within_sessions(test, seed=0)) == len(test)


def test_drop_long_sessions():
    data = data_from_sessions([[1, 2], [1, 2, 3, 4, 5], [3, 4, 5], [6, 7, 8, 9]], 10)
    short = flaws.drop_long_sessions(data, 3)
    assert short.session_lengths.tolist() == [2, 3]
    assert short.items.tolist() == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="max_length"):
        flaws.drop_long_sessions(data, 1)


def test_k_core_filter_and_sessions():
    frame = pd.DataFrame({
        "SessionId": [1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4],
        "ItemId": [10, 11, 12, 10, 11, 12, 10, 13, 10, 11, 99],
        "Time": np.arange(11, dtype=float),
    })  # fmt: skip
    core = flaws.k_core_filter(frame, 3)
    # 13 and 99 occur once, 12 twice: dropped; then session 3 has one event and 4 two: dropped; 10 and 11 lose
    # events and sessions 1 and 2 are left with two each: nothing is left of a 3-core
    assert core.empty
    core2 = flaws.k_core_filter(frame, 2)
    assert sorted(core2["ItemId"].unique()) == [10, 11, 12] and 3 not in set(core2["SessionId"])
    for counts in (core2["ItemId"].value_counts(), core2["SessionId"].value_counts()):
        assert counts.min() >= 2
    assert flaws.k_core_filter(frame, 1).shape == frame.shape


def test_k_core_sessions_of_tiny(tiny_frames):
    train, test = tiny_frames
    train_data = SessionData.from_frame(train)
    core = flaws.k_core_sessions(train, test, 5, train_data.item_map)
    full = SessionData.from_frame(test, train_data.item_map)
    assert 0 < core.n_sessions < full.n_sessions
    assert core.session_lengths.min() >= 2
    assert set(core.session_ids) <= set(full.session_ids)


def test_sampled_sweep_matches_evaluate_sampled_and_grows_with_fewer_negatives(tiny_frames):
    train, test = tiny_frames
    train_data = SessionData.from_frame(train)
    test_data = SessionData.from_frame(test, train_data.item_map)
    scorers = {"pop": Pop().fit(train_data), "markov": Markov().fit(train_data)}
    sweep = flaws.sampled_sweep(scorers, test_data, [10, 100, 300], "popularity", train_data.item_counts, seed=4)
    assert sweep.shape[0] == 6 and set(sweep["sampling"]) == {"popularity"}
    for name, part in sweep.groupby("model"):
        recalls = part.sort_values("n_negatives")["recall@20"].tolist()
        assert recalls == sorted(recalls, reverse=True), name
    # n = the largest size is exactly evaluate_sampled with the same seed
    direct = evaluate_sampled(scorers["markov"], test_data, 300, "popularity", seed=4, cutoffs=(20,))
    row = sweep[(sweep["model"] == "markov") & (sweep["n_negatives"] == 300)].iloc[0]
    assert row["recall@20"] == pytest.approx(direct["recall@20"]) and row["mrr@20"] == pytest.approx(direct["mrr@20"])


def test_fit_and_evaluate_models_baselines_only(tiny_frames):
    train, test = tiny_frames
    train_data = SessionData.from_frame(train)
    test_data = SessionData.from_frame(test, train_data.item_map)
    seen = []
    fitted = flaws.fit_models(["pop", "markov"], train_data, on_model=lambda n, s: seen.append(n))
    assert seen == ["pop", "markov"] and set(fitted.fit_seconds) == {"pop", "markov"}
    metrics = flaws.evaluate_models(fitted.scorers, test_data)
    assert metrics["markov"]["recall@20"] > metrics["pop"]["recall@20"]
    assert metrics["pop"]["n_events"] == test_data.n_pairs
    with pytest.raises(ValueError, match="config and a run_dir"):
        flaws.fit_models(["gru4rec"], train_data)


def test_records_overview_and_sweep_verdicts():
    honest = {"gru4rec": {"recall@20": 0.3, "mrr@20": 0.1}, "pop": {"recall@20": 0.05, "mrr@20": 0.01}}
    flawed = {"gru4rec": {"recall@20": 0.6, "mrr@20": 0.3}, "pop": {"recall@20": 0.7, "mrr@20": 0.2}}
    records = [flaws.flaw_record("sampled", honest, flawed), flaws.flaw_record("none", honest, honest)]
    assert records[0]["recall"]["order_changes"] and not records[1]["recall"]["order_changes"]
    table = flaws.overview(records)
    assert table.shape == (4, 6) and table["ratio"].tolist() == pytest.approx([2.0, 14.0, 1.0, 1.0])
    verdicts = flaws.verdict_table(records)
    assert verdicts["swapped (Recall)"].tolist() == ["GRU4Rec / POP", "-"]
    assert verdicts["order by MRR changes"].tolist() == [False, False]  # GRU4Rec keeps the better MRR
    sweep = pd.DataFrame([
        {"model": "gru4rec", "sampling": "uniform", "n_negatives": 10, "recall@20": 0.9, "mrr@20": 0.5},
        {"model": "pop", "sampling": "uniform", "n_negatives": 10, "recall@20": 0.95, "mrr@20": 0.4},
        {"model": "gru4rec", "sampling": "uniform", "n_negatives": 100, "recall@20": 0.6, "mrr@20": 0.3},
        {"model": "pop", "sampling": "uniform", "n_negatives": 100, "recall@20": 0.5, "mrr@20": 0.2},
    ])  # fmt: skip
    assert flaws.sweep_metrics(sweep, 100, "uniform")["pop"]["recall@20"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no row with 7"):
        flaws.sweep_metrics(sweep, 7, "uniform")
    by_n = flaws.sweep_verdicts(sweep, honest)
    assert by_n["order_changes"].tolist() == [True, False] and by_n["swapped"].tolist()[0] == [["gru4rec", "pop"]]
