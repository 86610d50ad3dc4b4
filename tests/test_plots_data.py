"""Figures of notebook 01 and the computations behind them (gru4rec.lessons.data), on small hand-made data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gru4rec import rsc15, synthetic
from gru4rec.lessons import data as lessons
from gru4rec.plots import data as plots
from gru4rec.session_data import ItemMap


def frame(rows):
    return pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])


CLICKS = frame([(1, 10, 0.0), (1, 11, 60.0), (1, 10, 120.0), (2, 10, 3600.0), (2, 12, 3700.0), (3, 13, 90000.0)])


def test_counts_lengths_and_histogram():
    assert lessons.counts(CLICKS) == {"events": 6, "sessions": 3, "items": 4}
    lengths = lessons.session_lengths(CLICKS)
    assert lengths.tolist() == [3, 2, 1]
    hist = lessons.length_histogram(lengths, max_length=2)
    assert hist["length"].tolist() == [1, 2] and hist["sessions"].tolist() == [1, 2]
    assert hist["clipped"].tolist() == [False, True]
    assert lessons.length_histogram(lengths)["sessions"].sum() == 3


def test_item_counts_zipf_fit_recovers_the_exponent_and_top_share():
    assert lessons.item_counts(CLICKS).tolist() == [3, 1, 1, 1]
    exact = np.round(1e5 * np.arange(1, 2001) ** -0.8).astype(np.int64)
    fit = lessons.zipf_fit(exact, min_count=5)
    assert fit.exponent == pytest.approx(0.8, abs=0.01)
    assert fit.n_fitted == int((exact >= 5).sum())
    assert fit.predict(np.array([1]))[0] == pytest.approx(1e5, rel=0.05)
    assert lessons.top_share(np.array([5, 3, 1, 1]), 0.25) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="sorted"):
        lessons.zipf_fit(np.array([1, 5, 9]))
    with pytest.raises(ValueError, match="at least two"):
        lessons.zipf_fit(np.array([9, 1, 1]), min_count=5)


def test_split_timeline_bins_every_split_on_a_shared_grid():
    timeline = lessons.split_timeline({"train": CLICKS.iloc[:5], "test": CLICKS.iloc[5:]}, bin_seconds=3600)
    assert set(timeline["split"]) == {"train", "test"}
    per_split = timeline.groupby("split")["events"].sum().to_dict()
    assert per_split == {"train": 5, "test": 1}
    assert len(timeline) == 2 * 26  # hours 0 .. 25 for both splits
    assert timeline["bin_start"].iloc[0] == pd.Timestamp(0, unit="s", tz="UTC")
    assert lessons.sessions_starting_before(CLICKS, 100.0) == 1
    assert lessons.split_boundaries({"tmax": 2 * 86400.0, "tmax_train_full": 86400.0}) == {
        "test": 86400.0,
        "train_valid": 0.0,
    }


def test_oracle_trace_follows_the_evaluation_protocol():
    synth = synthetic.generate("tiny", seed=42)
    splits = rsc15.split(synth.clicks)
    item_map = ItemMap.from_ids(splits.train_full["ItemId"].to_numpy())
    session = splits.test["SessionId"].value_counts().index[0]
    ids = splits.test.loc[splits.test["SessionId"] == session, "ItemId"].to_numpy()
    trace = lessons.oracle_trace(synth.process, item_map, ids, true_intent=synth.session_intent[session - 1])
    assert len(trace) == len(ids) - 1
    assert trace["position"].tolist() == list(range(1, len(ids)))
    assert ((trace["p_next"] > 0) & (trace["p_next"] <= 1)).all()
    assert (trace["rank_next"] >= 1).all() and (trace["rank_next"] <= len(item_map)).all()
    assert (trace["p_true_intent"] <= trace["p_top_intent"] + 1e-12).all()
    # the first row agrees with the exact predictive distribution of the process (its slow reference)
    position = {int(item): i for i, item in enumerate(synth.process.item_ids)}
    dist = synth.process.next_item_distribution([position[int(ids[0])]])
    catalogue = dist[[position[int(item)] for item in item_map.ids]]
    target = dist[position[int(ids[1])]]
    assert trace["rank_next"].iloc[0] == int((catalogue >= target).sum())
    assert trace["p_next"].iloc[0] == pytest.approx(target)
    with pytest.raises(ValueError, match="two clicks"):
        lessons.oracle_trace(synth.process, item_map, ids[:1])


def test_figures_carry_the_data():
    funnel = rsc15.funnel_branches(rsc15.split(synthetic.generate("tiny", 42).clicks).stats)["train"]
    figure = plots.funnel_figure(funnel)
    assert figure.data[0].type == "funnel" and list(figure.data[0].x) == funnel["events"].tolist()

    hist = lessons.length_histogram(np.array([2, 2, 3, 9]), max_length=5)
    figure = plots.session_length_figure({"train_full": hist}, {"train_full": 2.0})
    assert list(figure.data[0].y) == [0, 2, 1, 0, 1] and figure.data[0].customdata[-1] == "≥5"
    assert figure.layout.yaxis.type == "log" and len(figure.layout.shapes) == 1

    counts = np.round(1e4 * np.arange(1, 5001) ** -0.7).astype(np.int64)
    figure = plots.popularity_figure(counts, lessons.zipf_fit(counts), max_points=200)
    assert len(figure.data) == 2 and len(figure.data[0].x) <= 200 and figure.data[0].x[0] == 1
    assert figure.layout.xaxis.type == "log" and "-0.70" in figure.data[1].name

    timeline = lessons.split_timeline({"train_tr": CLICKS.iloc[:5], "test": CLICKS.iloc[5:]})
    figure = plots.split_timeline_figure(timeline, {"test": 80000.0})
    assert [trace.name for trace in figure.data] == ["train_tr", "test"]
    assert figure.layout.barmode == "stack" and len(figure.layout.shapes) == 1

    ceiling = {"test": {"recall@1": 0.2, "mrr@1": 0.2, "recall@20": 0.8, "mrr@20": 0.4}}
    figure = plots.ceiling_figure(ceiling, {"pop": {"recall@1": 0.01, "mrr@1": 0.01, "recall@20": 0.1, "mrr@20": 0.03}})
    assert len(figure.data) == 4 and list(figure.data[0].x) == [1, 20] and list(figure.data[1].y) == [0.2, 0.4]

    trace = pd.DataFrame({"position": [1, 2], "item": [5, 6], "next_item": [6, 7], "p_next": [0.1, 0.3],
                          "rank_next": [4, 1], "top_intent": [0, 0], "p_top_intent": [0.6, 0.9],
                          "p_true_intent": [0.6, 0.9]})  # fmt: skip
    figure = plots.oracle_trace_figure(trace)
    assert [t.type for t in figure.data] == ["scatter", "scatter", "bar"] and list(figure.data[2].y) == [4, 1]
