"""Training: the in-graph update equals plain autodiff, chunking does not change the numbers, the model learns,
resume ends where an uninterrupted run ends, NaN and bad input give clear errors, the run folder is complete."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from gru4rec.baselines import make_baseline
from gru4rec.config import Config
from gru4rec.evaluate import GRU4RecScorer, evaluate
from gru4rec.logs import parse_log
from gru4rec.losses import row_losses
from gru4rec.runs import checkpoint_epochs, load_run
from gru4rec.session_data import SessionData
from gru4rec.train import Callback, Trainer, TrainingError, plan_epoch, train

TINY = Path(__file__).resolve().parents[1] / "data" / "tiny"


def _random_data(n_sessions=40, n_items=25, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 7, n_sessions)
    frame = pd.DataFrame(
        {
            "SessionId": np.repeat(np.arange(n_sessions), lengths),
            "ItemId": rng.integers(0, n_items, lengths.sum()),
            "Time": np.arange(lengths.sum(), dtype=float),
        }
    )
    return SessionData.from_frame(frame)


def _weights(model):
    return [v.numpy() for v in model.trainable_variables]


# ------------------------------------------------------------------------------------------------ the update itself
def _reference_update(trainer, x, y, r, v, smp, state):
    """One window by plain autodiff over the variables, applied through the optimizer's generic (coalescing) path."""
    cfg, model = trainer.config, trainer.model
    k = x.shape[0]
    with tf.GradientTape() as tape:
        h = state
        total = 0.0
        for i in range(k):
            h = [tf.where(r[i][:, None], tf.zeros_like(s), s) for s in h]
            hidden, h = model.step(x[i], h)
            cols = tf.concat([y[i], smp[i]], 0)
            scores = model.score_items(hidden, cols)
            adjust = None
            if trainer.logq_table is not None:
                adjust = tf.concat([tf.gather(trainer.logq_table, y[i]),
                                    cfg.sample_alpha * tf.gather(trainer.logq_table, smp[i])], 0)  # fmt: skip
            total += tf.reduce_sum(row_losses(scores, v[i], cfg.loss, cfg.final_activation, cfg.bpreg, adjust))
        n_real = max(int(np.any(v.numpy(), axis=1).sum()), 1)
        loss = total / (cfg.batch_size * (1 if k == 1 else n_real))
    grads = tape.gradient(loss, trainer.variables)
    trainer.optimizer.apply(grads)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(constrained_embedding=True, logq=1.0, n_sample=6, momentum=0.3),
        dict(constrained_embedding=False, embedding=0, n_sample=0, optimizer="adam", dropout_p_hidden=0.0),
        dict(constrained_embedding=False, embedding=3, n_sample=8, logq=0.5, final_act="tanh"),
        dict(constrained_embedding=True, n_sample=7, final_act="tanh"),
        dict(constrained_embedding=False, embedding=5, n_sample=4, loss="bpr-max", bpreg=0.5),
        dict(constrained_embedding=False, embedding=0, n_sample=0, loss="top1-max", layers=(6, 5)),
        dict(constrained_embedding=True, n_sample=5, bptt_steps=3, optimizer="adam", loss="top1"),
        dict(constrained_embedding=False, embedding=4, n_sample=0, bptt_steps=2, loss="bpr"),
        dict(constrained_embedding=True, logq=1.0, n_sample=6, momentum=0.3, gru_variant="reset_after"),
        dict(constrained_embedding=False, embedding=0, n_sample=5, layers=(6, 5), gru_variant="reset_after"),
        dict(constrained_embedding=False, embedding=3, n_sample=4, bptt_steps=3, layers=(6, 6),
             gru_variant="reset_after", loss="bpr-max"),
        dict(constrained_embedding=True, n_sample=4, bptt_steps=2, optimizer="adam", gru_variant="reset_after"),
    ],
)
def test_in_graph_window_equals_plain_autodiff(overrides):
    cfg = Config.from_dict({"layers": (6,), "batch_size": 4, "learning_rate": 0.1, "chunk_steps": 6, **overrides})
    k = cfg.bptt_steps
    rng = np.random.default_rng(1)
    counts = rng.integers(1, 20, 15)
    a, b = Trainer(cfg, 15, counts), Trainer(cfg, 15, counts)
    x = tf.constant(rng.integers(0, 15, (k, 4)), tf.int32)
    y = tf.constant(rng.integers(0, 15, (k, 4)), tf.int32)
    r = tf.constant(rng.random((k, 4)) < 0.3)
    valid = np.ones((k, 4), bool)
    valid[:, 2] = False  # an invalid lane: its target is no positive and no negative
    x = tf.where(valid, x, x[:, :1])  # as plan_epoch does: invalid lanes reuse a valid lane's items
    y = tf.where(valid, y, y[:, :1])
    v = tf.constant(valid)
    smp = tf.constant(rng.integers(0, 15, (k, cfg.n_sample)), tf.int32)
    state = [tf.constant(rng.normal(size=(4, n)), tf.float32) for n in cfg.layers]
    new_state, _ = a.update_window(x, y, r, v, smp, state)
    _reference_update(b, x, y, r, v, smp, state)
    for got, expected in zip(_weights(a.model), _weights(b.model)):
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-6)
    for slots_a, slots_b in zip(a.optimizer.slots, b.optimizer.slots):
        for name in slots_a:
            np.testing.assert_allclose(slots_a[name].numpy(), slots_b[name].numpy(), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize(
    "overrides,over_distinct_items",
    [
        (dict(loss="cross-entropy", logq=1.0), True),  # the official configuration
        (dict(loss="cross-entropy", logq=0.0, final_act="tanh"), True),  # the activation applies per item
        (dict(loss="cross-entropy", logq=1.0, final_act="tanh"), False),  # act(r - logQ) differs per column
        (dict(loss="bpr-max", bpreg=1.0), False),
    ],
)
def test_which_steps_use_the_cross_entropy_over_distinct_items(overrides, over_distinct_items):
    cfg = Config.from_dict({"layers": (4,), "batch_size": 2, "n_sample": 3, **overrides})
    assert Trainer(cfg, 10, np.ones(10))._xe_over_unique is over_distinct_items


def test_plan_epoch_masks_fills_and_pads():
    data = _random_data(n_sessions=30)
    cfg = Config(batch_size=8, n_sample=3, layers=(4,))
    plan = plan_epoch(data, cfg, epoch=0, chunk=16)
    assert plan.inputs.shape[0] % 16 == 0 and plan.n_events == data.n_pairs
    assert not plan.valid[plan.n_steps :].any()
    for t in range(plan.n_steps):  # invalid lanes only carry items that valid lanes of the step carry
        ok = plan.valid[t]
        assert set(plan.inputs[t, ~ok]) <= set(plan.inputs[t, ok])
        assert set(plan.targets[t, ~ok]) <= set(plan.targets[t, ok])
    in_batch_only = plan_epoch(data, cfg.with_overrides(n_sample=0), epoch=0, chunk=16)
    assert in_batch_only.valid[: in_batch_only.n_steps].sum(axis=1).min() >= 2  # stops where < 2 lanes are left


def test_chunk_size_does_not_change_the_numbers(tmp_path):
    data = _random_data()
    base = dict(layers=(6,), batch_size=5, n_sample=4, n_epochs=2, dropout_p_hidden=0.3, momentum=0.2, log_every=7)
    a = train(Config.from_dict({**base, "chunk_steps": 5}), data, tmp_path / "a", progress=False)
    b = train(Config.from_dict({**base, "chunk_steps": 64}), data, tmp_path / "b", progress=False)
    for wa, wb in zip(_weights(a.model), _weights(b.model)):
        np.testing.assert_array_equal(wa, wb)
    assert a.epoch_losses == b.epoch_losses


# ------------------------------------------------------------------------------------------------ learning
def _recall20(model, data):
    return evaluate(GRU4RecScorer(model, output="numpy"), data, cutoffs=(20,))["recall@20"]


@pytest.mark.slow
@pytest.mark.parametrize("bptt_steps", [1, 4])
def test_learns_on_tiny_and_beats_popularity(tiny, tmp_path, bptt_steps):
    train_data, test_data = tiny
    cfg = Config.preset("seed", n_epochs=3, learning_rate=0.005, dropout_p_hidden=0.1, bptt_steps=bptt_steps,
                        log_every=20, chunk_steps=32)  # fmt: skip
    result = train(cfg, train_data, tmp_path / "run", valid_data=test_data, progress=False)
    losses = result.epoch_losses
    assert losses[0] > losses[1] > losses[2] and losses[2] < losses[0] - 0.3, losses
    pop = evaluate(make_baseline("pop", train_data), test_data, cutoffs=(20,))["recall@20"]
    recall = _recall20(result.model, test_data)
    assert recall > pop + 0.1, (recall, pop)
    assert result.history[-1]["valid_recall@20"] == pytest.approx(recall)


# ------------------------------------------------------------------------------------------------ run folder, resume
@pytest.mark.slow
def test_run_folder_resume_and_load(tiny, tmp_path):
    train_data, _ = tiny
    cfg = Config.preset("official", n_epochs=3, n_sample=32, batch_size=16, log_every=25, chunk_steps=32)
    full = train(cfg, train_data, tmp_path / "full", progress=False)
    first = train(cfg.with_overrides(n_epochs=1), train_data, tmp_path / "cut", progress=False)
    assert first.epochs_done == 1
    resumed = train(cfg, train_data, tmp_path / "cut", resume=True, progress=False)
    assert resumed.epochs_done == 3 and resumed.steps == full.steps and resumed.updates == full.updates
    for wa, wb in zip(_weights(full.model), _weights(resumed.model)):
        np.testing.assert_array_equal(wa, wb)
    assert resumed.epoch_losses == full.epoch_losses[1:]

    run = tmp_path / "cut"
    for name in ("config.json", "items.tsv", "item_support.npy", "train.log", "train.jsonl"):
        assert (run / name).exists(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    meta = json.loads((run / "config.json").read_text())
    assert meta["n_items"] == train_data.n_items and "device:" in meta["device"]["ran_on"]
    assert meta["versions"]["tensorflow"] == tf.__version__
    log = parse_log((run / "train.log").read_text())
    assert log["step"].iloc[0] == 1 and (log["step"].iloc[1:] % 25 == 0).all()
    assert log["epoch"].max() == 2 and log["step"].is_monotonic_increasing
    records = [json.loads(line) for line in (run / "train.jsonl").read_text().splitlines()]
    assert [r["epochs_done"] for r in records if r["kind"] == "epoch"] == [1, 2, 3]
    full_log = parse_log((tmp_path / "full" / "train.log").read_text())
    np.testing.assert_allclose(log["loss"], full_log["loss"], rtol=1e-12)

    assert checkpoint_epochs(run) == [1, 2, 3]
    loaded = load_run(run)
    assert loaded.epoch == 3 and loaded.config == cfg and len(loaded.item_map) == train_data.n_items
    for wa, wb in zip(_weights(full.model), _weights(loaded.model)):
        np.testing.assert_array_equal(wa, wb)
    assert load_run(run, epoch=1).epoch == 1
    with pytest.raises(ValueError, match="epoch"):
        load_run(run, epoch=7)
    with pytest.raises(ValueError, match="already holds a run"):
        train(cfg, train_data, run, progress=False)
    with pytest.raises(ValueError, match="learning_rate"):
        train(cfg.with_overrides(learning_rate=0.5), train_data, run, resume=True, progress=False)


def test_reset_after_checkpoints_round_trip_and_old_runs_load_as_reset_before(tiny, tmp_path):
    train_data, _ = tiny
    cfg = Config.preset("official", n_epochs=1, n_sample=16, batch_size=16, chunk_steps=16)
    after = train(cfg.with_overrides(gru_variant="reset_after"), train_data, tmp_path / "after", progress=False,
                  max_steps=40)  # fmt: skip
    loaded = load_run(tmp_path / "after")
    assert loaded.config.gru_variant == "reset_after"
    assert any(np.any(layer.bh.numpy() != 0) for layer in after.model.gru_layers)  # the recurrent bias trains
    for wa, wb in zip(_weights(after.model), _weights(loaded.model)):
        np.testing.assert_array_equal(wa, wb)
    # a run folder written before gru_variant existed: config.json without it loads as the reset-before GRU
    before = train(cfg.with_overrides(gru_variant="reset_before"), train_data, tmp_path / "old", progress=False,
                   max_steps=40)  # fmt: skip
    meta_path = tmp_path / "old" / "config.json"
    meta = json.loads(meta_path.read_text())
    del meta["config"]["gru_variant"]
    meta_path.write_text(json.dumps(meta))
    old = load_run(tmp_path / "old")
    assert old.config.gru_variant == "reset_before" and not hasattr(old.model.gru_layers[0], "bh")
    for wa, wb in zip(_weights(before.model), _weights(old.model)):
        np.testing.assert_array_equal(wa, wb)


def test_first_logged_loss_is_log_batch_and_callbacks(tiny, tmp_path):
    train_data, _ = tiny
    seen = {"log": [], "epoch": [], "end": 0}

    class Recorder(Callback):
        def on_epoch_end(self, record):
            seen["epoch"].append(record)

        def on_train_end(self, result):
            seen["end"] += 1

    cfg = Config.preset("seed", n_epochs=1, dropout_p_hidden=0.0, log_every=50)
    train(cfg, train_data, tmp_path / "r", callbacks=[seen["log"].append, Recorder()], progress=False)
    assert seen["log"][0]["step"] == 1 and seen["log"][0]["loss"] == pytest.approx(math.log(50), abs=0.01)
    assert seen["log"][0]["lr"] == pytest.approx(0.001)
    assert len(seen["epoch"]) == 1 and seen["end"] == 1


# ------------------------------------------------------------------------------------------------ failures
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny, tmp_path):
    train_data, _ = tiny

    class Poison(Callback):
        def __init__(self):
            self.model = None

        def on_epoch_end(self, record):  # after epoch 1's checkpoint: break the weights
            poisoned.model.Wy.assign(tf.fill(poisoned.model.Wy.shape, np.nan))

    poisoned = Poison()
    cfg = Config.preset("seed", n_epochs=3, log_every=1000)
    original = Trainer.__init__

    def capture(self, *args, **kwargs):
        original(self, *args, **kwargs)
        poisoned.model = self.model

    Trainer.__init__ = capture
    try:
        with pytest.raises(TrainingError, match=r"NaN at step \d+ \(epoch 1\).*epoch-1"):
            train(cfg, train_data, tmp_path / "nan", callbacks=[poisoned], progress=False)
    finally:
        Trainer.__init__ = original
    assert checkpoint_epochs(tmp_path / "nan") == [1]
    assert np.all(np.isfinite(load_run(tmp_path / "nan").model.Wy.numpy()))


def test_bad_training_data(tmp_path):
    empty = SessionData.from_frame(pd.DataFrame({"SessionId": [1], "ItemId": [5], "Time": [0.0]}))
    with pytest.raises(ValueError, match="empty"):
        train(Config(batch_size=2), empty, tmp_path / "e", progress=False)
    data = _random_data(n_sessions=6)
    with pytest.raises(ValueError, match="batch_size 10 is larger than the number of training sessions \\(6\\)"):
        train(Config(batch_size=10), data, tmp_path / "b", progress=False)
    single = SessionData.from_frame(pd.DataFrame({"SessionId": [1] * 5, "ItemId": [1, 2, 3, 2, 1], "Time": range(5)}))
    with pytest.raises(ValueError, match="single session"):
        train(Config(batch_size=2, n_sample=0), single, tmp_path / "s", progress=False)
    ok = train(Config(batch_size=1, n_sample=3, layers=(4,), n_epochs=1), single, tmp_path / "one", progress=False)
    assert ok.steps == 4 and np.isfinite(ok.epoch_losses[0])


# ------------------------------------------------------------------------------------------------ official semantics
def _frame_and_data(n_sessions=30, n_items=20, seed=3):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 6, n_sessions)
    frame = pd.DataFrame({"SessionId": np.repeat(np.arange(n_sessions), lengths),
                          "ItemId": 100 + rng.zipf(1.6, lengths.sum()) % n_items,
                          "Time": np.arange(lengths.sum(), dtype=float)})  # fmt: skip
    return frame, SessionData.from_frame(frame)


