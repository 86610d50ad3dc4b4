"""The playground's loss-curve figure (notebook 00): built once from plain data, then grown point by point.

:func:`loss_curve_figure` draws the curves of earlier runs (thin, muted) and, optionally, an empty trace for the run
that is about to train (bold). The same builder serves both ways of using the playground:

- interactively, the figure is wrapped in a ``plotly.graph_objects.FigureWidget`` and :func:`set_points` replaces
  the live trace's points from the trainer's callback, so the browser redraws while the kernel trains;
- under papermill (no front end), the finished runs are drawn once into a static figure.

:func:`results_figure` draws the results table (a run against the baselines and the ceiling) as bars.

The loss axis turns logarithmic when the losses shown span more than :data:`LOG_AXIS_SPREAD` (a diverging run, or
runs of losses on different scales such as BPR next to cross-entropy), so one spike cannot flatten every other curve.

A curve is ``{"epoch": [...], "loss": [...]}``: x is the position in training in epochs (fractional, so runs with
different batch sizes or data sets share the axis), y the mean training loss over the steps since the previous point.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import pandas as pd
import plotly.graph_objects as go

__all__ = [
    "LIVE_COLOR", "PAST_COLORS", "LOG_AXIS_SPREAD", "loss_axis_type", "loss_curve_figure", "add_live_trace",
    "set_points", "results_figure",
]  # fmt: skip

LIVE_COLOR = "#d62728"
PAST_COLORS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
LIVE_TRACE_PREFIX = "training: "


LOG_AXIS_SPREAD = 10.0
"""The loss axis is logarithmic when the largest loss shown is more than this many times the smallest."""


def loss_axis_type(losses: Sequence[float], spread: float = LOG_AXIS_SPREAD) -> str:
    """``"log"`` when the positive finite ``losses`` span more than ``spread`` (max / min), else ``"linear"``."""
    values = [float(v) for v in losses if v is not None and math.isfinite(float(v)) and float(v) > 0.0]
    if not values:
        return "linear"
    return "log" if max(values) > spread * min(values) else "linear"


def _shown_losses(figure: go.Figure) -> list:
    return [y for trace in figure.data for y in (trace.y or ())]


def _hover(label: str) -> str:
    return f"{label}<br>epoch %{{x:.2f}}: loss %{{y:.4f}}<extra></extra>"


def loss_curve_figure(
    curves: Mapping[str, Mapping[str, Sequence[float]]] = (),
    live: Optional[str] = None,
    title: str = "Training loss (mean over the steps since the previous point)",
    height: int = 360,
) -> go.Figure:
    """A line per finished run of ``curves`` (``{label: {"epoch": [...], "loss": [...]}}``), oldest first, and, when
    ``live`` is given, an empty bold trace named ``"training: <live>"`` (the last trace) to be filled while it
    trains. Losses of different loss functions are on different scales: compare runs by their metrics (the loss
    axis is logarithmic when the losses span more than :data:`LOG_AXIS_SPREAD`)."""
    figure = go.Figure()
    for i, (label, curve) in enumerate(dict(curves).items()):
        figure.add_trace(
            go.Scatter(
                x=list(curve["epoch"]), y=list(curve["loss"]), mode="lines", name=label,
                line={"color": PAST_COLORS[i % len(PAST_COLORS)], "width": 1.5}, opacity=0.75,
                hovertemplate=_hover(label),
            )
        )  # fmt: skip
    if live is not None:
        add_live_trace(figure, live)
    figure.update_layout(
        title=title, height=height, xaxis_title="epoch", yaxis_title="training loss",
        margin={"l": 60, "r": 20, "t": 50, "b": 45}, legend={"orientation": "h", "y": -0.2},
        uirevision="playground",  # keep the user's zoom while points arrive
    )  # fmt: skip
    if loss_axis_type(_shown_losses(figure)) == "log":
        figure.update_layout(yaxis_type="log")
    return figure


def add_live_trace(figure: go.Figure, label: str) -> int:
    """Append the bold, empty trace of the run ``label`` to ``figure`` (a Figure or FigureWidget); its index."""
    name = LIVE_TRACE_PREFIX + label
    figure.add_trace(
        go.Scatter(
            x=[], y=[], mode="lines+markers", name=name, line={"color": LIVE_COLOR, "width": 3},
            marker={"size": 4}, hovertemplate=_hover(name),
        )
    )  # fmt: skip
    return len(figure.data) - 1


def set_points(figure: go.Figure, index: int, epochs: Sequence[float], losses: Sequence[float]) -> None:
    """Replace the points of trace ``index`` (one message to the browser when ``figure`` is a FigureWidget) and
    switch the loss axis to logarithmic or back (:func:`loss_axis_type` of every trace's losses)."""
    trace = figure.data[index]
    others = [y for i, t in enumerate(figure.data) if i != index for y in (t.y or ())]
    axis = loss_axis_type([*others, *losses])
    current = "log" if figure.layout.yaxis.type == "log" else "linear"  # unset: plotly's automatic (linear) axis
    with figure.batch_update():
        trace.x, trace.y = list(epochs), list(losses)
        if axis != current:
            figure.layout.yaxis.type = axis


def results_figure(
    table: pd.DataFrame,
    k: int = 20,
    ceiling: Optional[str] = "ceiling (Bayes-optimal)",
    title: Optional[str] = None,
) -> go.Figure:
    """Grouped bars of ``Recall@k`` and ``MRR@k`` for each row of ``table`` (index: model names, as made by
    :func:`gru4rec.widgets.results_table`); the row named ``ceiling`` is drawn as two dashed lines instead."""
    frame = pd.DataFrame(table)
    bars = frame.drop(index=[ceiling]) if ceiling in frame.index else frame
    figure = go.Figure()
    for column, color in ((f"Recall@{k}", "#1f77b4"), (f"MRR@{k}", "#ff7f0e")):
        values = [float(v) for v in bars[column]]
        figure.add_trace(
            go.Bar(
                x=[str(name) for name in bars.index], y=values, name=column, marker_color=color,
                text=[f"{v:.3f}" for v in values], textposition="outside",
                hovertemplate=f"%{{x}}: {column} = %{{y:.4f}}<extra></extra>",
            )
        )  # fmt: skip
        if ceiling in frame.index:
            value = float(frame.loc[ceiling, column])
            figure.add_hline(
                y=value, line_dash="dash", line_color=color,
                annotation_text=f"ceiling {column} {value:.3f}", annotation_position="top right",
            )  # fmt: skip
    top = float(frame[[f"Recall@{k}", f"MRR@{k}"]].to_numpy().max()) if len(frame) else 1.0
    figure.update_layout(
        title=title or f"Recall@{k} and MRR@{k} on the test split (ties counted against the model)",
        barmode="group", yaxis={"range": [0, min(1.05, 1.15 * top + 0.03)]}, height=400,
        legend={"orientation": "h", "y": -0.15},
    )  # fmt: skip
    return figure
