"""The gradient on the target's score per loss (notebook 07), against the formulas, and the sweep helper."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gru4rec.config import LOSSES, Config
from gru4rec.lessons.losses import controlled_scores, gradient_table, run_sweep, shrink_factor, target_gradient
from gru4rec.plots.losses import gradient_figure, sweep_figure


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize("rank", [0, 1, 7, 40])
def test_controlled_scores_put_exactly_rank_negatives_above_the_target(rank):
    scores = controlled_scores(40, rank, score_std=2.0, seed=3)
    assert scores.shape == (41,) and int((scores[1:] > scores[0]).sum()) == rank
    assert np.array_equal(controlled_scores(80, 0, 2.0, 3)[1:41], scores[1:])  # more negatives keep the first ones


def test_controlled_scores_errors():
    with pytest.raises(ValueError, match="rank"):
        controlled_scores(10, 11)
    with pytest.raises(ValueError, match="n_negatives"):
        controlled_scores(0, 0)
    with pytest.raises(ValueError, match="loss"):
        target_gradient("hinge", 10, 1)


def test_gradients_match_the_formulas():
    n, rank = 50, 4
    scores = controlled_scores(n, rank, 3.0, 0).astype(np.float64)
    t, neg = scores[0], scores[1:]
    p = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    assert target_gradient("cross-entropy", n, rank) == pytest.approx(1 - p[0], rel=1e-4)
    assert target_gradient("bpr", n, rank) == pytest.approx(sigmoid(neg - t).sum() / (n + 1), rel=1e-4)
    weights = np.exp(neg - neg.max()) / np.exp(neg - neg.max()).sum()
    d = sigmoid(t - neg)
    assert target_gradient("bpr-max", n, rank) == pytest.approx((weights * d * (1 - d)).sum() / (weights * d).sum(),
                                                                rel=1e-4)  # fmt: skip
    top1 = (sigmoid(neg - t) * (1 - sigmoid(neg - t))).sum() / (n + 1)
    assert target_gradient("top1", n, rank) == pytest.approx(top1, rel=1e-4)


def test_averaged_losses_lose_their_gradient_with_more_negatives_and_max_losses_keep_it():
    table = gradient_table(LOSSES, [16, 256, 4096], [0, 5, 100], score_std=3.0)
    assert len(table) == 5 * (3 + 3 + 2)  # rank 100 only where there are 100 negatives
    assert shrink_factor(table, "bpr", 5) > 10 and shrink_factor(table, "top1", 5) > 5
    assert shrink_factor(table, "bpr-max", 5) < shrink_factor(table, "bpr", 5) / 5
    figure = gradient_figure(table, rank=5, n_negatives=256)
    assert len(figure.data) == 2 * len(LOSSES)


@pytest.mark.slow
def test_run_sweep_trains_each_distinct_config_once(tiny, tmp_path):
    train_data, test_data = tiny
    base = Config.preset("official", n_epochs=1, layers=(16,), n_sample=32)
    configs = {"a": base, "b": base.with_overrides(n_sample=0), "a again": base}
    table = run_sweep(configs, train_data, test_data, tmp_path, ceiling={"recall@20": 0.8, "mrr@20": 0.4},
                      n_sample={"a": 32, "b": 0, "a again": 32})  # fmt: skip
    assert table["label"].tolist() == ["a", "b", "a again"] and table["n_sample"].tolist() == [32, 0, 32]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00", "01"]
    assert table.loc[0, "recall@20"] == table.loc[2, "recall@20"]
    assert (table["epoch_seconds"] > 0).all()
    assert len(sweep_figure(table, "t", ceiling={"recall@20": 0.8, "mrr@20": 0.4}).data) == 5  # 3 bars, 2 ceilings


def test_sweep_figure_names_the_ceilings_in_the_legend_not_over_the_bars():
    table = pd.DataFrame({"label": ["a", "b"], "recall@20": [0.5, 0.6], "mrr@20": [0.2, 0.25],
                          "share_recall@20": [0.6, 0.7], "share_mrr@20": [0.5, 0.6], "epoch_seconds": [1.0, 2.0]})
    figure = sweep_figure(table, "t", ceiling={"recall@20": 0.8, "mrr@20": 0.4})
    texts = [a.text for a in figure.layout.annotations]
    assert not any("ceiling" in t for t in texts), texts  # only the subplot titles are annotations
    names = [trace.name for trace in figure.data if trace.showlegend is not False]
    assert "ceiling recall@20 0.800" in names and "ceiling mrr@20 0.400" in names
    assert [shape.y0 for shape in figure.layout.shapes] == [0.8, 0.4]


@pytest.mark.slow
def test_run_sweep_reads_a_finished_run_of_the_same_config_and_leaves_its_folder_alone(tiny, tmp_path):
    from gru4rec.run_folder import RunFolder
    from gru4rec.train import train

    train_data, test_data = tiny
    base = Config.preset("official", n_epochs=1, layers=(16,), n_sample=32)
    earlier = tmp_path / "earlier"
    train(base, train_data, earlier, progress=False)
    configs = {"base": base, "other": base.with_overrides(n_sample=0)}
    table = run_sweep(configs, train_data, test_data, tmp_path / "sweep", keep_checkpoints=False,
                      reuse=[tmp_path / "missing", earlier])  # fmt: skip
    assert table["reused_from"][0] == str(earlier) and pd.isna(table["reused_from"][1])  # None: trained here
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir()) == ["01"], "the reused config is not trained"
    assert RunFolder(earlier).checkpoint_epochs() == [1], "a reused folder keeps its checkpoints"
    assert RunFolder(tmp_path / "sweep" / "01").checkpoint_epochs() == [], "the sweep's own run drops them"