@pytest.mark.parametrize("loss", ["bpr-max", "top1", "bpr", "top1-max"])
def test_logq_changes_only_cross_entropy(loss):
    cfg = Config.from_dict(dict(layers=(5,), batch_size=4, n_sample=6, loss=loss, logq=1.0, momentum=0.1))
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 50, 15)
    with_logq, without = Trainer(cfg, 15, counts), Trainer(cfg.with_overrides(logq=0.0), 15, counts)
    # the official TF/PyTorch codes use logq in the cross-entropy only (the Theano code: in every loss)
    assert with_logq.logq_table is None
    x, y = (tf.constant(rng.integers(0, 15, (1, 4)), tf.int32) for _ in range(2))
    r, v = tf.zeros((1, 4), tf.bool), tf.ones((1, 4), tf.bool)
    smp = tf.constant(rng.integers(0, 15, (1, 6)), tf.int32)
    state = [tf.zeros((4, 5))]
    _, sums_a = with_logq.update_window(x, y, r, v, smp, state)
    _, sums_b = without.update_window(x, y, r, v, smp, state)
    np.testing.assert_array_equal(sums_a.numpy(), sums_b.numpy())
    for wa, wb in zip(_weights(with_logq.model), _weights(without.model)):
        np.testing.assert_array_equal(wa, wb)


