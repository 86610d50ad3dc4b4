"""Figures of notebook 09 (serving live sessions): the cost of a click against the session's length, with a kept
state and re-reading the prefix; the load figures per concurrency. Plain data in (the DataFrames of
:mod:`gru4rec.lessons.serving`), a plotly Figure out."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["KEPT_COLOR", "REREAD_COLOR", "latency_figure", "load_figure"]

KEPT_COLOR = "#1f77b4"
REREAD_COLOR = "#d62728"
STORE_COLORS = {"memory": "#1f77b4", "redis": "#ff7f0e"}


def latency_figure(table: pd.DataFrame, title: str = "The cost of one click against the session's length") -> go.Figure:
    """Lines of ``kept_ms`` and ``reread_ms`` (y, ms) against ``prefix_length`` (x), from
    :func:`gru4rec.lessons.serving.latency_by_prefix`."""
    figure = go.Figure()
    lines = (("kept_ms", "kept state: one GRU step", KEPT_COLOR),
             ("reread_ms", "re-reading the prefix: one GRU step per item", REREAD_COLOR))  # fmt: skip
    for column, name, color in lines:
        figure.add_trace(go.Scatter(x=table["prefix_length"], y=table[column], mode="lines+markers", name=name,
                                    line={"color": color},
                                    hovertemplate="prefix %{x}<br>%{y:.2f} ms<extra>" + name + "</extra>"))  # fmt: skip
    figure.update_layout(title=title, xaxis_title="clicks in the session so far (prefix length)",
                         yaxis_title="milliseconds per click (median)", yaxis_rangemode="tozero",
                         legend={"orientation": "h", "y": -0.2})  # fmt: skip
    return figure


def load_figure(table: pd.DataFrame) -> go.Figure:
    """Clicks per second (left) and p50 / p99 latency (right) per concurrency, one colour per ``store``, from
    :func:`gru4rec.lessons.serving.load_table` (with a ``store`` column)."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("clicks per second", "latency (ms): p50 solid, p99 dashed"))
    for store, part in table.groupby("store", sort=False):
        color = STORE_COLORS.get(str(store), "#2ca02c")
        x = [str(c) for c in part["concurrency"]]
        figure.add_trace(go.Bar(x=x, y=part["events_per_s"], name=f"{store} store", marker={"color": color},
                                legendgroup=str(store)), row=1, col=1)  # fmt: skip
        for column, dash in (("p50_ms", "solid"), ("p99_ms", "dash")):
            figure.add_trace(go.Scatter(x=x, y=part[column], mode="lines+markers", line={"color": color, "dash": dash},
                                        name=f"{store} {column[:3]}", legendgroup=str(store), showlegend=False),
                             row=1, col=2)  # fmt: skip
    figure.update_xaxes(title_text="concurrent sessions", type="category")
    figure.update_yaxes(rangemode="tozero")
    return figure
