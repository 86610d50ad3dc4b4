"""Figures of notebook 08 (evaluation flaws): honest against flawed numbers of the same models, the sampled-metrics
sweep, and an overview of how much every flaw moves every model. Each function takes the plain tables of
:mod:`gru4rec.lessons.evaluation_flaws` and returns a plotly Figure."""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gru4rec.lessons.evaluation_flaws import MODEL_LABELS
from gru4rec.plots.evaluation import model_color

__all__ = ["side_by_side_figure", "sampled_sweep_figure", "overview_figure"]

SAMPLING_DASH = {"uniform": "solid", "popularity": "dash"}


def _label(name: str) -> str:
    return MODEL_LABELS.get(name, name)


def side_by_side_figure(table: pd.DataFrame, flaw: str, k: int = 20, title: Optional[str] = None) -> go.Figure:
    """Recall@k and MRR@k of every model, honest (solid) next to flawed (hatched), from
    :func:`gru4rec.lessons.evaluation_flaws.compare`; the hover gives each model's place under both."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=(f"Recall@{k}", f"MRR@{k}"))
    labels = [_label(m) for m in table["model"]]
    colors = [model_color(m, i) for i, m in enumerate(table["model"])]
    for col, metric in ((1, f"recall@{k}"), (2, f"mrr@{k}")):
        for which, pattern in (("honest", ""), ("flawed", "/")):
            values = table[f"{which} {metric}"].to_numpy()
            places = table[f"{which} place"].to_numpy()
            figure.add_trace(
                go.Bar(
                    x=labels, y=values, name="honest" if which == "honest" else flaw, legendgroup=which,
                    showlegend=col == 1, offsetgroup=which,
                    marker={"color": colors, "pattern": {"shape": pattern}, "line": {"color": colors, "width": 1.5}},
                    opacity=1.0 if which == "honest" else 0.55,
                    text=[f"{v:.3f}" for v in values], textposition="outside",
                    customdata=places,
                    hovertemplate=f"%{{x}} ({which}): {metric} = %{{y:.4f}}, place %{{customdata}} by Recall@{k}"
                    "<extra></extra>",
                ),
                row=1, col=col,
            )  # fmt: skip
    top = float(np.nanmax(table[[f"honest recall@{k}", f"flawed recall@{k}"]].to_numpy())) if len(table) else 1.0
    figure.update_yaxes(range=[0, min(1.1, 1.18 * top + 0.02)])
    figure.update_layout(title=title or f"Honest vs {flaw}: the same models", barmode="group", height=430,
                         legend={"orientation": "h", "y": -0.15})  # fmt: skip
    return figure


def sampled_sweep_figure(
    sweep: pd.DataFrame, honest: Mapping[str, Mapping[str, float]], n_items: int, k: int = 20,
    title: Optional[str] = None,
) -> go.Figure:
    """Recall@k against the number of sampled negatives (log axis), one line per model and sampling (solid: uniform,
    dashed: popularity), from :func:`gru4rec.lessons.evaluation_flaws.sampled_sweep`; the honest full-catalogue
    value of each model is a diamond at ``n_items - 1`` negatives (every other item)."""
    key = f"recall@{k}"
    figure = go.Figure()
    models = list(dict.fromkeys(sweep["model"]))
    for i, name in enumerate(models):
        color = model_color(name, i)
        for sampling, part in sweep[sweep["model"] == name].groupby("sampling", sort=False):
            part = part.sort_values("n_negatives")
            figure.add_trace(
                go.Scatter(
                    x=part["n_negatives"], y=part[key], mode="lines+markers", name=f"{_label(name)}, {sampling}",
                    legendgroup=name, line={"color": color, "dash": SAMPLING_DASH.get(str(sampling), "dot")},
                    hovertemplate=f"{_label(name)} ({sampling})<br>%{{x}} negatives: {key} = %{{y:.4f}}<extra></extra>",
                )
            )  # fmt: skip
        if name in honest:
            figure.add_trace(
                go.Scatter(
                    x=[n_items - 1], y=[honest[name][key]], mode="markers", name=f"{_label(name)}, full catalogue",
                    legendgroup=name, marker={"color": color, "size": 11, "symbol": "diamond"},
                    hovertemplate=f"{_label(name)}: honest {key} = %{{y:.4f}} (all {n_items} items)<extra></extra>",
                )
            )  # fmt: skip
    figure.update_layout(
        title=title or f"Sampled {key}: the target among N negatives, against the full catalogue (diamonds)",
        xaxis={"title": "sampled negatives N (log scale)", "type": "log"},
        yaxis={"title": key, "range": [0, 1.02]}, height=480,
    )  # fmt: skip
    return figure


def overview_figure(overview: pd.DataFrame, k: int = 20, title: Optional[str] = None) -> go.Figure:
    """A heatmap of flawed / honest Recall@k per flaw (rows) and model (columns), from a table with columns
    ``flaw``, ``model``, ``ratio`` (and optionally ``order_changes``, marked with a † after the flaw's name)."""
    flaws_order = list(dict.fromkeys(overview["flaw"]))
    models = list(dict.fromkeys(overview["model"]))
    grid = overview.pivot(index="flaw", columns="model", values="ratio").loc[flaws_order, models]
    changed = {}
    if "order_changes" in overview:
        changed = overview.groupby("flaw", sort=False)["order_changes"].any().to_dict()
    rows = [f"{f} †" if changed.get(f) else f for f in flaws_order]
    values = grid.to_numpy(dtype=float)
    figure = go.Figure(
        go.Heatmap(
            z=np.log2(values), x=[_label(m) for m in models], y=rows, zmid=0, colorscale="RdBu_r",
            text=[[f"{v:.2f}×" for v in row] for row in values], texttemplate="%{text}",
            colorbar={"title": "log₂ ratio"},
            hovertemplate="%{y}<br>%{x}: flawed / honest = %{text}<extra></extra>",
        )
    )  # fmt: skip
    figure.update_layout(
        title=title or f"How much each flaw moves Recall@{k} (flawed / honest; † = the order of the models changes)",
        yaxis={"autorange": "reversed"}, height=120 + 45 * len(rows),
    )  # fmt: skip
    return figure
