"""Figures of notebook 01 (data preparation): the RSC15 funnel, session lengths, item popularity, the time split,
the ceiling and the oracle's reading of a session. Each function takes plain data and returns a plotly Figure."""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = [
    "SPLIT_COLORS",
    "funnel_figure",
    "session_length_figure",
    "popularity_figure",
    "split_timeline_figure",
    "ceiling_figure",
    "oracle_trace_figure",
]

SPLIT_COLORS = {
    "train_full": "#1f77b4",
    "train_tr": "#1f77b4",
    "train_valid": "#ff7f0e",
    "test": "#d62728",
    "raw clicks": "#7f7f7f",
}


def funnel_figure(funnel: pd.DataFrame, title: str = "RSC15 rules: events left after each step") -> go.Figure:
    """A funnel of ``events`` per step (rows in order; columns ``step``, ``events``, ``sessions``, ``items``), with the
    share of the first step on each bar and the session and item counts in the hover text."""
    frame = pd.DataFrame(funnel)
    figure = go.Figure(
        go.Funnel(
            y=frame["step"].tolist(),
            x=frame["events"].tolist(),
            textinfo="value+percent initial",
            customdata=np.stack([frame["sessions"], frame["items"]], axis=1),
            hovertemplate="%{y}<br>events: %{x:,}<br>sessions: %{customdata[0]:,}<br>items: %{customdata[1]:,}"
            "<extra></extra>",
            marker={"color": "#1f77b4"},
        )
    )
    figure.update_layout(title=title, margin={"l": 10}, height=120 + 55 * len(frame))
    return figure


def session_length_figure(
    histograms: Mapping[str, pd.DataFrame],
    medians: Optional[Mapping[str, float]] = None,
    title: str = "Session lengths",
) -> go.Figure:
    """Sessions per length (bars, log y), one trace per label; ``histograms`` from
    :func:`gru4rec.lessons.data.length_histogram`. A clipped last bin is labelled ``≥ L``; ``medians`` are drawn as
    dashed vertical lines."""
    figure = go.Figure()
    for label, hist in histograms.items():
        lengths = hist["length"].to_numpy()
        names = [f"≥{n}" if clipped else str(n) for n, clipped in zip(lengths, hist["clipped"])]
        figure.add_trace(
            go.Bar(
                x=lengths,
                y=hist["sessions"],
                name=label,
                customdata=names,
                hovertemplate=f"{label}<br>length %{{customdata}}: %{{y:,}} sessions<extra></extra>",
                marker={"color": SPLIT_COLORS.get(label)},
            )
        )
    for i, (label, median) in enumerate((medians or {}).items()):
        figure.add_vline(
            x=median,
            line_dash="dash",
            line_color=SPLIT_COLORS.get(label, "black"),
            annotation_text=f"median {label}: {median:g}",
            annotation_position="top right",
            annotation_yshift=-18 * i,
        )
    figure.update_layout(
        title=title, barmode="group", xaxis_title="events in the session", yaxis_title="sessions (log scale)"
    )
    figure.update_yaxes(type="log")
    return figure


def _log_spaced(n: int, max_points: int) -> np.ndarray:
    """Up to ``max_points`` distinct ranks 1..n spread evenly on a log scale (all of them when n is small)."""
    if n <= max_points:
        return np.arange(1, n + 1)
    return np.unique(np.geomspace(1, n, max_points).round().astype(np.int64))


def popularity_figure(
    sorted_counts: np.ndarray, fit=None, max_points: int = 1500, title: str = "Item popularity (log-log)"
) -> go.Figure:
    """Rank-frequency plot on log-log axes (``sorted_counts`` from :func:`gru4rec.lessons.data.item_counts`), thinned
    to ``max_points`` log-spaced ranks, with the fitted Zipf line (a :class:`~gru4rec.lessons.data.ZipfFit`)."""
    sorted_counts = np.asarray(sorted_counts)
    ranks = _log_spaced(len(sorted_counts), max_points)
    figure = go.Figure(
        go.Scatter(
            x=ranks,
            y=sorted_counts[ranks - 1] if len(ranks) else [],
            mode="markers",
            marker={"size": 4, "color": "#1f77b4"},
            name="items",
            hovertemplate="rank %{x:,}: %{y:,} events<extra></extra>",
        )
    )
    if fit is not None:
        line_ranks = np.array([1, fit.n_fitted])
        figure.add_trace(
            go.Scatter(
                x=line_ranks,
                y=fit.predict(line_ranks),
                mode="lines",
                line={"color": "#d62728", "dash": "dash"},
                name=f"fit: count ∝ rank^{fit.slope:.2f} (items with ≥ {fit.min_count} events)",
            )
        )
    figure.update_layout(
        title=title,
        xaxis={"type": "log", "title": "item rank (1 = most clicked)"},
        yaxis={"type": "log", "title": "events"},
        legend={"x": 0.02, "y": 0.02, "xanchor": "left", "yanchor": "bottom"},
    )
    return figure


