"""The seed's training semantics (Songweiping/GRU4Rec_TensorFlow, TF1; preset ``seed``), one switch at a time,
each against a naive reference written from the TF1 code's rules: dropout on the output only, TF1 GRUCell's initial
weights, TF1 AdamOptimizer's dense moments, sessions in SessionId order, the epoch ending at the first lane that
cannot be refilled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from gru4rec.batching import epoch_batches
from gru4rec.config import Config
from gru4rec.model import GRU4RecModel, tf1_gru_init
from gru4rec.optim import Adam
from gru4rec.session_data import SessionData
from gru4rec.train import plan_epoch, train


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_the_seed_preset_sets_all_five_and_the_defaults_are_the_official_codes():
    seed = Config.preset("seed")
    assert (seed.dropout_on_state, seed.gru_init, seed.lazy_adam, seed.session_order, seed.epoch_end) == (
        False, "tf1", False, "session_id", "first_unfilled_lane")  # fmt: skip
    for name in ("official", "rsc15_xe_shared_100", "retailrocket_bprmax_shared"):
        cfg = Config.preset(name)
        assert (cfg.dropout_on_state, cfg.gru_init, cfg.lazy_adam, cfg.session_order, cfg.epoch_end) == (
            True, "per_block", True, "time", "all_sessions")  # fmt: skip


def test_the_switches_are_validated():
    with pytest.raises(ValueError, match="gru_init: invalid value 'glorot'; allowed: per_block, tf1"):
        Config(gru_init="glorot")
    with pytest.raises(ValueError, match="gru_init: 'tf1' is TF1's GRUCell.*reset_before"):
        Config(gru_init="tf1", gru_variant="reset_after")
    with pytest.raises(ValueError, match="session_order: invalid value 'random'; allowed: time, session_id"):
        Config(session_order="random")
    with pytest.raises(ValueError, match="session_order: applies with shuffle=false only"):
        Config(session_order="session_id", shuffle=True)
    with pytest.raises(ValueError, match="epoch_end: invalid value 'early'"):
        Config(epoch_end="early")
    with pytest.raises(ValueError, match="lazy_adam: invalid value 'no'"):
        Config(lazy_adam="no")
    assert Config.from_dict({"dropout_on_state": "false", "lazy_adam": "0"}).dropout_on_state is False


# ------------------------------------------------------------------------------------------ (i) dropout
def test_dropout_on_the_output_only_leaves_the_carried_state_undropped():
    base = dict(layers=(5, 4), embedding=3, constrained_embedding=False, dropout_p_hidden=0.5, seed=3)
    official = GRU4RecModel(9, Config(**base))
    seedlike = GRU4RecModel(9, Config(**base, dropout_on_state=False))
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(6, 3)), tf.float32)
    state = [tf.constant(rng.normal(size=(6, n)), tf.float32) for n in (5, 4)]
    seed = tf.constant([7, 11], tf.int64)
    out_a, state_a = official.stack(x, state, training=True, seed=seed)
    out_b, state_b = seedlike.stack(x, state, training=True, seed=seed)
    np.testing.assert_array_equal(out_a.numpy(), out_b.numpy())  # the output (to the scores) is dropped in both
    # naive reference, TF1 MultiRNNCell of DropoutWrapper(GRUCell, output_keep_prob): layer 1's input is layer 0's
    # dropped output; each layer's new state is its cell's output before the dropout
    layer0 = seedlike.gru_layers[0]
    vx0 = x @ layer0.Wx + layer0.b
    h0 = layer0.cell(vx0, state[0], tf.tanh)
    np.testing.assert_allclose(state_b[0].numpy(), h0.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(state_a[1].numpy(), out_a.numpy())  # official: the dropped output is the state
    assert not np.allclose(state_a[0].numpy(), h0.numpy())  # (half of its units are zero)
    dropped0 = state_a[0]  # the official state of layer 0 = its dropped output = layer 1's input in both
    layer1 = seedlike.gru_layers[1]
    h1 = layer1.cell(dropped0 @ layer1.Wx + layer1.b, state[1], tf.tanh)
    np.testing.assert_allclose(state_b[1].numpy(), h1.numpy(), rtol=1e-5, atol=1e-6)
    # without training both give the same state
    _, eval_a = official.stack(x, state)
    _, eval_b = seedlike.stack(x, state)
    for a, b in zip(eval_a, eval_b):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# ------------------------------------------------------------------------------------------ (ii) initial weights
def _tf1_gru_cell(x, h, gate_kernel, gate_bias, cand_kernel, cand_bias):
    """TF1 ``GRUCell.call`` written out: gates over [x; h], r first, u keeps the old state."""
    value = _sigmoid(np.concatenate([x, h], 1) @ gate_kernel + gate_bias)
    r, u = np.split(value, 2, axis=1)
    c = np.tanh(np.concatenate([x, r * h], 1) @ cand_kernel + cand_bias)
    return u * h + (1 - u) * c


def test_tf1_gru_init_is_tf1_grucells_weights_in_the_kits_layout():
    n_in, units = 30, 20
    wx, wrz, wh, b = tf1_gru_init(np.random.default_rng(5), n_in, units)
    assert wx.shape == (n_in, 3 * units) and wrz.shape == (units, 2 * units) and wh.shape == (units, units)
    # back to TF1's kernels: the kit's update gate z is TF1's 1 - u, so its block is the negated one
    gate_kernel = np.vstack([np.hstack([wx[:, units:2 * units], -wx[:, 2 * units:]]),
                             np.hstack([wrz[:, :units], -wrz[:, units:]])])  # (in + H, 2H)  # fmt: skip
    cand_kernel = np.vstack([wx[:, :units], wh])  # (in + H, H)
    gate_bias = np.concatenate([b[units:2 * units], -b[2 * units:]])
    np.testing.assert_array_equal(gate_bias, np.ones(2 * units))  # TF1: gate bias 1.0
    np.testing.assert_array_equal(b[:units], np.zeros(units))  # candidate bias 0
    gate_limit = np.sqrt(6.0 / (n_in + units + 2 * units))  # glorot uniform over the (in + H, 2H) kernel
    cand_limit = np.sqrt(6.0 / (n_in + units + units))
    assert np.abs(gate_kernel).max() <= gate_limit and np.abs(gate_kernel).max() > 0.95 * gate_limit
    assert np.abs(cand_kernel).max() <= cand_limit and np.abs(cand_kernel).max() > 0.95 * cand_limit
    assert abs(gate_kernel.mean()) < 0.02 and abs(cand_kernel.mean()) < 0.02
    # the kit's reset_before cell with these weights is TF1's GRUCell
    model = GRU4RecModel(50, Config(layers=(units,), embedding=n_in, constrained_embedding=False, gru_init="tf1"))
    layer = model.gru_layers[0]
    assert layer.Wx.shape == (n_in, 3 * units)
    np.testing.assert_array_equal(layer.b.numpy()[units:], np.r_[np.ones(units), -np.ones(units)])
    rng = np.random.default_rng(1)
    x, h = rng.normal(size=(4, n_in)).astype(np.float32), rng.normal(size=(4, units)).astype(np.float32)
    wx, wrz, wh, b = (v.numpy() for v in (layer.Wx, layer.Wrz, layer.Wh, layer.b))
    got = layer.cell(tf.constant(x @ wx + b), tf.constant(h), tf.tanh).numpy()
    gate_kernel = np.vstack([np.hstack([wx[:, units:2 * units], -wx[:, 2 * units:]]),
                             np.hstack([wrz[:, :units], -wrz[:, units:]])])  # fmt: skip
    want = _tf1_gru_cell(x, h, gate_kernel, np.ones(2 * units), np.vstack([wx[:, :units], wh]), np.zeros(units))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # the default stays the official per-block draw with zero biases
    official = GRU4RecModel(50, Config(layers=(units,), embedding=n_in, constrained_embedding=False))
    np.testing.assert_array_equal(official.gru_layers[0].b.numpy(), np.zeros(3 * units))


# ------------------------------------------------------------------------------------------ (iii) dense Adam
def test_dense_adam_moves_every_row_as_tf1_adam_does():
    rng = np.random.default_rng(0)
    table0 = rng.normal(size=(8, 3)).astype(np.float32)
    steps = [(rng.integers(0, 4, 5), rng.normal(size=(5, 3))) for _ in range(5)]  # rows 4..7 never touched
    results = {}
    for lazy in (True, False):
        table = tf.Variable(table0)
        opt = Adam(Config(optimizer="adam", learning_rate=0.01, lazy_adam=lazy), [table])
        for idx, vals in steps:
            opt.apply([tf.IndexedSlices(tf.constant(vals, tf.float32), tf.constant(idx, tf.int32))])
        results[lazy] = table.numpy()
    # naive reference: TF1 AdamOptimizer._apply_sparse (m, v decayed for every row, the gradient's rows added)
    w, m, v = table0.astype(np.float64), np.zeros((8, 3)), np.zeros((8, 3))
    for t, (idx, vals) in enumerate(steps, start=1):
        g = np.zeros((8, 3))
        np.add.at(g, idx, vals)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g**2
        lr_t = 0.01 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        w = w - lr_t * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(results[False], w, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(results[True][4:], table0[4:])  # lazy: untouched rows stay
    # dense: a row touched only at the first step goes on moving on its momentum
    first_only = sorted(set(steps[0][0]) - set(np.concatenate([s[0] for s in steps[1:]])))
    for row in first_only:
        assert not np.allclose(results[False][row], results[True][row])


# ------------------------------------------------------------------------------------------ (iv) + (v) the epoch
def _shuffled_ids_data(seed: int = 0, n_sessions: int = 23) -> SessionData:
    """Sessions whose SessionIds are not in the order of their first event."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(n_sessions) * 3 + 10
    rows = []
    for s, sid in enumerate(ids):
        for j in range(int(rng.integers(2, 7))):
            rows.append((int(sid), int(rng.integers(0, 9)), float(100 * s + j)))
    return SessionData.from_frame(pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"]))


def _seed_loop(data: SessionData, batch: int) -> list:
    """The seed's ``fit`` loop written out on item indices: sessions sorted by SessionId; every lane advances
    ``minlen - 1`` steps; finished lanes, in lane order, take the next session; the epoch ends at the first lane
    with no session left. Returns one ``(inputs, targets, resets)`` tuple per step."""
    order = np.argsort(data.session_ids, kind="stable")
    sessions = [data.items[data.offsets[s]:data.offsets[s + 1]] for s in order]
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sessions])])
    items = np.concatenate(sessions)
    n = len(sessions)
    maxiter = batch - 1
    start = [int(offsets[i]) for i in range(batch)]
    end = [int(offsets[i + 1]) for i in range(batch)]
    reset = [True] * batch
    steps = []
    while True:
        minlen = min(e - s for s, e in zip(start, end))
        for i in range(minlen - 1):
            steps.append(([items[s + i] for s in start], [items[s + i + 1] for s in start], reset))
            reset = [False] * batch
        start = [s + minlen - 1 for s in start]
        for b in range(batch):
            if end[b] - start[b] <= 1:
                maxiter += 1
                if maxiter >= n:
                    return steps
                start[b], end[b] = int(offsets[maxiter]), int(offsets[maxiter + 1])
                reset[b] = True


