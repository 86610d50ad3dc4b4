"""Every loss and its gradient against a numpy reference written like the official code (invalid lanes removed)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from gru4rec.losses import cross_entropy_over_unique, final_activation, row_losses

LOSSES = ["cross-entropy", "bpr", "top1", "bpr-max", "top1-max"]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _act(y, name):
    if name in ("softmax", "linear"):
        return y
    if name == "tanh":
        return np.tanh(y)
    if name == "relu":
        return np.maximum(y, 0)
    if name.startswith("elu-"):
        a = float(name[4:])
        return np.where(y >= 0, y, a * (np.exp(y) - 1))
    raise ValueError(name)


def _softmax_neg(x):  # the official softmax_neg: softmax over the row, the diagonal excluded
    hm = 1.0 - np.eye(*x.shape)
    x = x * hm
    e = np.exp(x - x.max(axis=1, keepdims=True)) * hm
    return e / e.sum(axis=1, keepdims=True)


def reference(scores, valid, loss, act, bpreg=0.0, adjust=None):
    """Sum over valid lanes, written as the 2018 Theano code (GRU4Rec v2.0) on a batch without the invalid lanes:
    each loss is a ``T.mean`` (over the rows, or over the whole score matrix for BPR) and the cost multiplies it by
    the batch's ``M`` valid lanes (``cost = (M / batch_size) * loss``; the division by batch_size is left out here)."""
    batch = scores.shape[0]
    keep = np.concatenate([valid, np.ones(scores.shape[1] - batch, bool)])
    y = scores[valid][:, keep]
    if adjust is not None:
        y = y - adjust[keep][None, :]
    y = _act(y, act)
    m = int(valid.sum())
    n_out = y.shape[1]
    d = np.diag(y[:, :m])[:, None]
    if loss == "cross-entropy":
        e = np.exp(y - y.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        return m * np.mean(-np.log(np.diag(p[:, :m]) + 1e-24))
    if loss == "bpr":  # T.mean over the (M, M + n_sample) matrix: the mean over the columns, per row
        return m * np.mean(-np.log(_sigmoid(d - y)))
    if loss == "top1":
        return m * np.mean(np.mean(_sigmoid(-d + y) + _sigmoid(y**2), axis=1) - _sigmoid(d[:, 0] ** 2) / n_out)
    sm = _softmax_neg(y)
    if loss == "bpr-max":
        return m * np.mean(-np.log(np.sum(_sigmoid(d - y) * sm, axis=1) + 1e-24) + bpreg * np.sum(y**2 * sm, axis=1))
    if loss == "top1-max":
        return m * np.mean(np.sum(sm * (_sigmoid(-d + y) + _sigmoid(y**2)), axis=1))
    raise ValueError(loss)


def _case(seed=0, batch=5, n_sample=4):
    rng = np.random.default_rng(seed)
    scores = rng.normal(0, 1.5, (batch, batch + n_sample))
    valid = np.array([True, True, False, True, True])[:batch]
    adjust = rng.uniform(0, 2, batch + n_sample)
    return scores, valid, adjust


def _tf_sum(scores, valid, loss, act, bpreg=0.0, adjust=None):
    s = tf.constant(scores)
    with tf.GradientTape() as tape:
        tape.watch(s)
        rows = row_losses(s, tf.constant(valid), loss, act, bpreg, None if adjust is None else tf.constant(adjust))
        total = tf.reduce_sum(rows)
    return rows.numpy(), total.numpy(), tape.gradient(total, s).numpy()


def _numeric_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += eps
        down[idx] -= eps
        g[idx] = (f(up) - f(down)) / (2 * eps)
    return g


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("use_logq", [False, True])
def test_loss_and_gradient_match_the_numpy_reference(loss, use_logq):
    scores, valid, adjust = _case()
    adjust = adjust if use_logq else None
    act = {"cross-entropy": "softmax", "bpr-max": "elu-0.5"}.get(loss, "linear")
    bpreg = 0.7 if loss == "bpr-max" else 0.0
    rows, total, grad = _tf_sum(scores, valid, loss, act, bpreg, adjust)
    expected = reference(scores, valid, loss, act, bpreg, adjust)
    np.testing.assert_allclose(total, expected, rtol=1e-9, atol=1e-9)
    assert np.all(rows[~valid] == 0)
    numeric = _numeric_grad(lambda x: reference(x, valid, loss, act, bpreg, adjust), scores)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)
    # an invalid lane's row and column get no gradient: neither positive nor negative
    assert np.all(grad[~valid] == 0) and np.all(grad[:, : len(valid)][:, ~valid] == 0)


