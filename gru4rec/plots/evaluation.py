"""Figures of notebook 04 (evaluation): tie handling, the models against the baselines and the ceiling, Recall@K for
every K, recall by position in the session. Each function takes plain data (dicts of metrics, the DataFrames of
:mod:`gru4rec.lessons.evaluation`) and returns a plotly Figure."""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = [
    "MODEL_COLORS",
    "TIE_MODE_COLORS",
    "model_color",
    "tie_modes_figure",
    "metrics_figure",
    "recall_at_k_figure",
    "recall_by_position_figure",
]

MODEL_COLORS = {
    "gru4rec": "#1f77b4",
    "pop": "#7f7f7f",
    "spop": "#bcbd22",
    "itemknn": "#2ca02c",
    "markov": "#9467bd",
    "ceiling": "#d62728",
}
TIE_MODE_COLORS = {"seed": "#d62728", "standard": "#ff7f0e", "median": "#bcbd22", "conservative": "#1f77b4"}


def model_color(name: str, i: int = 0) -> str:
    """The colour of a model in every figure of the notebook (by the start of its lower-case name)."""
    key = name.lower().replace("-", "").replace(" ", "")
    for model in sorted(MODEL_COLORS, key=len, reverse=True):
        if key.startswith(model):
            return MODEL_COLORS[model]
    palette = ["#8c564b", "#e377c2", "#17becf", "#1f77b4", "#ff7f0e"]
    return palette[i % len(palette)]


def tie_modes_figure(
    table: pd.DataFrame, k: int = 20, title: Optional[str] = None
) -> go.Figure:
    """Grouped bars of Recall@k per model (x) and tie mode (colour), from
    :func:`gru4rec.lessons.evaluation.tie_mode_table` (columns ``model``, ``tie_mode``, ``counting``,
    ``recall@k``)."""
    figure = go.Figure()
    key = f"recall@{k}"
    for mode, part in table.groupby("tie_mode", sort=False):
        label = str(part["counting"].iloc[0]) if "counting" in part else str(mode)
        figure.add_trace(
            go.Bar(
                x=part["model"], y=part[key], name=label, marker={"color": TIE_MODE_COLORS.get(str(mode))},
                text=[f"{v:.3f}" for v in part[key]], textposition="outside",
                hovertemplate=f"%{{x}}<br>{label}<br>{key} = %{{y:.4f}}<extra></extra>",
            )
        )  # fmt: skip
    top = float(np.nanmax(table[key])) if len(table) else 1.0
    figure.update_layout(
        title=title or f"The same models, counted four ways: Recall@{k}",
        barmode="group", yaxis={"title": f"Recall@{k}", "range": [0, min(1.05, 1.15 * top + 0.02)]},
        legend={"orientation": "h", "y": -0.18},
    )  # fmt: skip
    return figure


def metrics_figure(
    metrics: Mapping[str, Mapping[str, float]],
    k: int = 20,
    ceiling: Optional[str] = "ceiling",
    title: Optional[str] = None,
) -> go.Figure:
    """Recall@k and MRR@k side by side for every model of ``metrics`` (``{name: {"recall@k": .., "mrr@k": ..}}``);
    the entry named ``ceiling`` is drawn as a dashed line over the bars instead of a bar."""
    names = [name for name in metrics if name != ceiling]
    figure = make_subplots(rows=1, cols=2, subplot_titles=(f"Recall@{k}", f"MRR@{k}"))
    for col, metric in ((1, f"recall@{k}"), (2, f"mrr@{k}")):
        values = [metrics[name][metric] for name in names]
        figure.add_trace(
            go.Bar(
                x=names, y=values, marker={"color": [model_color(n, i) for i, n in enumerate(names)]},
                text=[f"{v:.3f}" for v in values], textposition="outside", showlegend=False,
                hovertemplate=f"%{{x}}: {metric} = %{{y:.4f}}<extra></extra>",
            ),
            row=1, col=col,
        )  # fmt: skip
        if ceiling is not None and ceiling in metrics:
            value = metrics[ceiling][metric]
            figure.add_hline(
                y=value, line_dash="dash", line_color=MODEL_COLORS["ceiling"], row=1, col=col,
                annotation_text=f"ceiling {value:.3f}", annotation_position="top left",
            )  # fmt: skip
    top = max([m.get(f"recall@{k}", 0.0) for m in metrics.values()] + [0.0])
    figure.update_yaxes(range=[0, min(1.05, 1.15 * top + 0.02)])
    figure.update_layout(title=title or f"Every model through the same evaluator: Recall@{k} and MRR@{k}", height=430)
    return figure


