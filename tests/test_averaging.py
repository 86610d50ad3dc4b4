"""Polynomial-decay weight averaging (gru4rec/averaging.py): the rule against closed forms, and a run's average in
training, checkpoints, resume and load_run."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from gru4rec.averaging import WeightAverage
from gru4rec.config import Config
from gru4rec.model import GRU4RecModel
from gru4rec.runs import load_run
from gru4rec.train import train


def _weights(model) -> list:
    return [v.numpy() for v in model.trainable_variables]


def _iterate(eta: float, n_updates: int, seed: int = 0):
    """Set a small model's weights to random iterates, averaging after each; returns (average, iterates)."""
    model = GRU4RecModel(7, Config(layers=(3,), n_sample=4, batch_size=4))
    average = WeightAverage(model, eta)
    rng = np.random.default_rng(seed)
    iterates = []
    for _ in range(n_updates):
        for v in model.trainable_variables:
            v.assign(rng.normal(size=v.shape).astype(np.float32))
        iterates.append(_weights(model))
        average.update()
    return average, iterates


@pytest.mark.parametrize("eta, weight_of", [
    (0.0, lambda s, t: 1.0 / t),  # the plain mean of all iterates
    (1.0, lambda s, t: 2.0 * s / (t * (t + 1))),  # weights proportional to s
    (2.0, lambda s, t: 3.0 * s * (s + 1) / (t * (t + 1) * (t + 2))),  # proportional to s (s + 1)
])  # fmt: skip
def test_average_matches_its_closed_form(eta, weight_of):
    t = 6
    average, iterates = _iterate(eta, t)
    assert int(average.count.numpy()) == t
    for i, got in enumerate(_weights(average.model)):
        expected = sum(weight_of(s, t) * iterates[s - 1][i] for s in range(1, t + 1))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_first_update_copies_the_weights_and_the_source_is_not_touched():
    average, iterates = _iterate(3.0, 1)
    for got, want in zip(_weights(average.model), iterates[0]):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)  # avg + 1 * (w - avg), up to rounding
    model = GRU4RecModel(7, Config(layers=(3,), n_sample=4, batch_size=4))
    before = _weights(model)
    WeightAverage(model, 2.0).update()
    for got, want in zip(_weights(model), before):
        np.testing.assert_array_equal(got, want)


def test_negative_eta_is_refused():
    with pytest.raises(ValueError, match="weight_averaging"):
        Config(weight_averaging=-1.0)
    with pytest.raises(ValueError, match="weight_averaging"):
        WeightAverage(GRU4RecModel(7, Config(layers=(3,))), -0.5)


@pytest.mark.slow
def test_a_run_evaluates_and_saves_the_average_and_resumes_it(tiny, tmp_path):
    train_data, _ = tiny
    cfg = Config.preset("official", n_epochs=2, n_sample=32, batch_size=16, chunk_steps=32, dropout_p_hidden=0.0,
                        weight_averaging=2.0)  # fmt: skip
    full = train(cfg, train_data, tmp_path / "full", progress=False)
    raw = GRU4RecModel(train_data.n_items, cfg)
    tf.train.Checkpoint(model=raw).restore(str(tmp_path / "full" / "checkpoints" / "epoch-2")).expect_partial()
    # the result's model is the average, not the last weights (which the checkpoint keeps for resuming)
    assert any(not np.allclose(a, b) for a, b in zip(_weights(full.model), _weights(raw)))
    loaded = load_run(tmp_path / "full")
    for a, b in zip(_weights(full.model), _weights(loaded.model)):
        np.testing.assert_array_equal(a, b)
    # one epoch, then a resumed second: the same average as two epochs in one go
    train(cfg.with_overrides(n_epochs=1), train_data, tmp_path / "cut", progress=False)
    resumed = train(cfg, train_data, tmp_path / "cut", resume=True, progress=False)
    for a, b in zip(_weights(full.model), _weights(resumed.model)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_without_averaging_the_checkpoint_has_no_average(tiny, tmp_path):
    train_data, _ = tiny
    cfg = Config.preset("official", n_epochs=1, n_sample=32, batch_size=16, chunk_steps=32, weight_averaging=0.0)
    result = train(cfg, train_data, tmp_path / "run", progress=False)
    names = [name for name, _ in tf.train.list_variables(str(tmp_path / "run" / "checkpoints" / "epoch-1"))]
    assert not any(name.startswith("average/") for name in names)
    for a, b in zip(_weights(result.model), _weights(load_run(tmp_path / "run").model)):
        np.testing.assert_array_equal(a, b)


def test_the_average_moves_once_per_chunk_so_it_depends_on_chunk_steps(tiny, tmp_path):
    """Training does not depend on chunk_steps (the last weights are the same), the average does: it moves after
    every chunk, ceil(steps / chunk_steps) times an epoch."""
    train_data, _ = tiny
    base = Config.preset("official", n_epochs=1, n_sample=32, batch_size=16, layers=(8,), weight_averaging=2.0)
    runs = {}
    for chunk in (16, 48):
        cfg = base.with_overrides(chunk_steps=chunk)
        result = train(cfg, train_data, tmp_path / f"chunk{chunk}", progress=False)
        raw = GRU4RecModel(train_data.n_items, cfg)
        count = tf.Variable(0, dtype=tf.int64)
        tf.train.Checkpoint(model=raw, average=tf.train.Checkpoint(count=count)).restore(
            str(tmp_path / f"chunk{chunk}" / "checkpoints" / "epoch-1")).expect_partial()  # fmt: skip
        runs[chunk] = (_weights(raw), _weights(result.model), int(count.numpy()), result.steps)
    (raw16, avg16, count16, steps), (raw48, avg48, count48, _) = runs[16], runs[48]
    assert count16 == -(-steps // 16) and count48 == -(-steps // 48) and count16 > count48
    for a, b in zip(raw16, raw48):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # the same training
    assert any(not np.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(avg16, avg48))  # another average