@pytest.mark.parametrize("act", ["tanh", "relu", "elu-1", "linear"])
def test_final_activations_under_ranking_and_cross_entropy(act):
    scores, valid, _ = _case(seed=3)
    for loss in ("bpr-max", "top1", "cross-entropy"):
        _, total, grad = _tf_sum(scores, valid, loss, act, 0.5)
        np.testing.assert_allclose(total, reference(scores, valid, loss, act, 0.5), rtol=1e-9)
        numeric = _numeric_grad(lambda x, loss=loss: reference(x, valid, loss, act, 0.5), scores)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6)


def test_cross_entropy_at_uniform_scores_is_log_of_candidates():
    rows, _, _ = _tf_sum(np.zeros((50, 50)), np.ones(50, bool), "cross-entropy", "softmax")
    np.testing.assert_allclose(rows, np.log(50), rtol=1e-12)


def test_rows_without_negatives_give_zero_not_nan():
    scores = np.array([[1.0, 2.0], [0.5, -1.0]])
    rows, _, grad = _tf_sum(scores, np.array([True, False]), "bpr-max", "linear", 1.0)
    assert np.all(np.isfinite(rows)) and np.all(rows == 0) and np.all(np.isfinite(grad))


def test_final_activation_values():
    x = tf.constant([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(final_activation(x, "elu-0.5").numpy(), [0.5 * (np.exp(-2) - 1), 0, 3], rtol=1e-6)
    np.testing.assert_allclose(final_activation(x, "leaky-0.1").numpy(), [-0.2, 0, 3], rtol=1e-6)
    np.testing.assert_allclose(final_activation(x, "softmax").numpy(), x.numpy())


@pytest.mark.parametrize("use_logq", [False, True])
def test_cross_entropy_over_distinct_items_equals_the_column_form(use_logq):
    """The softmax over the M mini-batch columns (items repeated) equals the one over the U distinct items with
    log-weights: same loss, same gradient with respect to the distinct items' scores."""
    rng = np.random.default_rng(7)
    batch, n_sample, n_unique = 6, 9, 8
    columns = rng.integers(0, n_unique, batch + n_sample).astype(np.int32)  # many repeats
    columns[:3] = columns[3]  # three lanes with the same target
    valid = np.array([True, True, False, True, True, True])
    unique = tf.constant(rng.normal(size=(batch, n_unique)) * 3, tf.float32)
    adjust = tf.constant(rng.normal(size=batch + n_sample), tf.float32) if use_logq else None
    row_mask = tf.constant(valid, tf.float32)
    col_mask = tf.concat([row_mask, tf.ones(n_sample)], 0)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(unique)
        by_columns = row_losses(tf.gather(unique, columns, axis=1), tf.constant(valid), "cross-entropy", "softmax",
                                logq_adjust=adjust)  # fmt: skip
        by_items = cross_entropy_over_unique(unique, tf.constant(columns), row_mask, col_mask, adjust)
    np.testing.assert_allclose(by_items.numpy(), by_columns.numpy(), rtol=1e-5, atol=1e-6)
    assert by_items.numpy()[2] == 0.0  # the invalid lane
    np.testing.assert_allclose(tape.gradient(by_items, unique).numpy(), tape.gradient(by_columns, unique).numpy(),
                               rtol=1e-5, atol=1e-6)  # fmt: skip


def test_bpr_is_the_mean_over_the_columns_and_the_current_theano_sum_is_n_times_it():
    """The kit's BPR (as the 2018 Theano code and the CIKM 2018 paper): per row the mean over the N valid columns of
    -log σ(r_i − r_j). The current Theano code (2020 onwards) sums over the columns: N times the kit's per row."""
    scores, valid, _ = _case(seed=4)
    rows, _, _ = _tf_sum(scores, valid, "bpr", "linear")
    keep = np.concatenate([valid, np.ones(scores.shape[1] - len(valid), bool)])
    y = scores[valid][:, keep]
    d = np.diag(y[:, : int(valid.sum())])[:, None]
    current_theano_rows = np.sum(-np.log(_sigmoid(d - y)), axis=1)  # T.sum over the columns
    n_columns = y.shape[1]
    np.testing.assert_allclose(rows[valid], current_theano_rows / n_columns, rtol=1e-6)
    assert n_columns > 1 and not np.allclose(rows[valid], current_theano_rows)