def test_logq_of_the_trainer_equals_the_official_p0_correction():
    # the official codes: P0 = raw training counts per item; O - logq * log([P0[targets], P0[samples] ** alpha])
    frame, data = _frame_and_data()
    cfg = Config.from_dict(dict(layers=(6,), batch_size=4, n_sample=5, logq=0.7, sample_alpha=0.4))
    trainer, twin = Trainer(cfg, data.n_items, data.item_counts), Trainer(cfg, data.n_items, data.item_counts)
    p0 = frame.groupby("ItemId").size()[data.item_map.ids].to_numpy(np.float64)  # in item-index order
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, data.n_items, (2, 4))
    smp = rng.integers(0, data.n_items, 5)
    state = [tf.constant(rng.normal(size=(4, 6)), tf.float32)]
    hidden, _ = twin.model.step(tf.constant(x, tf.int32), state)
    scores = twin.model.score_items(hidden, tf.constant(np.concatenate([y, smp]), tf.int32)).numpy().astype(float)
    scores = scores - cfg.logq * np.log(np.concatenate([p0[y], p0[smp] ** cfg.sample_alpha]))
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    expected = -np.log(np.diag(e / e.sum(axis=1, keepdims=True)) + 1e-24).sum()
    _, sums = trainer.update_window(tf.constant(x[None], tf.int32), tf.constant(y[None], tf.int32),
                                    tf.zeros((1, 4), tf.bool), tf.ones((1, 4), tf.bool),
                                    tf.constant(smp[None], tf.int32), state)  # fmt: skip
    np.testing.assert_allclose(sums.numpy()[0], expected, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("gru_variant", ["reset_before", "reset_after"])
def test_an_epoch_carries_the_hidden_state_like_a_naive_step_loop(gru_variant):
    _, data = _frame_and_data()
    cfg = Config.from_dict(dict(layers=(6,), batch_size=4, n_sample=3, chunk_steps=8, dropout_p_hidden=0.2,
                                momentum=0.3, gru_variant=gru_variant))  # fmt: skip
    fast = Trainer(cfg, data.n_items, data.item_counts)
    naive = Trainer(cfg, data.n_items, data.item_counts)
    fast.run_epoch(data, epoch=0)
    plan = plan_epoch(data, cfg, epoch=0, chunk=1)
    state = naive.model.initial_state(4)
    for t in range(plan.n_steps):  # one step at a time; the state of step t goes into step t + 1
        state, _ = naive.update_window(plan.inputs[t : t + 1], plan.targets[t : t + 1], plan.resets[t : t + 1],
                                       plan.valid[t : t + 1], naive.sampler.take(1), state)  # fmt: skip
    for wa, wb in zip(_weights(fast.model), _weights(naive.model)):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    forgetful = Trainer(cfg, data.n_items, data.item_counts)
    for t in range(plan.n_steps):  # the same steps, the state zeroed every step: different weights
        forgetful.update_window(plan.inputs[t : t + 1], plan.targets[t : t + 1], plan.resets[t : t + 1],
                                plan.valid[t : t + 1], forgetful.sampler.take(1), forgetful.model.initial_state(4))
    assert max(np.abs(a - b).max() for a, b in zip(_weights(fast.model), _weights(forgetful.model))) > 1e-4


@pytest.mark.parametrize("loss", ["cross-entropy", "bpr-max"])
def test_masked_lanes_give_the_update_of_an_explicitly_shrunk_batch(loss):
    # the official codes drop finished lanes from the mini-batch (and still divide by batch_size); the kit masks them
    cfg = Config.from_dict(dict(layers=(6,), batch_size=5, n_sample=4, loss=loss, logq=1.0 if loss == "cross-entropy"
                                else 0.0, momentum=0.2, learning_rate=0.1))  # fmt: skip
    rng = np.random.default_rng(2)
    counts = rng.integers(1, 30, 12)
    masked, shrunk = Trainer(cfg, 12, counts), Trainer(cfg, 12, counts)
    valid = np.array([True, False, True, True, False])
    x, y = rng.integers(0, 12, 5), rng.integers(0, 12, 5)
    x[~valid], y[~valid] = x[0], y[0]  # as plan_epoch fills them
    smp = rng.integers(0, 12, 4)
    state = [tf.constant(rng.normal(size=(5, 6)), tf.float32)]
    new_state, _ = masked.update_window(tf.constant(x[None], tf.int32), tf.constant(y[None], tf.int32),
                                        tf.zeros((1, 5), tf.bool), tf.constant(valid[None]),
                                        tf.constant(smp[None], tf.int32), state)  # fmt: skip
    xs, ys = tf.constant(x[valid], tf.int32), tf.constant(y[valid], tf.int32)
    with tf.GradientTape() as tape:  # the official step on the 3 remaining lanes
        hidden, shrunk_state = shrunk.model.step(xs, [tf.boolean_mask(state[0], valid)])
        cols = tf.concat([ys, tf.constant(smp, tf.int32)], 0)
        adjust = None
        if shrunk.logq_table is not None:
            adjust = tf.concat([tf.gather(shrunk.logq_table, ys), cfg.sample_alpha * tf.gather(shrunk.logq_table, smp)],
                               0)  # fmt: skip
        rows = row_losses(shrunk.model.score_items(hidden, cols), tf.ones(3, tf.bool), loss, cfg.final_activation,
                          cfg.bpreg, adjust)  # fmt: skip
        total = tf.reduce_sum(rows) / cfg.batch_size
    shrunk.optimizer.apply(tape.gradient(total, shrunk.variables))
    for wa, wb in zip(_weights(masked.model), _weights(shrunk.model)):
        np.testing.assert_allclose(wa, wb, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(new_state[0].numpy()[valid], shrunk_state[0].numpy(), rtol=1e-5, atol=1e-6)
