"""Figures of notebook 08 (``gru4rec.plots.evaluation_flaws``) on small hand-made tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gru4rec.lessons.evaluation_flaws import compare, verdict
from gru4rec.plots import evaluation_flaws as plots

HONEST = {"gru4rec": {"recall@20": 0.3, "mrr@20": 0.1}, "pop": {"recall@20": 0.05, "mrr@20": 0.01}}
FLAWED = {"gru4rec": {"recall@20": 0.6, "mrr@20": 0.3}, "pop": {"recall@20": 0.7, "mrr@20": 0.2}}


def test_side_by_side_figure():
    figure = plots.side_by_side_figure(compare(HONEST, FLAWED), "sampled (uniform, 100)")
    assert len(figure.data) == 4  # honest and flawed, Recall and MRR
    honest_recall, flawed_recall = figure.data[0], figure.data[1]
    assert list(honest_recall.x) == ["GRU4Rec", "POP"]
    assert list(honest_recall.y) == pytest.approx([0.3, 0.05]) and list(flawed_recall.y) == pytest.approx([0.6, 0.7])
    assert flawed_recall.name == "sampled (uniform, 100)" and list(flawed_recall.customdata) == [2, 1]
    assert figure.data[3].y[1] == pytest.approx(0.2)


def test_sampled_sweep_figure():
    sweep = pd.DataFrame([
        {"model": m, "sampling": s, "n_negatives": n, "recall@20": r, "mrr@20": r / 3}
        for m in ("gru4rec", "pop") for s in ("uniform", "popularity") for n, r in ((10, 0.9), (100, 0.5))
    ])  # fmt: skip
    figure = plots.sampled_sweep_figure(sweep, HONEST, n_items=1000)
    lines = [t for t in figure.data if t.mode == "lines+markers"]
    diamonds = [t for t in figure.data if t.mode == "markers"]
    assert len(lines) == 4 and len(diamonds) == 2
    assert {t.line.dash for t in lines} == {"solid", "dash"}
    assert diamonds[0].x[0] == 999 and diamonds[0].y[0] == pytest.approx(0.3)
    assert figure.layout.xaxis.type == "log"


def test_overview_figure_marks_changed_orders():
    rows = []
    for flaw, flawed in (("sampled", FLAWED), ("same", HONEST)):
        table = compare(HONEST, flawed)
        changes = verdict(HONEST, flawed, "recall@20")["order_changes"]
        rows += [{"flaw": flaw, "model": r["model"], "ratio": r["ratio"], "order_changes": changes}
                 for r in table.to_dict("records")]  # fmt: skip
    figure = plots.overview_figure(pd.DataFrame(rows))
    heat = figure.data[0]
    assert list(heat.y) == ["sampled †", "same"] and list(heat.x) == ["GRU4Rec", "POP"]
    np.testing.assert_allclose(np.asarray(heat.z, dtype=float), np.log2([[2.0, 14.0], [1.0, 1.0]]))