def split_timeline_figure(
    timeline: pd.DataFrame,
    boundaries: Optional[Mapping[str, float]] = None,
    title: str = "The time split: events per hour",
    bin_label: str = "hour",
) -> go.Figure:
    """Stacked bars of events per time bin and split (``timeline`` from
    :func:`gru4rec.lessons.data.split_timeline`), with each cut of ``boundaries`` (label → unix seconds) drawn as
    a dashed vertical line."""
    figure = go.Figure()
    for label, part in timeline.groupby("split", sort=False):
        figure.add_trace(
            go.Bar(
                x=part["bin_start"],
                y=part["events"],
                name=str(label),
                marker={"color": SPLIT_COLORS.get(str(label)), "line": {"width": 0}},
                hovertemplate=f"{label}<br>%{{x}}: %{{y:,}} events<extra></extra>",
            )
        )
    for label, cut in (boundaries or {}).items():
        when = pd.Timestamp(cut, unit="s", tz="UTC")
        figure.add_shape(
            type="line", x0=when, x1=when, y0=0, y1=1, yref="paper",
            line={"dash": "dash", "color": SPLIT_COLORS.get(label, "black"), "width": 2},
        )  # fmt: skip
        figure.add_annotation(
            x=when, y=1, yref="paper", text=f"{label} cut<br>{when:%Y-%m-%d %H:%M}", showarrow=False,
            xanchor="right", yanchor="top", font={"color": SPLIT_COLORS.get(label, "black")},
        )  # fmt: skip
    figure.update_layout(
        title=title, barmode="stack", bargap=0, xaxis_title="time (UTC)", yaxis_title=f"events per {bin_label}"
    )
    return figure


def ceiling_figure(
    ceiling: Mapping[str, Mapping[str, float]],
    baselines: Optional[Mapping[str, Mapping[str, float]]] = None,
    title: str = "The ceiling: Recall@K and MRR@K of the Bayes-optimal predictor",
) -> go.Figure:
    """Recall@K and MRR@K against K for each entry of ``ceiling`` (e.g. ``{"test": {...}, "train_valid": {...}}``,
    metric dicts with ``recall@K`` / ``mrr@K`` keys) and of optional ``baselines`` (dotted)."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Recall@K", "MRR@K"))
    palette = ["#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    entries = [(f"ceiling ({name})", metrics, "solid") for name, metrics in ceiling.items()]
    entries += [(name, metrics, "dot") for name, metrics in (baselines or {}).items()]
    for i, (label, metrics, dash) in enumerate(entries):
        ks = sorted(int(key.split("@")[1]) for key in metrics if key.startswith("recall@"))
        color = palette[i % len(palette)]
        for col, metric in ((1, "recall"), (2, "mrr")):
            figure.add_trace(
                go.Scatter(
                    x=ks,
                    y=[metrics[f"{metric}@{k}"] for k in ks],
                    mode="lines+markers",
                    name=label,
                    legendgroup=label,
                    showlegend=col == 1,
                    line={"color": color, "dash": dash},
                    hovertemplate=f"{label}<br>{metric}@%{{x}} = %{{y:.4f}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
    figure.update_xaxes(title_text="K", type="log")
    figure.update_yaxes(range=[0, 1])
    figure.update_layout(title=title)
    return figure


def oracle_trace_figure(trace: pd.DataFrame, title: str = "The oracle reads one session") -> go.Figure:
    """Click by click (``trace`` from :func:`gru4rec.lessons.data.oracle_trace`): the posterior of the most probable
    intent (and of the true one, when known) and the rank the oracle gave to the click that came next."""
    figure = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
        subplot_titles=("P(intent | clicks so far)", "rank of the real next click (1 = top, log scale)"),
    )  # fmt: skip
    figure.add_trace(
        go.Scatter(x=trace["position"], y=trace["p_top_intent"], mode="lines+markers", name="most probable intent",
                   customdata=trace["top_intent"], hovertemplate="after click %{x}: intent %{customdata}, "
                   "P = %{y:.3f}<extra></extra>"),
        row=1, col=1,
    )  # fmt: skip
    if "p_true_intent" in trace:
        figure.add_trace(
            go.Scatter(x=trace["position"], y=trace["p_true_intent"], mode="lines+markers", name="true intent",
                       line={"dash": "dot"}),
            row=1, col=1,
        )  # fmt: skip
    figure.add_trace(
        go.Bar(x=trace["position"], y=trace["rank_next"], name="rank of next click", marker={"color": "#2ca02c"},
               customdata=trace["p_next"], hovertemplate="after click %{x}: rank %{y}, P(next) = %{customdata:.4f}"
               "<extra></extra>"),
        row=2, col=1,
    )  # fmt: skip
    figure.add_hline(y=20, line_dash="dash", line_color="grey", annotation_text="K = 20", row=2, col=1)
    figure.update_yaxes(range=[0, 1.05], row=1, col=1)
    figure.update_yaxes(type="log", row=2, col=1)
    figure.update_xaxes(title_text="clicks seen", row=2, col=1)
    figure.update_layout(title=title, height=550)
    return figure
