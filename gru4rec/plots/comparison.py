"""Figures of notebook 05 (GPU / NPU comparison): loss against step and step-time distributions for logs in the seed's
format, published and measured here. Each function takes plain data (label → DataFrame with the columns of
:func:`gru4rec.logs.read_log`) and returns a plotly Figure. Labels that start with ``published`` are drawn dashed."""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
import pandas as pd
import plotly.graph_objects as go

__all__ = ["PALETTE", "label_colors", "loss_curves_figure", "step_time_figure", "speed_figure"]

PALETTE = ("#2ca02c", "#d62728", "#1f77b4", "#ff7f0e", "#9467bd", "#8c564b")


def label_colors(labels) -> dict:
    """A stable colour per label, in order."""
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}


def _dash(label: str) -> str:
    return "dash" if label.lower().startswith("published") else "solid"


def loss_curves_figure(
    logs: Mapping[str, pd.DataFrame],
    title: str = "Training loss against step (running mean of the epoch, as the seed logs it)",
) -> go.Figure:
    """One line per log: ``loss`` against ``step``; hover shows epoch and learning rate."""
    colors = label_colors(logs)
    figure = go.Figure()
    for label, frame in logs.items():
        figure.add_trace(
            go.Scatter(
                x=frame["step"],
                y=frame["loss"],
                mode="lines+markers",
                name=label,
                line={"color": colors[label], "dash": _dash(label)},
                marker={"size": 4},
                customdata=np.stack([frame["epoch"], frame["lr"]], axis=1),
                hovertemplate=f"{label}<br>step %{{x}} (epoch %{{customdata[0]}}), lr %{{customdata[1]:.6f}}<br>"
                "loss %{y:.4f}<extra></extra>",
            )
        )
    figure.update_layout(
        title=title, xaxis_title="step (mini-batch)", yaxis_title="loss", legend={"orientation": "h", "y": -0.2}
    )
    return figure


def step_time_figure(
    logs: Mapping[str, pd.DataFrame],
    title: str = "Step time (ms, log scale): the first logged step apart, then the distribution of the rest",
) -> go.Figure:
    """Per log: a box with every point of ``step_time`` in milliseconds over the rows after the first, and the first
    row (graph compilation included) as a separate diamond."""
    colors = label_colors(logs)
    figure = go.Figure()
    for label, frame in logs.items():
        ms = 1000.0 * frame["step_time"].to_numpy(dtype=np.float64)
        figure.add_trace(
            go.Box(
                y=ms[1:],
                x=[label] * max(len(ms) - 1, 0),
                name=label,
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker={"color": colors[label], "size": 4},
                line={"color": colors[label]},
                customdata=frame["step"].to_numpy()[1:],
                hovertemplate=f"{label}<br>step %{{customdata}}: %{{y:.3f}} ms<extra></extra>",
                showlegend=False,
            )
        )
        if len(ms):
            figure.add_trace(
                go.Scatter(
                    x=[label],
                    y=[ms[0]],
                    mode="markers",
                    marker={"symbol": "diamond", "size": 11, "color": colors[label], "line": {"width": 1}},
                    name=f"first logged step (step {int(frame['step'].iloc[0])}, compilation included)",
                    legendgroup="first",
                    showlegend=False,
                    hovertemplate=f"{label}<br>first logged step: %{{y:.1f}} ms<extra></extra>",
                )
            )
    figure.update_layout(
        title=title,
        yaxis={"type": "log", "title": "ms per step"},
        xaxis={"title": ""},
        annotations=[
            {
                "text": "◆ = first logged step (includes graph compilation)",
                "showarrow": False,
                "xref": "paper",
                "yref": "paper",
                "x": 1,
                "y": 1.06,
                "xanchor": "right",
            }
        ],  # fmt: skip
    )
    return figure


def speed_figure(
    summaries: Mapping[str, Mapping[str, float]],
    title: str = "Median step time and training events per second",
    value: str = "median_step_time",
    note: Optional[str] = None,
) -> go.Figure:
    """Horizontal bars of the median step time (ms) per label, annotated with events/s when present
    (``summaries`` from :func:`gru4rec.lessons.comparison.summarize_log`)."""
    colors = label_colors(summaries)
    labels = list(summaries)
    ms = [1000.0 * summaries[label][value] for label in labels]
    text = []
    for label, value_ms in zip(labels, ms):
        rate = summaries[label].get("events_per_s")
        text.append(f"{value_ms:.2f} ms" + (f" · {rate:,.0f} events/s" if rate is not None else ""))
    figure = go.Figure(
        go.Bar(
            y=labels,
            x=ms,
            orientation="h",
            marker={"color": [colors[label] for label in labels]},
            text=text,
            textposition="auto",
            hovertemplate="%{y}<br>%{x:.3f} ms per step<extra></extra>",
        )
    )
    figure.update_layout(
        title=title if note is None else f"{title}<br><sup>{note}</sup>",
        xaxis_title="median ms per step (lower is faster)",
        yaxis={"autorange": "reversed"},
        margin={"l": 10},
    )
    return figure
