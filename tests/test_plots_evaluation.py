"""Notebook 04's computations (gru4rec.lessons.evaluation) on hand-made ranks and the tiny preset, and its figures
(gru4rec.plots.evaluation)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gru4rec.baselines import Markov, Pop
from gru4rec.datasets import ensure_preset
from gru4rec.evaluate import evaluate
from gru4rec.lessons import evaluation as lessons
from gru4rec.plots import evaluation as plots


@pytest.fixture(scope="module")
def tiny():
    files = ensure_preset("tiny", progress=None)
    train, test = files.load()
    return files, train, test


def test_recall_curve_counts_rank_at_most_k() -> None:
    curve = lessons.recall_curve(np.array([1.0, 2.0, 5.0, 50.0]), ks=[1, 2, 5, 49])
    assert curve["K"].tolist() == [1, 2, 5, 49]
    assert curve["recall"].tolist() == [0.25, 0.5, 0.75, 0.75]
    assert curve["mrr"].tolist() == pytest.approx([0.25, 0.375, 0.425, 0.425])
    assert lessons.recall_curve(np.array([]), ks=[1])["recall"].isna().all()


def test_recall_by_position_pools_the_tail() -> None:
    ranks = np.array([1.0, 30.0, 2.0, 4.0, 100.0, 1.0])
    positions = np.array([0, 0, 1, 2, 5, 3])
    table = lessons.recall_by_position(ranks, positions, k=3, max_position=3)
    assert table["label"].tolist() == ["1", "2", "≥ 3"]
    assert table["n"].tolist() == [2, 1, 3] and table["share"].sum() == pytest.approx(1.0)
    assert table["recall@3"].tolist() == pytest.approx([0.5, 1.0, 1 / 3])
    assert table["mrr@3"].tolist() == pytest.approx([0.5, 0.5, 1 / 3])
    with pytest.raises(ValueError, match="same shape"):
        lessons.recall_by_position(ranks, positions[:2])


def test_preset_oracle_gives_back_the_stored_ceiling(tiny) -> None:
    files, train, test = tiny
    result = evaluate(lessons.preset_oracle("tiny", train.item_map), test, cutoffs=(5, 20))
    stored = files.ceiling()
    assert result["recall@20"] == pytest.approx(stored["recall@20"])
    assert result["mrr@5"] == pytest.approx(stored["mrr@5"])
    with pytest.raises(ValueError, match="unknown preset"):
        lessons.preset_oracle("huge", train.item_map)


def test_tie_mode_table_textbook_markov_flatters_under_the_seed_count(tiny) -> None:
    _, train, test = tiny
    scorers = {"pop": Pop().fit(train), "markov": Markov(tie_breaker=False).fit(train)}
    table = lessons.tie_mode_table(scorers, test, k=20)
    assert table["model"].tolist() == ["pop"] * 4 + ["markov"] * 4
    assert table["tie_mode"].tolist()[:4] == ["seed", "standard", "median", "conservative"]
    markov = table[table["model"] == "markov"].set_index("tie_mode")["recall@20"]
    # most items score 0 for a textbook Markov chain: the seed's count calls those ties hits
    assert markov["seed"] > markov["conservative"] + 0.05
    assert markov["standard"] >= markov["median"] >= markov["conservative"]
    assert (table["mrr@20"] <= table["recall@20"]).all()


class _FakeRecommender:
    """Ranks items by id (descending) whatever the session; records what it was asked."""

    n_items = 5

    def __init__(self) -> None:
        self.observed, self.ended = [], []

    def observe(self, session_id, item_id, k):
        from gru4rec.recommend import Recommendations

        self.observed.append((session_id, item_id, k))
        ids = np.array([50, 40, 30, 20, 10])[:k]
        return Recommendations(ids, np.arange(len(ids), 0, -1).astype(np.float32))

    def end_session(self, session_id) -> bool:
        self.ended.append(session_id)
        return True


def test_session_walkthrough() -> None:
    fake = _FakeRecommender()
    table = lessons.session_walkthrough(fake, [10, 30, 99], k=2, session_id="s")
    assert table["click"].tolist() == [1, 2] and table["clicked"].tolist() == [10, 30]
    assert table["next"].tolist() == [30, 99]
    assert table["rank_of_next"].tolist()[0] == 3 and pd.isna(table["rank_of_next"].tolist()[1])
    assert table["top_2"].tolist() == [[50, 40], [50, 40]]
    assert [o[1] for o in fake.observed] == [10, 30] and fake.ended == ["s"]
    with pytest.raises(ValueError, match="two clicks"):
        lessons.session_walkthrough(fake, [10])


def test_tie_modes_figure_groups_by_mode() -> None:
    table = pd.DataFrame(
        {
            "model": ["a", "a", "b", "b"],
            "tie_mode": ["seed", "conservative"] * 2,
            "counting": [lessons.TIE_MODE_LABELS["seed"], lessons.TIE_MODE_LABELS["conservative"]] * 2,
            "recall@20": [0.9, 0.3, 0.5, 0.5],
        }
    )
    figure = plots.tie_modes_figure(table)
    assert [t.name for t in figure.data] == [lessons.TIE_MODE_LABELS["seed"], lessons.TIE_MODE_LABELS["conservative"]]
    assert list(figure.data[0].y) == [0.9, 0.5] and list(figure.data[1].x) == ["a", "b"]
    assert figure.layout.barmode == "group"


def test_metrics_figure_draws_the_ceiling_as_a_line() -> None:
    metrics = {
        "gru4rec": {"recall@20": 0.6, "mrr@20": 0.3},
        "pop": {"recall@20": 0.05, "mrr@20": 0.01},
        "ceiling": {"recall@20": 0.8, "mrr@20": 0.4},
    }
    figure = plots.metrics_figure(metrics)
    assert [list(t.x) for t in figure.data] == [["gru4rec", "pop"]] * 2
    assert list(figure.data[0].marker.color) == [plots.MODEL_COLORS["gru4rec"], plots.MODEL_COLORS["pop"]]
    assert sorted(shape.y0 for shape in figure.layout.shapes) == [0.4, 0.8]


def test_recall_at_k_and_position_figures() -> None:
    curve = lessons.recall_curve(np.array([1.0, 3.0, 60.0]), ks=range(1, 51))
    figure = plots.recall_at_k_figure({"gru4rec": curve, "ceiling (oracle)": curve},
                                      marks={"ceiling (stored)": {"recall@5": 0.6, "recall@20": 0.7, "mrr@20": 0.3}})
    line, oracle, marks = figure.data
    assert len(line.x) == 50 and oracle.line.dash == "dash"
    assert list(marks.x) == [5, 20] and list(marks.y) == [0.6, 0.7]
    table = lessons.recall_by_position(np.array([1.0, 30.0, 2.0]), np.array([0, 0, 4]), max_position=3)
    figure = plots.recall_by_position_figure({"gru4rec": table, "pop": table})
    bars, first, second = figure.data
    assert list(bars.y) == [2, 1] and list(first.x) == ["1", "≥ 3"] and list(first.y) == [0.5, 1.0]
    assert second.name == "pop" and first.line.color != second.line.color
