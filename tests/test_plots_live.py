"""The playground's loss-curve figure (gru4rec.plots.live): finished runs, the live trace, and growing it."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from gru4rec.plots.live import (
    LIVE_COLOR,
    add_live_trace,
    loss_axis_type,
    loss_curve_figure,
    results_figure,
    set_points,
)


def test_loss_curve_figure_draws_past_runs_and_an_empty_live_trace() -> None:
    curves = {"run 1": {"epoch": [0.5, 1.0], "loss": [6.0, 5.0]}, "run 2": {"epoch": [1.0], "loss": [4.0]}}
    figure = loss_curve_figure(curves, live="run 3")
    assert isinstance(figure, go.Figure)
    assert [trace.name for trace in figure.data] == ["run 1", "run 2", "training: run 3"]
    assert list(figure.data[0].x) == [0.5, 1.0] and list(figure.data[0].y) == [6.0, 5.0]
    live = figure.data[-1]
    assert len(live.x) == 0 and live.line.color == LIVE_COLOR
    assert figure.layout.xaxis.title.text == "epoch" and figure.layout.uirevision == "playground"
    assert len(loss_curve_figure().data) == 0


def test_set_points_replaces_the_live_points() -> None:
    figure = loss_curve_figure({"run 1": {"epoch": [1.0], "loss": [3.0]}})
    index = add_live_trace(figure, "run 2")
    assert index == 1
    set_points(figure, index, [0.25, 0.5], [7.0, 6.5])
    set_points(figure, index, [0.25, 0.5, 0.75], [7.0, 6.5, 6.1])
    assert list(figure.data[index].x) == [0.25, 0.5, 0.75] and list(figure.data[index].y) == [7.0, 6.5, 6.1]
    assert list(figure.data[0].y) == [3.0]


def test_loss_axis_turns_logarithmic_when_losses_span_more_than_10x() -> None:
    assert loss_axis_type([12.0, 10.0, 7.0]) == "linear" and loss_axis_type([]) == "linear"
    assert loss_axis_type([0.7, 7000.0]) == "log" and loss_axis_type([0.0, -1.0, float("nan"), 2.0]) == "linear"
    same_scale = loss_curve_figure({"run 1": {"epoch": [0.5, 1.0], "loss": [6.0, 5.0]}})
    assert same_scale.layout.yaxis.type in (None, "linear")
    mixed = loss_curve_figure({"XE": {"epoch": [1.0], "loss": [10.0]}, "BPR": {"epoch": [1.0], "loss": [996.0]}})
    assert mixed.layout.yaxis.type == "log"
    # a live run that spikes switches the axis, and back when it is replaced by tame points
    index = add_live_trace(same_scale, "run 2")
    set_points(same_scale, index, [0.25, 0.5], [0.7, 9000.0])
    assert same_scale.layout.yaxis.type == "log"
    set_points(same_scale, index, [0.25, 0.5], [5.5, 5.0])
    assert same_scale.layout.yaxis.type == "linear"


def test_results_figure_draws_bars_and_the_ceiling_as_lines() -> None:
    table = pd.DataFrame(
        {"Recall@20": [0.5, 0.1, 0.8], "MRR@20": [0.2, 0.03, 0.4]},
        index=pd.Index(["GRU4Rec (run 1)", "POP", "ceiling (Bayes-optimal)"], name="model"),
    )
    figure = results_figure(table)
    assert [trace.name for trace in figure.data] == ["Recall@20", "MRR@20"]
    assert list(figure.data[0].x) == ["GRU4Rec (run 1)", "POP"] and list(figure.data[0].y) == [0.5, 0.1]
    assert sorted(shape.y0 for shape in figure.layout.shapes) == [0.4, 0.8]
    assert len(results_figure(table.drop(index=["ceiling (Bayes-optimal)"])).layout.shapes) == 0
