"""Row-sparse Adagrad(+momentum) and Adam against dense numpy references; schedule and gradient capping."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from gru4rec.config import Config
from gru4rec.optim import AdagradM, Adam, make_optimizer


def _grads(rng, steps, n_rows=12, dim=3):
    """Per step: duplicated row indices with values, and a dense gradient for a second variable."""
    out = []
    for _ in range(steps):
        idx = rng.integers(0, n_rows // 2, 7)  # rows >= n_rows // 2 are never touched
        vals = rng.normal(size=(7, dim))
        out.append((idx, vals, rng.normal(size=(4, dim))))
    return out


def _dense(idx, vals, n_rows):
    g = np.zeros((n_rows, vals.shape[1]))
    np.add.at(g, idx, vals)
    return g


def _run(opt_cls, cfg, steps):
    rng = np.random.default_rng(0)
    table0 = rng.normal(size=(12, 3)).astype(np.float32)
    dense0 = rng.normal(size=(4, 3)).astype(np.float32)
    table, dense = tf.Variable(table0), tf.Variable(dense0)
    opt = opt_cls(cfg, [table, dense])
    grads = _grads(rng, steps)
    for idx, vals, g in grads:
        sparse = tf.IndexedSlices(tf.constant(vals, tf.float32), tf.constant(idx, tf.int32))
        opt.apply([sparse, tf.constant(g, tf.float32)])
    return table0.astype(np.float64), dense0.astype(np.float64), grads, table.numpy(), dense.numpy(), opt


@pytest.mark.parametrize("momentum", [0.0, 0.3])
def test_adagrad_momentum_matches_numpy(momentum):
    cfg = Config(learning_rate=0.1, momentum=momentum)
    table, dense, grads, got_table, got_dense, _ = _run(AdagradM, cfg, 6)
    acc_t, mom_t = np.zeros_like(table), np.zeros_like(table)
    acc_d, mom_d = np.zeros_like(dense), np.zeros_like(dense)
    for idx, vals, g in grads:
        gt = _dense(idx, vals, 12)
        rows = np.unique(idx)  # only touched rows change, including their slots
        acc_t[rows] += gt[rows] ** 2
        u = gt[rows] / np.sqrt(acc_t[rows] + 1e-6)
        if momentum:
            mom_t[rows] = momentum * mom_t[rows] - 0.1 * u
            table[rows] += mom_t[rows]
        else:
            table[rows] -= 0.1 * u
        acc_d += g**2
        ud = g / np.sqrt(acc_d + 1e-6)
        if momentum:
            mom_d = momentum * mom_d - 0.1 * ud
            dense += mom_d
        else:
            dense -= 0.1 * ud
    np.testing.assert_allclose(got_table, table, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_dense, dense, rtol=1e-5, atol=1e-6)


def test_adam_lazy_rows_and_dense_match_numpy():
    cfg = Config(optimizer="adam", learning_rate=0.01, decay=0.5, decay_steps=2)
    table, dense, grads, got_table, got_dense, opt = _run(Adam, cfg, 5)
    b1, b2, eps = 0.9, 0.999, 1e-8
    m_t, v_t = np.zeros_like(table), np.zeros_like(table)
    m_d, v_d = np.zeros_like(dense), np.zeros_like(dense)
    for step, (idx, vals, g) in enumerate(grads):
        lr = max(1e-5, 0.01 * 0.5 ** (step // 2))
        t = step + 1
        lr_t = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        gt = _dense(idx, vals, 12)
        rows = np.unique(idx)
        m_t[rows] = b1 * m_t[rows] + (1 - b1) * gt[rows]
        v_t[rows] = b2 * v_t[rows] + (1 - b2) * gt[rows] ** 2
        table[rows] -= lr_t * m_t[rows] / (np.sqrt(v_t[rows]) + eps)
        m_d = b1 * m_d + (1 - b1) * g
        v_d = b2 * v_d + (1 - b2) * g**2
        dense -= lr_t * m_d / (np.sqrt(v_d) + eps)
    np.testing.assert_allclose(got_table, table, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_dense, dense, rtol=1e-5, atol=1e-6)
    assert int(opt.step.numpy()) == 5


def test_learning_rate_schedule_staircase_and_floor():
    cfg = Config(optimizer="adam", learning_rate=1e-3, decay=0.96, decay_steps=10_000)
    opt = make_optimizer(cfg, [tf.Variable([1.0])])
    for step, expected in [(0, 1e-3), (9_999, 1e-3), (10_000, 0.96e-3), (25_000, 1e-3 * 0.96**2)]:
        assert opt.learning_rate(step).numpy() == pytest.approx(expected, rel=1e-6)
    assert opt.learning_rate(10**7).numpy() == pytest.approx(1e-5)
    assert make_optimizer(Config(), [tf.Variable([1.0])]).learning_rate(10**6).numpy() == pytest.approx(0.05)


def test_grad_cap_rescales_by_the_global_norm():
    var = tf.Variable(np.zeros((4, 2), np.float32))
    other = tf.Variable(np.zeros(3, np.float32))
    cfg = Config(learning_rate=1.0, grad_cap=1.0)
    opt = AdagradM(cfg, [var, other])
    sparse = tf.IndexedSlices(tf.constant([[3.0, 0.0], [1.0, 0.0]]), tf.constant([1, 1]))  # coalesced: [4, 0]
    dense = tf.constant([0.0, 3.0, 0.0])  # global norm 5 -> scale 0.2
    opt.apply([sparse, dense])
    acc = opt.slots[0]["acc"].numpy()
    np.testing.assert_allclose(acc[1], [0.8**2, 0.0], rtol=1e-6)
    np.testing.assert_allclose(opt.slots[1]["acc"].numpy(), [0.0, 0.6**2, 0.0], rtol=1e-6)
