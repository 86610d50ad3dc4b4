"""Figures of notebook 03 (gru4rec.plots.training) on small hand-made data: traces, values and labels."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from gru4rec.plots import training as plots


def test_smooth_is_a_trailing_mean() -> None:
    assert plots.smooth([1.0, 3.0, 5.0, 7.0], 2).tolist() == [1.0, 2.0, 4.0, 6.0]
    assert plots.smooth([1.0, 2.0], 1).tolist() == [1.0, 2.0]
    assert plots.smooth([], 5).tolist() == []


def test_loss_curves_smoothed_thinned_with_epoch_lines() -> None:
    steps = np.arange(1, 5001)
    curves = {"BP": {"step": steps, "loss": np.linspace(5, 3, 5000)}, "BPTT (4)": {"step": [1, 2], "loss": [4, 2]}}
    figure = plots.loss_curves_figure(curves, epoch_starts=[2500], window=10, max_points=100)
    assert isinstance(figure, go.Figure)
    bp, bptt = figure.data
    assert bp.name == "BP" and len(bp.x) == 100 and bp.x[0] == 1 and bp.x[-1] == 5000
    assert bptt.y.tolist() == [4.0, 3.0]  # moving average over what there is
    assert bp.line.color != bptt.line.color == plots.MODE_COLORS["BPTT"]
    assert len(figure.layout.shapes) == 1 and "moving average of 10" in figure.layout.yaxis.title.text


def test_training_comparison_has_three_panels() -> None:
    metrics = {
        "BP": {"recall@20": 0.5, "mrr@20": 0.2, "events_per_s": 3000.0},
        "BPTT": {"recall@20": 0.45, "mrr@20": 0.18, "events_per_s": 2500.0},
        "POP": {"recall@20": 0.05, "mrr@20": 0.01},
    }
    figure = plots.training_comparison_figure(metrics)
    recall, mrr, speed = figure.data
    assert list(recall.x) == ["BP", "BPTT", "POP"] and list(recall.y) == [0.5, 0.45, 0.05]
    assert list(mrr.y) == [0.2, 0.18, 0.01]
    assert list(speed.x) == ["BP", "BPTT"] and list(speed.y) == [3000.0, 2500.0]
    assert recall.marker.color[2] == plots.MODE_COLORS["POP"]
    assert [a.text for a in figure.layout.annotations] == ["Recall@20", "MRR@20", "training events / s"]


def test_step_time_measured_and_published() -> None:
    figure = plots.step_time_figure(
        {"one call per step (here)": 2.0, "chunked, 128 steps per call (here)": 0.5},
        {"V100 (published)": 4.26, "Ascend 910 (published)": 19.86},
    )
    (bars,) = figure.data
    assert list(bars.x) == [2.0, 0.5, 4.26, 19.86]
    assert list(bars.customdata) == ["measured here", "measured here", "published", "published"]
    assert bars.marker.color[0] != bars.marker.color[1] and bars.marker.color[2] == plots.MODE_COLORS["published"]
    assert figure.layout.xaxis.type == "log"


def test_call_time_boxes() -> None:
    figure = plots.call_time_figure({"one call per step": [1.0, 1.2, 5.0], "chunked": [0.4, 0.41]})
    assert [trace.name for trace in figure.data] == ["one call per step", "chunked"]
    assert list(figure.data[1].y) == pytest.approx([0.4, 0.41])
