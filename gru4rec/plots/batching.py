"""Figures of notebook 02 (session-parallel batching): lanes over steps, the cells padding would waste, and the lanes
still busy at each step. Each function takes plain data and returns a plotly Figure."""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd
import plotly.graph_objects as go

__all__ = ["SESSION_PALETTE", "lanes_heatmap", "padding_figure", "lanes_in_use_figure"]

# Neighbouring sessions get different colours: a session's colour is its index modulo the palette size.
SESSION_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#7f7f7f",
)  # fmt: skip


def _discrete_colorscale(colors) -> list:
    n = len(colors)
    scale = []
    for i, color in enumerate(colors):
        scale += [[i / n, color], [(i + 1) / n, color]]
    return scale


def lanes_heatmap(
    session_index: np.ndarray,
    resets: np.ndarray,
    valid: np.ndarray,
    first_step: int = 0,
    n_steps: int = 60,
    max_lanes: Optional[int] = None,
    highlight_step: Optional[int] = None,
    hover: Optional[np.ndarray] = None,
    title: str = "Session-parallel mini-batches: which session each lane plays at each step",
) -> go.Figure:
    """Lanes (rows) over steps (columns), coloured by session; resets marked ▶; idle cells left blank.

    ``session_index``, ``resets``, ``valid`` are the ``(steps, batch)`` arrays of an epoch
    (:class:`gru4rec.batching.EpochBatches`); the window ``first_step .. first_step + n_steps - 1`` and the first
    ``max_lanes`` lanes are drawn. ``hover`` (strings, shaped like the drawn window: ``(steps, lanes)``, e.g. from
    :func:`gru4rec.lessons.batching.cell_labels`) replaces the default hover text;
    ``highlight_step`` draws a frame around one step (the slider's current step).
    """
    total_steps, batch = np.shape(session_index)
    if not 0 <= first_step < max(total_steps, 1):
        raise ValueError(f"first_step must be in 0 .. {total_steps - 1}, got {first_step}")
    last = min(first_step + int(n_steps), total_steps)
    lanes = batch if max_lanes is None else min(int(max_lanes), batch)
    window = slice(first_step, last)
    sessions = np.asarray(session_index)[window, :lanes].T  # (lanes, steps)
    is_valid = np.asarray(valid, dtype=bool)[window, :lanes].T
    z = np.where(is_valid, sessions % len(SESSION_PALETTE), np.nan)
    x = np.arange(first_step, last)
    y = np.arange(lanes)
    if hover is None:
        text = np.where(is_valid, np.char.add("session index ", sessions.astype(str)), "idle")
    else:
        text = np.asarray(hover, dtype=object)
        if text.shape != (last - first_step, lanes):
            raise ValueError(f"hover must have the window's shape {(last - first_step, lanes)}, got {text.shape}")
        text = text.T
    figure = go.Figure(
        go.Heatmap(
            z=z,
            x=x,
            y=y,
            text=text,
            hovertemplate="step %{x}, lane %{y}<br>%{text}<extra></extra>",
            colorscale=_discrete_colorscale(SESSION_PALETTE),
            zmin=-0.5,
            zmax=len(SESSION_PALETTE) - 0.5,
            showscale=False,
            xgap=1,
            ygap=1,
        )
    )
    reset_lane, reset_step = np.nonzero(np.asarray(resets, dtype=bool)[window, :lanes].T)
    figure.add_trace(
        go.Scatter(
            x=x[reset_step],
            y=y[reset_lane],
            mode="markers",
            marker={"symbol": "triangle-right", "size": 7, "color": "black"},
            name="reset (new session: state zeroed)",
            hoverinfo="skip",
        )
    )
    if highlight_step is not None and first_step <= highlight_step < last:
        figure.add_shape(
            type="rect", x0=highlight_step - 0.5, x1=highlight_step + 0.5, y0=-0.5, y1=lanes - 0.5,
            line={"color": "black", "width": 3},
        )  # fmt: skip
    figure.update_layout(
        title=title,
        xaxis_title="step (one mini-batch per step)",
        yaxis={"title": "lane", "autorange": "reversed"},
        plot_bgcolor="white",
        height=max(300, 120 + 16 * lanes),
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


def padding_figure(waste: pd.DataFrame, title: str = "Cells an epoch needs: real pairs vs waste") -> go.Figure:
    """Stacked horizontal bars per batching scheme (``waste`` from :func:`gru4rec.lessons.batching.padding_waste`):
    real pairs, padding, idle tail; the wasted share is printed at the end of each bar."""
    figure = go.Figure()
    parts = (("real_pairs", "real (item, next item) pairs", "#2ca02c"), ("padding", "padding", "#d62728"),
             ("idle_tail", "idle lanes at the epoch's end", "#ff7f0e"))  # fmt: skip
    for column, name, color in parts:
        figure.add_trace(
            go.Bar(
                y=waste["scheme"],
                x=waste[column],
                name=name,
                orientation="h",
                marker={"color": color},
                hovertemplate=f"{name}: %{{x:,}} cells<extra></extra>",
            )
        )
    figure.add_trace(
        go.Scatter(
            y=waste["scheme"],
            x=waste["cells"],
            mode="text",
            text=[f"  {share:.1%} wasted" for share in waste["wasted_share"]],
            textposition="middle right",
            cliponaxis=False,  # the label of the longest bar reaches past the plot area: draw it in the margin
            showlegend=False,
            hoverinfo="skip",
        )
    )
    figure.update_layout(
        title=title,
        barmode="stack",
        xaxis={"title": "cells (lanes × steps), log scale", "type": "log"},
        yaxis={"autorange": "reversed"},
        legend={"orientation": "h", "y": -0.25},
        margin={"l": 10, "r": 130},
    )
    return figure


def lanes_in_use_figure(valid: np.ndarray, title: str = "Lanes busy at each step of the epoch") -> go.Figure:
    """Valid lanes per step over a whole epoch (``valid`` is the ``(steps, batch)`` mask): flat at the batch size
    until the sessions run out, then the idle tail."""
    valid = np.asarray(valid, dtype=bool)
    busy = valid.sum(axis=1)
    figure = go.Figure(
        go.Scatter(x=np.arange(len(busy)), y=busy, mode="lines", line={"color": "#1f77b4"}, name="busy lanes")
    )
    figure.add_hline(y=valid.shape[1], line_dash="dash", line_color="grey", annotation_text="batch size")
    figure.update_layout(
        title=title, xaxis_title="step", yaxis={"title": "lanes with a session", "rangemode": "tozero"}
    )
    return figure
