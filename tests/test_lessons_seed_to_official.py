"""The steps from the seed to the official configuration (notebook 06) and their waterfall figures."""

from __future__ import annotations

import pandas as pd
import pytest

from gru4rec.config import OFFICIAL_XE_WEIGHT_AVERAGING, Config
from gru4rec.lessons.seed_to_official import STEPS, config_differences, run_waterfall, step_configs
from gru4rec.plots.seed_to_official import gap_figure, waterfall_figure


def test_steps_go_from_the_seed_to_the_official_preset_one_change_at_a_time():
    configs = step_configs(n_epochs=3, seed=7)
    assert configs[0][1] == Config.preset("seed", n_epochs=3, seed=7)
    assert configs[0][0].tie_mode == "seed" and all(step.tie_mode == "conservative" for step in STEPS[1:])
    # the official parameter file as the TF code runs it, then the PyTorch code's cell, then the weight average:
    # the kit's default
    faithful = Config.preset("official", gru_variant="reset_before", weight_averaging=0.0, n_epochs=3, seed=7)
    assert configs[-3][1] == faithful
    assert config_differences(configs[-2][1], configs[-3][1]) == {"gru_variant": ("reset_after", "reset_before")}
    averaged = {"weight_averaging": (OFFICIAL_XE_WEIGHT_AVERAGING, 0.0)}
    assert config_differences(configs[-1][1], configs[-2][1]) == averaged
    assert configs[-1][1] == Config.preset("official", n_epochs=3, seed=7)
    keys = [(config.to_json(sort_keys=True), step.tie_mode) for step, config in configs]
    assert len(set(keys)) == len(keys)
    for (_, before), (step, after) in zip(configs[:-1], configs[1:]):
        changed = set(config_differences(before, after))
        assert changed <= set(step.change), step.name
        assert changed or step.tie_mode != "seed", step.name
    assert len({step.name for step in STEPS}) == len(STEPS)


def test_run_waterfall_counts_the_seed_model_twice_and_measures_time(tiny, tmp_path):
    train_data, test_data = tiny
    ceiling = {"recall@20": 0.8, "mrr@20": 0.4}
    seen = []
    result = run_waterfall(train_data, test_data, tmp_path, steps=STEPS[:3], ceiling=ceiling, on_step=seen.append,
                           n_epochs=1, layers=(16,), embedding=16)  # fmt: skip
    table = result.table
    assert table["step"].tolist() == [step.name for step in STEPS[:3]] == [row["step"] for row in seen]
    assert table["trained"].tolist() == [True, False, True]
    assert result.models[STEPS[0].name] is result.models[STEPS[1].name]
    assert (table["epoch_seconds"] > 0).all() and (table["recall@20"] >= table["mrr@20"]).all()
    assert table["share_recall@20"].tolist() == (table["recall@20"] / 0.8).tolist()
    assert result.configs[STEPS[2].name].epoch_end == "all_sessions" and result.configs[STEPS[0].name].n_sample == 0
    figure = waterfall_figure(table, ceiling=ceiling)
    assert [trace.type for trace in figure.data] == ["waterfall", "waterfall", "bar"]
    assert list(figure.data[0].y) == [table["recall@20"][0]] + list(table["recall@20"].diff()[1:])
    gap = gap_figure(table, (0.3, 0.9))
    assert gap.data[0].y[0] == 1 - table["recall@20"][1] / table["recall@20"][2]
    assert (gap.data[1].base[0], gap.data[1].y[0]) == pytest.approx((0.3, 0.6))


def test_gap_figure_on_a_hand_made_table():
    table = pd.DataFrame({"step": ["a", "b", "c"], "tie_mode": ["seed", "conservative", "conservative"],
                          "recall@20": [0.2, 0.21, 0.42], "mrr@20": [0.1, 0.1, 0.2], "epoch_seconds": [1, 1, 2]})
    assert gap_figure(table, (0.3, 0.9)).data[0].y[0] == 0.5
    # official_index picks the honestly evaluated row that stands for the official configuration
    assert gap_figure(table, (0.3, 0.9), official_index=0).data[0].y[0] == 0.0


@pytest.mark.slow
def test_the_weight_averaging_step_shares_the_training_of_the_step_before(tiny, tmp_path):
    """The last two steps are one training: the step before the average is measured on its last weights, which are
    those of the same configuration trained without averaging (averaging does not change training)."""
    from gru4rec.lessons.seed_to_official import measure, step_configs
    from gru4rec.train import train

    train_data, test_data = tiny
    from gru4rec.config import Config

    # the last two steps alone, from the seed with the official GRU initialisation (which the PyTorch cell needs)
    start = Config.preset("seed").with_overrides(gru_init="per_block")
    common = dict(n_epochs=1, layers=(16,), embedding=16, n_sample=32, start=start)
    kept = step_configs(STEPS[-2:], **common)[-1][1]  # the averaged run: the one later notebooks reuse
    result = run_waterfall(train_data, test_data, tmp_path / "w", steps=STEPS[-2:], keep_checkpoints=False,
                           keep_checkpoints_of=[kept], **common)
    assert (tmp_path / "w" / "00" / "checkpoints" / "epoch-1.index").exists(), "kept: its config is listed"
    assert result.table["trained"].tolist() == [True, False]
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["00"]
    assert result.configs[STEPS[-1].name].weight_averaging > 0 == result.configs[STEPS[-2].name].weight_averaging
    alone = train(step_configs(STEPS[-2:], **common)[0][1], train_data, tmp_path / "alone", progress=False)
    assert measure(alone, train_data, test_data)["recall@20"] == result.table["recall@20"][0]
    before, averaged = (result.models[s.name] for s in STEPS[-2:])
    assert before is not averaged
