"""Reusing a finished run of the same configuration and training data (gru4rec.reuse), and refusing every other."""

from __future__ import annotations

import numpy as np
import pytest

from gru4rec.config import Config
from gru4rec.evaluate import GRU4RecScorer, evaluate
from gru4rec.reuse import REUSE_IGNORED, epoch_records, load_result, reuse_note, reuse_problem, train_or_reuse
from gru4rec.run_folder import RunFolderError, drop_checkpoints
from gru4rec.session_data import SessionData
from gru4rec.train import train

CONFIG = Config.preset("official", n_epochs=2, n_sample=16, layers=(16,), batch_size=16, chunk_steps=16, seed=3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny):
    """A two-epoch run on the tiny data with weight averaging (the official preset's), and its folder."""
    train_data, _ = tiny
    run_dir = tmp_path_factory.mktemp("reuse") / "first"
    return train(CONFIG, train_data, run_dir, progress=False), run_dir


def test_the_same_run_is_read_back_not_trained_again(trained, tiny, tmp_path) -> None:
    first, run_dir = trained
    train_data, test_data = tiny
    own = tmp_path / "own"
    result = train_or_reuse(CONFIG.with_overrides(log_every=7), train_data, own, reuse=[tmp_path / "none", run_dir])
    assert result.run_dir == run_dir and not own.exists(), "nothing is trained nor written into the own folder"
    assert result.epoch_losses == pytest.approx(first.epoch_losses)
    assert result.steps == first.steps and result.updates == first.updates and result.epochs_done == 2
    assert result.seconds == pytest.approx(first.seconds) and result.events_per_s == pytest.approx(first.events_per_s)
    for a, b in zip(result.model.trainable_variables, first.model.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())  # the average, as the training returned it
    score = {name: evaluate(GRU4RecScorer(r.model, train_data.item_map, train_data.item_counts), test_data)["recall@20"]
             for name, r in (("reused", result), ("trained", first))}  # fmt: skip
    assert score["reused"] == score["trained"]
    assert reuse_note(result, own).startswith(f"reused {run_dir}")
    assert "log_every" in REUSE_IGNORED


@pytest.mark.parametrize(
    "change, words",
    [({"learning_rate": 0.1}, "learning_rate: 0.2 (run) != 0.1 (wanted)"), ({"n_epochs": 1}, "n_epochs: 2 (run)"),
     ({"seed": 4}, "seed: 3 (run) != 4 (wanted)")],
)  # fmt: skip
def test_another_configuration_is_trained_with_the_reason(trained, tiny, tmp_path, change, words) -> None:
    _, run_dir = trained
    train_data, _ = tiny
    config = CONFIG.with_overrides(**change)
    assert words in reuse_problem(run_dir, config, train_data)
    own = tmp_path / "own"
    result = train_or_reuse(config, train_data, own, reuse=[run_dir], progress=False)
    assert result.run_dir == own and (own / "config.json").exists()
    assert reuse_note(result, own) == f"trained into {own}"


def test_other_training_data_is_not_reused(trained, tiny) -> None:
    _, run_dir = trained
    train_data, _ = tiny
    fewer = SessionData.from_frame(train_data_frame(train_data).iloc[:-50])
    assert "other training data" in reuse_problem(run_dir, CONFIG, fewer)
    with pytest.raises(RunFolderError, match="other training data"):
        load_result(run_dir, CONFIG, fewer)


def test_a_run_without_its_last_checkpoint_or_records_is_not_reused(trained, tiny, tmp_path) -> None:
    _, run_dir = trained
    train_data, _ = tiny
    assert "no run there" in reuse_problem(tmp_path / "empty", CONFIG, train_data)
    copy = tmp_path / "copy"
    train(CONFIG.with_overrides(n_epochs=1), train_data, copy, progress=False)
    assert reuse_problem(copy, CONFIG.with_overrides(n_epochs=1), train_data) is None
    drop_checkpoints(copy)  # what notebooks do with runs they do not keep
    assert "no checkpoint of epoch 1" in reuse_problem(copy, CONFIG.with_overrides(n_epochs=1), train_data)
    assert len(epoch_records(run_dir, 2)) == 2
    with pytest.raises(RunFolderError, match="no record of epoch"):
        epoch_records(run_dir, 3)


def train_data_frame(data: SessionData):
    """``data`` as a SessionId/ItemId/Time frame (item ids, not indices)."""
    import pandas as pd

    lengths = np.diff(data.offsets)
    return pd.DataFrame({"SessionId": np.repeat(data.session_ids, lengths),
                         "ItemId": data.item_map.ids[data.items], "Time": np.arange(data.n_events, dtype=float)})
