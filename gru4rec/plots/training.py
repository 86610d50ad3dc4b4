"""Figures of notebook 03 (BP against truncated BPTT, and loop sinking). Each function takes plain data (lists,
dicts, the results of :func:`gru4rec.train.train` and :mod:`gru4rec.timing` as plain values) and returns a plotly
Figure."""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = [
    "MODE_COLORS",
    "smooth",
    "loss_curves_figure",
    "training_comparison_figure",
    "step_time_figure",
    "call_time_figure",
]

MODE_COLORS = {
    "BP": "#1f77b4",
    "BPTT": "#ff7f0e",
    "POP": "#7f7f7f",
    "one call per step": "#d62728",
    "chunked": "#2ca02c",
    "published": "#9467bd",
}


def _color(label: str, i: int) -> str:
    for key in sorted(MODE_COLORS, key=len, reverse=True):  # "BPTT ..." before "BP ..."
        if label.upper().startswith(key.upper()):
            return MODE_COLORS[key]
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
    return palette[i % len(palette)]


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average over ``window`` values (the first values average what there is so far)."""
    values = np.asarray(values, dtype=np.float64)
    if window <= 1 or len(values) == 0:
        return values.copy()
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - window, 0)
    return (cumulative[idx] - cumulative[lo]) / (idx - lo)


def _thin(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple:
    if len(x) <= max_points:
        return x, y
    keep = np.unique(np.linspace(0, len(x) - 1, max_points).round().astype(np.int64))
    return x[keep], y[keep]


def loss_curves_figure(
    curves: Mapping[str, Mapping[str, Sequence[float]]],
    epoch_starts: Optional[Sequence[int]] = None,
    window: int = 1,
    max_points: int = 2000,
    y_title: str = "training loss",
    title: str = "Training loss against mini-batch step",
) -> go.Figure:
    """One line per label of ``curves`` (``{label: {"step": [...], "loss": [...]}}``), smoothed by a trailing
    moving average of ``window`` points and thinned to ``max_points``; ``epoch_starts`` (steps) are drawn as dotted
    vertical lines."""
    figure = go.Figure()
    for i, (label, curve) in enumerate(curves.items()):
        x = np.asarray(curve["step"], dtype=np.float64)
        y = smooth(curve["loss"], window)
        x, y = _thin(x, y, max_points)
        figure.add_trace(
            go.Scatter(
                x=x, y=y, mode="lines", name=label, line={"color": _color(label, i)},
                hovertemplate=f"{label}<br>step %{{x:,}}: %{{y:.4f}}<extra></extra>",
            )
        )  # fmt: skip
    for step in epoch_starts or ():
        figure.add_vline(x=step, line_dash="dot", line_color="grey")
    suffix = f" (moving average of {window})" if window > 1 else ""
    figure.update_layout(title=title, xaxis_title="mini-batch step", yaxis_title=y_title + suffix)
    return figure


def training_comparison_figure(
    metrics: Mapping[str, Mapping[str, float]],
    k: int = 20,
    title: str = "BP against truncated BPTT: accuracy and speed",
) -> go.Figure:
    """Three panels side by side: Recall@k, MRR@k (every label of ``metrics``, e.g. BP, BPTT, POP) and training
    events per second (the labels that have ``events_per_s``)."""
    figure = make_subplots(
        rows=1, cols=3, subplot_titles=(f"Recall@{k}", f"MRR@{k}", "training events / s"), horizontal_spacing=0.08
    )
    labels = list(metrics)
    colors = [_color(label, i) for i, label in enumerate(labels)]
    for col, key in ((1, f"recall@{k}"), (2, f"mrr@{k}")):
        values = [metrics[label].get(key, np.nan) for label in labels]
        figure.add_trace(
            go.Bar(
                x=labels, y=values, marker={"color": colors}, text=[f"{v:.3f}" for v in values],
                textposition="outside", showlegend=False, hovertemplate=f"%{{x}}: {key} = %{{y:.4f}}<extra></extra>",
            ),
            row=1, col=col,
        )  # fmt: skip
    speed = [(label, metrics[label]["events_per_s"], colors[i]) for i, label in enumerate(labels)
             if metrics[label].get("events_per_s") is not None]  # fmt: skip
    if speed:
        figure.add_trace(
            go.Bar(
                x=[s[0] for s in speed], y=[s[1] for s in speed], marker={"color": [s[2] for s in speed]},
                text=[f"{s[1]:,.0f}" for s in speed], textposition="outside", showlegend=False,
                hovertemplate="%{x}: %{y:,.0f} events/s<extra></extra>",
            ),
            row=1, col=3,
        )  # fmt: skip
    top = max([metrics[label].get(f"recall@{k}", 0.0) or 0.0 for label in labels] + [0.0])
    figure.update_yaxes(range=[0, min(1.0, 1.15 * top + 0.02)], row=1, col=1)
    figure.update_yaxes(range=[0, min(1.0, 1.15 * top + 0.02)], row=1, col=2)
    if speed:
        figure.update_yaxes(range=[0, 1.18 * max(s[1] for s in speed)], row=1, col=3)
    figure.update_layout(title=title, height=420)
    return figure


def step_time_figure(
    measured: Mapping[str, float],
    published: Optional[Mapping[str, float]] = None,
    title: str = "Milliseconds per training step: measured here and published",
) -> go.Figure:
    """Horizontal bars of ms per mini-batch step: ``measured`` (label → ms, e.g. one call per step and chunked on
    this machine) and ``published`` (label → ms, e.g. the seed's V100 and Ascend 910 logs), on a log axis."""
    labels, values, colors, kinds = [], [], [], []
    for label, value in measured.items():
        labels.append(label)
        values.append(float(value))
        colors.append(MODE_COLORS["one call per step"] if "per step" in label else MODE_COLORS["chunked"])
        kinds.append("measured here")
    for label, value in (published or {}).items():
        labels.append(label)
        values.append(float(value))
        colors.append(MODE_COLORS["published"])
        kinds.append("published")
    figure = go.Figure(
        go.Bar(
            y=labels, x=values, orientation="h", marker={"color": colors}, customdata=kinds,
            text=[f"{v:.2f} ms ({kind})" for v, kind in zip(values, kinds)], textposition="outside",
            hovertemplate="%{y}<br>%{x:.3f} ms/step (%{customdata})<extra></extra>",
        )
    )  # fmt: skip
    positive = [v for v in values if v > 0]
    if positive:
        lo, hi = np.log10(min(positive)), np.log10(max(positive))
        figure.update_xaxes(type="log", range=[lo - 0.3, hi + 0.8])
    figure.update_layout(
        title=title, xaxis_title="ms per mini-batch step (log scale)", yaxis={"autorange": "reversed"},
        height=160 + 45 * len(labels), margin={"l": 10},
    )  # fmt: skip
    return figure


def call_time_figure(
    per_step_ms: Mapping[str, Sequence[float]],
    title: str = "Time per step of every timed call",
) -> go.Figure:
    """Box plots of the per-step time of each timed call (``{label: [ms per step of call 1, call 2, ...]}``): the
    spread shows how much one call per step suffers from host jitter."""
    figure = go.Figure()
    for i, (label, values) in enumerate(per_step_ms.items()):
        figure.add_trace(
            go.Box(
                y=np.asarray(values, dtype=np.float64), name=label, boxpoints="outliers",
                marker={"color": MODE_COLORS["one call per step"] if "per step" in label else _color(label, i)},
            )
        )  # fmt: skip
    figure.update_layout(title=title, yaxis_title="ms per step (log scale)", yaxis_type="log", showlegend=False)
    return figure
