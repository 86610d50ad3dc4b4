"""Figures of notebook 07 (losses and negative sampling): the gradient on the target's score per loss, and the
trained sweeps. Inputs are the tables of :mod:`gru4rec.lessons.losses`."""

from __future__ import annotations

from typing import Mapping, Optional

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["LOSS_COLORS", "gradient_figure", "sweep_figure"]

LOSS_COLORS = {"cross-entropy": "#1f77b4", "bpr": "#ff7f0e", "top1": "#bcbd22", "bpr-max": "#2ca02c",
               "top1-max": "#9467bd"}  # fmt: skip


def gradient_figure(table: pd.DataFrame, rank: int, n_negatives: int) -> go.Figure:
    """Left: |gradient on the target's score| against the number of negatives, the target with ``rank`` negatives
    above it; right: against the target's rank with ``n_negatives`` negatives. Log-log, one line per loss."""
    figure = make_subplots(
        rows=1, cols=2, horizontal_spacing=0.1,
        subplot_titles=(f"more negatives (the target below {rank} of them)",
                        f"the target climbs the ranking ({n_negatives} negatives)"),
    )  # fmt: skip
    for loss, part in table.groupby("loss", sort=False):
        color = LOSS_COLORS.get(str(loss))
        by_n = part[part["rank"] == rank].sort_values("n_negatives")
        by_rank = part[part["n_negatives"] == n_negatives].sort_values("rank")
        figure.add_trace(go.Scatter(x=by_n["n_negatives"], y=by_n["gradient"], mode="lines+markers", name=str(loss),
                                    line={"color": color}, legendgroup=str(loss)), row=1, col=1)  # fmt: skip
        figure.add_trace(go.Scatter(x=by_rank["rank"] + 1, y=by_rank["gradient"], mode="lines+markers",
                                    name=str(loss), line={"color": color}, legendgroup=str(loss), showlegend=False),
                         row=1, col=2)  # fmt: skip
    figure.update_xaxes(type="log", title_text="negatives", row=1, col=1)
    figure.update_xaxes(type="log", title_text="rank of the target among the negatives (1 = top)",
                        autorange="reversed", row=1, col=2)  # fmt: skip
    figure.update_yaxes(type="log", title_text="|d loss / d target score|", row=1, col=1)
    figure.update_yaxes(type="log", row=1, col=2)
    figure.update_layout(height=430, title="The gradient that reaches the target's score")
    return figure


def sweep_figure(table: pd.DataFrame, title: str, k: int = 20, ceiling: Optional[Mapping[str, float]] = None,
                 x: str = "label") -> go.Figure:  # fmt: skip
    """Recall@k and MRR@k bars per run (left axis, the ceiling dotted) and the seconds per epoch (right panel)."""
    figure = make_subplots(rows=1, cols=2, column_widths=[0.68, 0.32], horizontal_spacing=0.1,
                           subplot_titles=(f"Recall@{k} / MRR@{k}", "seconds per epoch"))  # fmt: skip
    labels = table[x].astype(str)
    for metric, color in ((f"recall@{k}", "#1f77b4"), (f"mrr@{k}", "#ff7f0e")):
        share = table.get(f"share_{metric}")
        text = [f"{v:.3f}" + (f"<br>{s:.0%}" if share is not None else "")
                for v, s in zip(table[metric], share if share is not None else table[metric])]  # fmt: skip
        figure.add_trace(go.Bar(x=labels, y=table[metric], name=metric, marker={"color": color}, text=text,
                                textposition="outside"), row=1, col=1)  # fmt: skip
        if ceiling:  # the dotted line is named in the legend: a label on the plot would sit on the bars' labels
            line = {"dash": "dot", "color": color}
            figure.add_hline(y=ceiling[metric], line=line, row=1, col=1)
            figure.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=line,
                                        name=f"ceiling {metric} {ceiling[metric]:.3f}"), row=1, col=1)  # fmt: skip
    figure.add_trace(go.Bar(x=labels, y=table["epoch_seconds"], name="s / epoch", marker={"color": "#7f7f7f"},
                            text=[f"{v:.1f}" for v in table["epoch_seconds"]], textposition="outside",
                            showlegend=False), row=1, col=2)  # fmt: skip
    top = max(float(table[f"recall@{k}"].max()), ceiling[f"recall@{k}"] if ceiling else 0.0)
    figure.update_yaxes(range=[0, top * 1.3], row=1, col=1)
    figure.update_yaxes(range=[0, float(table["epoch_seconds"].max()) * 1.3], row=1, col=2)
    figure.update_layout(barmode="group", height=420, title=title)
    return figure
