"""The GRU4Rec network: the cell against Keras' GRUCell, embedding modes, initialisation, dropout, scores."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from gru4rec.config import Config
from gru4rec.model import GRU4RecModel
from gru4rec.model import _dropout as model_dropout


def _model(n_items=30, **kw):
    base = dict(layers=(8,), n_sample=0, batch_size=4, constrained_embedding=False, embedding=6)
    base.update(kw)
    return GRU4RecModel(n_items, Config.from_dict(base))


def _keras_cell(layer) -> tf.keras.layers.GRUCell:
    """A Keras GRUCell holding ``layer``'s weights. Ours: blocks [candidate | reset | update] and
    h' = (1 - z) h + z c; Keras: [z | r | h] and h' = z h + (1 - z) c, so Keras' update gate is ours negated inside
    the sigmoid (its weights and biases are ours times -1)."""
    units = layer.units

    def to_keras(a):  # (..., 3H) ours -> Keras order, z negated
        return np.concatenate([-a[..., 2 * units :], a[..., units : 2 * units], a[..., :units]], axis=-1)

    wx, wrz, wh, b = (v.numpy() for v in (layer.Wx, layer.Wrz, layer.Wh, layer.b))
    after = layer.variant == "reset_after"
    keras = tf.keras.layers.GRUCell(units, reset_after=after)
    keras.build((None, wx.shape[0]))
    recurrent = np.hstack([-wrz[:, units:], wrz[:, :units], wh])
    bias = np.stack([to_keras(b), to_keras(layer.bh.numpy())]) if after else to_keras(b)
    keras.set_weights([to_keras(wx), recurrent, bias])
    return keras


def _random_biases(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.gru_layers:
        layer.b.assign(rng.normal(0, 0.3, 3 * layer.units).astype(np.float32))
        if layer.variant == "reset_after":
            layer.bh.assign(rng.normal(0, 0.3, 3 * layer.units).astype(np.float32))


@pytest.mark.parametrize("variant", ["reset_before", "reset_after"])
def test_cell_matches_keras_gru_cell(variant):
    model = _model(layers=(7,), embedding=5, gru_variant=variant)
    layer = model.gru_layers[0]
    _random_biases(model)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 5)).astype(np.float32)
    h = rng.normal(size=(4, 7)).astype(np.float32)
    expected, _ = _keras_cell(layer)(tf.constant(x), [tf.constant(h)])
    ours = layer.cell(tf.matmul(x, layer.Wx) + layer.b, tf.constant(h), tf.tanh)
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", ["reset_before", "reset_after"])
@pytest.mark.parametrize("mode", ["none", "separate", "shared"])
def test_stacked_layers_match_keras_over_steps_in_every_embedding_mode(mode, variant):
    n_items = 30
    modes = dict(none=dict(embedding=0), separate=dict(embedding=5),
                 shared=dict(constrained_embedding=True, embedding=0))
    kw = modes[mode]
    model = _model(n_items, layers=(7, 6), gru_variant=variant, **kw)
    assert model.embedding_mode == mode
    _random_biases(model)
    cells = [_keras_cell(layer) for layer in model.gru_layers]
    inputs = dict(none=np.eye(n_items, dtype=np.float32), separate=None, shared=None)[mode]
    table = inputs if inputs is not None else model.input_table.numpy()  # one-hot rows times Wx in mode none
    rng = np.random.default_rng(2)
    state = model.initial_state(4)
    expected = [s.numpy() for s in state]
    for _ in range(3):  # the state is carried from step to step
        items = rng.integers(0, n_items, 4).astype(np.int32)
        hidden, state = model.step(tf.constant(items), state)
        x = table[items]
        for i, cell in enumerate(cells):
            out, _ = cell(tf.constant(x), [tf.constant(expected[i])])
            expected[i] = x = out.numpy()
        for got, want in zip(state, expected):
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(hidden.numpy(), expected[-1], rtol=1e-5, atol=1e-5)


def test_reset_after_has_a_recurrent_bias_and_draws_the_same_initial_weights():
    before = _model(layers=(8, 8), gru_variant="reset_before")
    after = _model(layers=(8, 8), gru_variant="reset_after")
    for lb, la in zip(before.gru_layers, after.gru_layers):
        assert not hasattr(lb, "bh") and la.bh.shape == (24,) and np.all(la.bh.numpy() == 0)
        for name in ("Wx", "Wrz", "Wh", "b"):  # the same draws: an ablation changes the cell only
            np.testing.assert_array_equal(getattr(lb, name).numpy(), getattr(la, name).numpy())
        assert any(v is la.bh for v in after.dense_variables)
    assert len(after.trainable_variables) == len(before.trainable_variables) + 2


def test_equal_size_stacked_layers_have_distinct_variables(tmp_path):
    model = _model(layers=(8, 8, 8), embedding=8, gru_variant="reset_after")
    variables = [v for layer in model.gru_layers for v in layer.layer_variables]
    assert len({id(v) for v in variables}) == len(variables) == 15
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    keys = [name for name, _ in tf.train.list_variables(path) if name.startswith("model/gru_layers/")]
    assert len(keys) == 15  # each layer's variables saved under their own key
    first, second = model.gru_layers[0], model.gru_layers[1]
    assert not np.array_equal(first.Wrz.numpy(), second.Wrz.numpy())  # drawn one after the other, not copied


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


@pytest.mark.parametrize("variant", ["reset_before", "reset_after"])
def test_initialisation_ranges(variant):
    model = _model(n_items=400, layers=(20,), embedding=10, gru_variant=variant)
    bound = np.sqrt(6.0 / (400 + 20))
    wy = model.Wy.numpy()
    assert np.abs(wy).max() <= bound and np.abs(wy).max() > 0.9 * bound
    e = model.E.numpy()  # (400, 10)
    assert np.abs(e).max() <= np.sqrt(6.0 / 410) and np.abs(e).max() > 0.9 * np.sqrt(6.0 / 410)
    layer = model.gru_layers[0]
    # each gate block initialised on its own (in, H) shape: Wx (10, 20) blocks, Wrz and Wh (20, 20) blocks
    for block in np.split(layer.Wx.numpy(), 3, axis=1):
        assert np.abs(block).max() <= np.sqrt(6.0 / 30) and np.abs(block).max() > 0.8 * np.sqrt(6.0 / 30)
    for block in np.split(layer.Wrz.numpy(), 2, axis=1) + [layer.Wh.numpy()]:
        assert np.abs(block).max() <= np.sqrt(6.0 / 40) and np.abs(block).max() > 0.8 * np.sqrt(6.0 / 40)
    assert abs(layer.Wh.numpy().mean()) < 0.02  # uniform around 0
    assert np.all(model.By.numpy() == 0) and np.all(layer.b.numpy() == 0)
    fixed = _model(n_items=400, sigma=0.01)
    assert np.abs(fixed.Wy.numpy()).max() <= 0.01
    normal = _model(n_items=4000, sigma=0.05, init_as_normal=True)
    assert abs(normal.Wy.numpy().std() - 0.05) < 0.005
    again = _model(n_items=400, layers=(20,), embedding=10, gru_variant=variant)
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


@pytest.mark.parametrize("mode", ["separate", "shared"])
def test_dropout_p_embed_drops_input_rows_in_separate_and_shared_modes(mode):
    kw = dict(embedding=200) if mode == "separate" else dict(constrained_embedding=True, embedding=0)
    model = _model(n_items=50, layers=(200,), dropout_p_embed=0.4, **kw)
    items = tf.constant([1, 2, 3, 4])
    state = model.initial_state(4)
    seed = tf.constant([3, 5], tf.int64)
    rows = tf.gather(model.input_table, items)
    dropped_rows = model_dropout(rows, 0.4, seed)
    zero = dropped_rows.numpy() == 0
    assert 0.3 < zero.mean() < 0.5  # 40 % of the input units dropped
    np.testing.assert_allclose(dropped_rows.numpy()[~zero], rows.numpy()[~zero] / 0.6, rtol=1e-6)
    got, _ = model.step(items, state, training=True, seed=seed)
    expected, _ = model.stack(dropped_rows, state, training=False)  # no hidden dropout: dropout_p_hidden = 0
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_embedding_mode_none_drops_the_first_layer_output_with_dropout_p_embed():
    # as the official TF/PyTorch codes: the first layer is the embedding; dropout_p_embed on its output (which is
    # also its carried state), dropout_p_hidden on the later layers only
    model = _model(n_items=50, layers=(300, 300), embedding=0, dropout_p_embed=0.5, dropout_p_hidden=0.1)
    items = tf.constant([1, 2, 3, 4])
    state = [tf.ones((4, 300)), tf.ones((4, 300))]
    _, new_state = model.step(items, state, training=True, seed=tf.constant([1, 2], tf.int64))
    first, second = (s.numpy() for s in new_state)
    assert 0.42 < (first == 0).mean() < 0.58
    assert 0.05 < (second == 0).mean() < 0.15
    only_hidden = _model(n_items=50, layers=(300,), embedding=0, dropout_p_hidden=0.5)
    _, carried = only_hidden.step(items, [tf.ones((4, 300))], training=True, seed=tf.constant([1, 2], tf.int64))
    assert (carried[0].numpy() == 0).mean() == 0  # dropout_p_hidden does not touch the first layer in mode none


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


def test_reset_after_is_torch_grucell_with_its_update_gate_our_one_minus_z():
    """torch.nn.GRUCell's equations (its documentation): r = σ(W_ir x + b_ir + W_hr h + b_hr), z = σ(W_iz x + b_iz +
    W_hz h + b_hz), n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h. Its z keeps the old state:
    with the kit's update-gate weights and biases negated it is the kit's 1 − z."""
    model = _model(layers=(6,), embedding=4, gru_variant="reset_after")
    _random_biases(model, seed=3)
    layer = model.gru_layers[0]
    wx, wrz, wh, b, bh = (v.numpy() for v in (layer.Wx, layer.Wrz, layer.Wh, layer.b, layer.bh))
    c, r_, z_ = slice(0, 6), slice(6, 12), slice(12, 18)
    rng = np.random.default_rng(2)
    x, h = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(3, 6)).astype(np.float32)

    def sigmoid(a):
        return 1 / (1 + np.exp(-a))

    r = sigmoid(x @ wx[:, r_] + b[r_] + h @ wrz[:, :6] + bh[r_])
    z_torch = sigmoid(x @ -wx[:, z_] - b[z_] + h @ -wrz[:, 6:] - bh[z_])
    n = np.tanh(x @ wx[:, c] + b[c] + r * (h @ wh + bh[c]))
    torch_h = (1 - z_torch) * n + z_torch * h
    ours = layer.cell(tf.matmul(x, layer.Wx) + layer.b, tf.constant(h), tf.tanh).numpy()
    np.testing.assert_allclose(ours, torch_h, rtol=1e-5, atol=1e-6)
    z_ours = sigmoid(x @ wx[:, z_] + b[z_] + h @ wrz[:, 6:] + bh[z_])
    np.testing.assert_allclose(z_ours, 1 - z_torch, rtol=1e-6, atol=1e-7)