@pytest.mark.parametrize("batch", [2, 3, 5])
def test_the_seeds_epoch_is_its_loop(batch):
    data = _shuffled_ids_data()
    steps = _seed_loop(data, batch)
    eb = epoch_batches(data, batch, order="session_id", end="first_unfilled_lane")
    assert eb.n_steps == len(steps) and eb.valid.all()  # every lane busy up to the end
    np.testing.assert_array_equal(eb.inputs, np.array([s[0] for s in steps]))
    np.testing.assert_array_equal(eb.targets, np.array([s[1] for s in steps]))
    np.testing.assert_array_equal(eb.resets, np.array([s[2] for s in steps]))
    full = epoch_batches(data, batch, order="session_id")
    assert eb.n_pairs < full.n_pairs  # the sessions still playing at the end are cut


def test_session_id_order_alone_and_the_time_order_default():
    data = _shuffled_ids_data()
    by_id = epoch_batches(data, 1, order="session_id")  # one lane: the sessions one after the other
    played = [s for s in dict.fromkeys(by_id.session_index[:, 0].tolist())]
    assert [data.session_ids[s] for s in played] == sorted(data.session_ids.tolist())
    by_time = epoch_batches(data, 1)
    assert list(dict.fromkeys(by_time.session_index[:, 0].tolist())) == list(range(data.n_sessions))
    assert by_id.n_pairs == by_time.n_pairs == data.n_events - data.n_sessions  # every pair once: end not cut
    with pytest.raises(ValueError, match="order: 'session_id' applies with shuffle=False only"):
        epoch_batches(data, 2, shuffle=True, order="session_id")


def test_the_trainer_takes_the_seeds_epoch_and_trains(tiny, tmp_path):
    train_data, _ = tiny
    cfg = Config.preset("seed", layers=(8,), embedding=8, n_epochs=1, batch_size=16, chunk_steps=32)
    plan = plan_epoch(train_data, cfg, 0, chunk=32)
    want = epoch_batches(train_data, 16, order="session_id", end="first_unfilled_lane")
    assert plan.n_steps == want.n_steps and plan.n_events == want.n_pairs < train_data.n_pairs
    result = train(cfg, train_data, tmp_path / "seed", progress=False)
    assert np.isfinite(result.epoch_losses[-1]) and result.history[-1]["events"] == want.n_pairs
