"""Figures of notebook 06 (from the seed to the official GRU4Rec): the waterfall of Recall@K / MRR@K over the steps
of :mod:`gru4rec.lessons.seed_to_official`, the epoch time of each step, and the measured gap beside the published
one. Each function takes the step table of :func:`gru4rec.lessons.seed_to_official.run_waterfall`."""

from __future__ import annotations

from typing import Mapping, Optional

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["waterfall_figure", "gap_figure"]


def waterfall_figure(table: pd.DataFrame, k: int = 20, ceiling: Optional[Mapping[str, float]] = None) -> go.Figure:
    """Three stacked panels over the steps (x): Recall@k and MRR@k as waterfalls (the first bar absolute, then each
    step's change; labels give the value and its share of the ceiling), and the mean epoch time of each step."""
    figure = make_subplots(
        rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06, row_heights=[0.4, 0.4, 0.2],
        subplot_titles=(f"Recall@{k}", f"MRR@{k}", "training time per epoch (s)"),
    )  # fmt: skip
    steps = table["step"].tolist()
    for row, metric in ((1, f"recall@{k}"), (2, f"mrr@{k}")):
        values = table[metric].tolist()
        deltas = [values[0]] + [b - a for a, b in zip(values[:-1], values[1:])]
        share = [v / ceiling[metric] for v in values] if ceiling else None
        text = [f"{v:.3f}" + (f"<br>{s:.0%} of ceiling" if share else "") for v, s in zip(values, share or values)]
        figure.add_trace(
            go.Waterfall(
                x=steps, y=deltas, measure=["absolute"] + ["relative"] * (len(values) - 1), text=text,
                textposition="outside", name=metric, showlegend=False, connector={"line": {"color": "#bbbbbb"}},
                increasing={"marker": {"color": "#2ca02c"}}, decreasing={"marker": {"color": "#d62728"}},
                totals={"marker": {"color": "#1f77b4"}},
                hovertemplate=f"%{{x}}<br>{metric} change %{{y:+.4f}}<extra></extra>",
            ),
            row=row, col=1,
        )  # fmt: skip
        if ceiling:
            figure.add_hline(
                y=ceiling[metric], line={"dash": "dot", "color": "#d62728"}, row=row, col=1,
                annotation_text=f"ceiling {ceiling[metric]:.3f}", annotation_position="top left",
            )  # fmt: skip
        top = max(max(values), ceiling[metric] if ceiling else 0.0)
        figure.update_yaxes(range=[0, top * 1.3], row=row, col=1)
    figure.add_trace(
        go.Bar(x=steps, y=table["epoch_seconds"], marker={"color": "#7f7f7f"}, showlegend=False,
               text=[f"{v:.1f}" for v in table["epoch_seconds"]], textposition="outside",
               hovertemplate="%{x}<br>%{y:.2f} s per epoch<extra></extra>"),
        row=3, col=1,
    )  # fmt: skip
    figure.update_yaxes(range=[0, float(table["epoch_seconds"].max()) * 1.35], row=3, col=1)
    figure.update_layout(height=900, margin={"t": 60, "b": 140}, title="From the seed to the official GRU4Rec")
    return figure


def gap_figure(table: pd.DataFrame, published_range: tuple, k: int = 20, source: str = "",
               official_index: int = -1) -> go.Figure:  # fmt: skip
    """How far below the official configuration (the honestly evaluated row ``official_index``, default the last)
    the seed's honest Recall@k sits, as a share of the official value, beside the published range for third-party
    ports (a bar from its low to its high end)."""
    honest = table[table["tie_mode"] == "conservative"]
    seed, official = float(honest[f"recall@{k}"].iloc[0]), float(honest[f"recall@{k}"].iloc[official_index])
    measured = 1.0 - seed / official if official > 0 else float("nan")
    low, high = published_range
    figure = go.Figure()
    figure.add_trace(go.Bar(x=["measured here"], y=[measured], marker={"color": "#1f77b4"}, name="measured",
                            text=[f"{measured:.0%}"], textposition="outside"))  # fmt: skip
    figure.add_trace(go.Bar(x=["published"], y=[high - low], base=[low], marker={"color": "#ff7f0e"},
                            name="published", text=[f"{low:.0%}–{high:.0%}"], textposition="outside"))  # fmt: skip
    figure.update_layout(
        title=f"Recall@{k} of the seed below the official configuration (share of the official value)",
        yaxis={"tickformat": ".0%", "range": [min(0.0, measured) - 0.05, 1.05]}, showlegend=False, height=380,
        annotations=[{"text": f"published: {source}", "showarrow": False, "xref": "paper", "yref": "paper",
                      "x": 0, "y": -0.22, "font": {"size": 10}}],
    )  # fmt: skip
    return figure