def recall_at_k_figure(
    curves: Mapping[str, pd.DataFrame],
    marks: Optional[Mapping[str, Mapping[str, float]]] = None,
    title: str = "Recall@K for K = 1 … 50",
) -> go.Figure:
    """Recall@K against K, one line per model (``{name: DataFrame with K, recall}`` from
    :func:`gru4rec.lessons.evaluation.recall_curve`); ``marks`` (``{name: {"recall@K": ..}}``) adds points, e.g. the
    ceiling stored with the data at K = 1, 5, 10, 20. A dotted line marks K = 20."""
    figure = go.Figure()
    for i, (name, curve) in enumerate(curves.items()):
        dash = "dash" if name.lower().startswith(("ceiling", "oracle")) else "solid"
        figure.add_trace(
            go.Scatter(
                x=curve["K"], y=curve["recall"], mode="lines", name=name,
                line={"color": model_color(name, i), "dash": dash},
                hovertemplate=f"{name}<br>Recall@%{{x}} = %{{y:.4f}}<extra></extra>",
            )
        )  # fmt: skip
    for i, (name, metrics) in enumerate((marks or {}).items()):
        ks = sorted(int(key.split("@")[1]) for key in metrics if key.startswith("recall@"))
        figure.add_trace(
            go.Scatter(
                x=ks, y=[metrics[f"recall@{k}"] for k in ks], mode="markers", name=name,
                marker={"color": model_color(name, i), "size": 10, "symbol": "diamond-open", "line": {"width": 2}},
                hovertemplate=f"{name}<br>Recall@%{{x}} = %{{y:.4f}}<extra></extra>",
            )
        )  # fmt: skip
    figure.add_vline(x=20, line_dash="dot", line_color="grey", annotation_text="K = 20")
    figure.update_layout(title=title, xaxis_title="K (length of the recommendation list)",
                         yaxis={"title": "Recall@K", "range": [0, 1]})  # fmt: skip
    return figure


def recall_by_position_figure(
    tables: Mapping[str, pd.DataFrame], k: int = 20, title: Optional[str] = None
) -> go.Figure:
    """Recall@k by clicks seen in the session, one line per model (``{name: DataFrame}`` from
    :func:`gru4rec.lessons.evaluation.recall_by_position`), over grey bars of how many predictions each position
    holds (the first table's ``n``, right axis)."""
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    key = f"recall@{k}"
    first = next(iter(tables.values()), None)
    if first is not None and len(first):
        figure.add_trace(
            go.Bar(
                x=first["label"], y=first["n"], name="predictions", marker={"color": "#d9d9d9"}, opacity=0.6,
                hovertemplate="after %{x} clicks: %{y:,} predictions<extra></extra>",
            ),
            secondary_y=True,
        )  # fmt: skip
    for i, (name, table) in enumerate(tables.items()):
        dash = "dash" if name.lower().startswith(("ceiling", "oracle")) else "solid"
        figure.add_trace(
            go.Scatter(
                x=table["label"], y=table[key], mode="lines+markers", name=name,
                line={"color": model_color(name, i), "dash": dash},
                hovertemplate=f"{name}<br>after %{{x}} clicks: {key} = %{{y:.4f}}<extra></extra>",
            ),
            secondary_y=False,
        )  # fmt: skip
    figure.update_xaxes(title_text="clicks seen in the session when predicting", type="category")
    figure.update_yaxes(title_text=f"Recall@{k}", range=[0, 1], secondary_y=False)
    figure.update_yaxes(title_text="predictions", showgrid=False, secondary_y=True)
    figure.update_layout(title=title or f"Recall@{k} by position in the session", legend={"orientation": "h",
                         "y": -0.2})  # fmt: skip
    return figure
