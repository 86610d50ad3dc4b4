"""The GRU4Rec network: the cell against Keras' GRUCell, embedding modes, initialisation, dropout, scores."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from gru4rec.config import Config
from gru4rec.model import GRU4RecModel


def _model(n_items=30, **kw):
    base = dict(layers=(8,), n_sample=0, batch_size=4, constrained_embedding=False, embedding=6)
    base.update(kw)
    return GRU4RecModel(n_items, Config.from_dict(base))


def test_cell_matches_keras_gru_cell_reset_before():
    model = _model(layers=(7,), embedding=5)
    layer = model.gru_layers[0]
    units = 7
    rng = np.random.default_rng(0)
    layer.b.assign(rng.normal(0, 0.3, 3 * units).astype(np.float32))
    x = rng.normal(size=(4, 5)).astype(np.float32)
    h = rng.normal(size=(4, units)).astype(np.float32)
    wx, wrz, wh, b = (v.numpy() for v in (layer.Wx, layer.Wrz, layer.Wh, layer.b))
    # ours: blocks [candidate | reset | update]; h' = (1 - z) h + z c.  Keras: [z | r | h]; h' = z h + (1 - z) c,
    # so Keras' update gate is ours negated inside the sigmoid.
    keras = tf.keras.layers.GRUCell(units, reset_after=False)
    keras.build((None, 5))
    kernel = np.hstack([-wx[:, 2 * units :], wx[:, units : 2 * units], wx[:, :units]])
    recurrent = np.hstack([-wrz[:, units:], wrz[:, :units], wh])
    bias = np.concatenate([-b[2 * units :], b[units : 2 * units], b[:units]])
    keras.set_weights([kernel, recurrent, bias])
    expected, _ = keras(tf.constant(x), [tf.constant(h)])
    ours = layer.cell(tf.matmul(x, layer.Wx) + layer.b, tf.constant(h), tf.tanh)
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_embedding_modes_and_variables():
    shared = GRU4RecModel(30, Config(layers=(8, 6), n_sample=0, batch_size=4))
    assert shared.embedding_mode == "shared" and shared.input_table is shared.Wy
    assert shared.gru_layers[0].Wx.shape == (6, 24)  # input = last layer's size (output embedding)
    separate = _model(embedding=5)
    assert separate.embedding_mode == "separate" and separate.E.shape == (30, 5)
    assert separate.gru_layers[0].Wx.shape == (5, 24)
    none = _model(embedding=0)
    assert none.embedding_mode == "none" and none.gru_layers[0].Wx.shape == (30, 24)
    assert none.input_table is none.gru_layers[0].Wx
    wx_id = id(none.gru_layers[0].Wx)
    assert wx_id in {id(v) for v in none.sparse_variables} and wx_id not in {id(v) for v in none.dense_variables}
    for model in (shared, separate, none):
        ids = {id(v) for v in model.sparse_variables + model.dense_variables}
        assert ids == {id(v) for v in model.trainable_variables}


def test_one_hot_input_is_a_row_lookup_of_wx():
    model = _model(embedding=0)
    items = tf.constant([3, 7, 3, 0])
    state = model.initial_state(4)
    hidden, _ = model.step(items, state)
    one_hot = tf.one_hot(items, 30)
    layer = model.gru_layers[0]
    expected = layer.cell(tf.matmul(one_hot, layer.Wx) + layer.b, state[0], tf.tanh)
    np.testing.assert_allclose(hidden.numpy(), expected.numpy(), rtol=1e-6)


def test_shared_embedding_feeds_output_rows():
    model = GRU4RecModel(30, Config(layers=(8,), n_sample=0, batch_size=4))
    items = tf.constant([1, 2, 3, 4])
    state = model.initial_state(4)
    hidden, _ = model.step(items, state)
    layer = model.gru_layers[0]
    expected = layer.cell(tf.matmul(tf.gather(model.Wy, items), layer.Wx) + layer.b, state[0], tf.tanh)
    np.testing.assert_allclose(hidden.numpy(), expected.numpy(), rtol=1e-6)


def test_initialisation_ranges():
    model = _model(n_items=400, layers=(20,), embedding=10)
    bound = np.sqrt(6.0 / (400 + 20))
    wy = model.Wy.numpy()
    assert np.abs(wy).max() <= bound and np.abs(wy).max() > 0.9 * bound
    gate = model.gru_layers[0].Wx.numpy()[:, :20]  # each gate block initialised on its own (10, 20) shape
    assert np.abs(gate).max() <= np.sqrt(6.0 / 30)
    assert np.all(model.By.numpy() == 0) and np.all(model.gru_layers[0].b.numpy() == 0)
    fixed = _model(n_items=400, sigma=0.01)
    assert np.abs(fixed.Wy.numpy()).max() <= 0.01
    normal = _model(n_items=4000, sigma=0.05, init_as_normal=True)
    assert abs(normal.Wy.numpy().std() - 0.05) < 0.005
    again = _model(n_items=400, layers=(20,), embedding=10)
    np.testing.assert_array_equal(again.Wy.numpy(), wy)  # the seed fixes the initial weights


def test_dropout_is_a_drop_probability_and_only_in_training():
    model = _model(layers=(200,), embedding=6, dropout_p_hidden=0.3)
    items = tf.constant([1, 2, 3, 4])
    state = [tf.ones((4, 200))]
    plain, _ = model.step(items, state, training=False)
    dropped, new_state = model.step(items, state, training=True, seed=tf.constant([1, 2], tf.int64))
    zero = dropped.numpy() == 0
    assert 0.2 < zero.mean() < 0.4
    np.testing.assert_allclose(dropped.numpy()[~zero], plain.numpy()[~zero] / 0.7, rtol=1e-5)
    np.testing.assert_array_equal(new_state[0].numpy(), dropped.numpy())  # the dropped output is the carried state
    again, _ = model.step(items, state, training=True, seed=tf.constant([1, 2], tf.int64))
    np.testing.assert_array_equal(again.numpy(), dropped.numpy())


def test_relu_hidden_activation_and_multilayer_state():
    model = _model(layers=(8, 5), hidden_act="relu")
    hidden, state = model.step(tf.constant([0, 1, 2, 3]), model.initial_state(4))
    assert hidden.shape == (4, 5) and [s.shape for s in state] == [(4, 8), (4, 5)]


def test_scores():
    model = _model()
    model.By.assign(np.arange(30, dtype=np.float32) / 10)
    hidden, _ = model.step(tf.constant([0, 1, 2, 3]), model.initial_state(4))
    all_scores = model.score_all(hidden).numpy()
    some = model.score_items(hidden, tf.constant([5, 0, 29])).numpy()
    np.testing.assert_allclose(some, all_scores[:, [5, 0, 29]], rtol=1e-6)
    np.testing.assert_allclose(all_scores, hidden.numpy() @ model.Wy.numpy().T + model.By.numpy(), rtol=1e-5)


def test_bad_n_items():
    with pytest.raises(ValueError, match="n_items"):
        _model(n_items=0)
