"""The GRU4Rec network: embedding modes, a hand-written GRU stack, dropout and item scores.

Per layer an input matrix ``Wx`` (in, 3H) with the blocks [candidate | reset | update], a recurrent matrix ``Wrz``
(H, 2H) for the reset and update gates, ``Wh`` (H, H) for the candidate and an input bias ``b`` (3H,). Two variants
(``Config.gru_variant``), both with the update gate ``z`` weighing the new candidate:

- ``reset_before`` (Theano ``gru4rec.py`` and the official TF code; Keras ``reset_after=False``): the reset gate is
  applied to the state before the recurrent product::

    r, z = sigmoid(x Wx[r, z] + b[r, z] + h Wrz)
    c    = act(x Wx[c] + b[c] + (r * h) Wh)
    h'   = (1 - z) * h + z * c

- ``reset_after`` (the cell of ``torch.nn.GRUCell``, the layers of the official PyTorch code; Keras
  ``reset_after=True``): the reset gate multiplies the recurrent product, and the recurrent part has its own bias
  ``bh`` (3H,)::

    r, z = sigmoid(x Wx[r, z] + b[r, z] + h Wrz + bh[r, z])
    c    = act(x Wx[c] + b[c] + r * (h Wh + bh[c]))
    h'   = (1 - z) * h + z * c

Here ``z`` weighs the new candidate. ``torch.nn.GRUCell``, Keras' ``GRUCell`` and TF1's ``GRUCell`` write
``h' = z h + (1 - z) c`` (TF1: ``u h + (1 - u) c``): their update gate is this module's ``1 - z`` (the same function
with the gate's weights and bias negated). Both variants draw the same initial weights (each gate block of ``Wx``,
``Wrz`` and ``Wh`` uniform in ±sqrt(6 / (fan_in + fan_out)) on its own (in, H) shape, biases zero), as the official
PyTorch code's compatibility mode does for ``weight_ih`` / ``weight_hh``; ``gru_init="tf1"`` draws TF1
``GRUCell``'s instead (:func:`tf1_gru_init`, the seed's). Dropout on a layer's output, with the probability of
dropping, is applied before the output becomes the carried state, as in the official codes; with
``dropout_on_state=False`` (the seed's TF1 ``DropoutWrapper(output_keep_prob=...)``) only the output passed to the
next layer and to the scores is dropped, and the state carried to the next step is the undropped one.

Embedding modes (as in the official code):

- ``none`` (``embedding=0``, ``constrained_embedding=False``): the one-hot input times the first layer's ``Wx`` is a
  row lookup of that (n_items, 3H) matrix, which is therefore updated sparsely like an embedding; the first layer
  plays the embedding's part, so its output gets ``dropout_p_embed`` (not ``dropout_p_hidden``), as in the
  official TF and PyTorch codes;
- ``separate`` (``embedding=N``): an input embedding ``E`` (n_items, N);
- ``shared`` (``constrained_embedding=True``): the input of the first layer is the item's row of the output weights
  ``Wy`` (so the first layer's input size is the last layer's size).

In the separate and shared modes ``dropout_p_embed`` applies to the input rows and ``dropout_p_hidden`` to every
layer's output.

Scores are ``hidden @ Wy[items].T + By[items]`` (raw: the loss applies the final activation).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from gru4rec.config import Config


def init_matrix(rng: np.random.Generator, shape: tuple, config: Config) -> np.ndarray:
    """Official initialisation: uniform in ±sqrt(6 / (fan_in + fan_out)), or ±sigma / N(0, sigma) when set."""
    sigma = config.sigma if config.sigma != 0 else np.sqrt(6.0 / (shape[0] + shape[1]))
    if config.init_as_normal:
        return (rng.standard_normal(shape) * sigma).astype(np.float32)
    return (rng.random(shape) * 2 * sigma - sigma).astype(np.float32)


def _dropout(x: tf.Tensor, rate: float, seed: tf.Tensor) -> tf.Tensor:
    """Inverted dropout with a stateless RNG: drop with probability ``rate``, scale the kept units by 1/(1-rate)."""
    keep = tf.random.stateless_uniform(tf.shape(x), seed=seed, dtype=x.dtype) >= rate
    return x * tf.where(keep, tf.constant(1.0 / (1.0 - rate), x.dtype), tf.constant(0.0, x.dtype))


def tf1_gru_init(rng: np.random.Generator, n_in: int, units: int) -> tuple:
    """The initial weights of TF1's ``GRUCell`` (the seed's cell) in this module's layout: ``(Wx (in, 3H),
    Wrz (H, 2H), Wh (H, H), b (3H,))``.

    TF1 builds a gate kernel ``(in + H, 2H)`` over the concatenated ``[input; state]`` and a candidate kernel
    ``(in + H, H)``, both with the variable scope's default initializer (glorot uniform: ±sqrt(6 / (fan_in +
    fan_out)) over the whole kernel's shape), the gate bias 1.0 and the candidate bias 0. Its update gate ``u``
    keeps the old state (``h' = u h + (1 - u) c``): this module's ``z`` is ``1 - u = sigmoid(-(...))``, so the
    update block holds the negated kernel and bias (-1.0): the same function, and the same distribution of
    weights (the uniform is symmetric)."""
    gate_limit = np.sqrt(6.0 / ((n_in + units) + 2 * units))
    cand_limit = np.sqrt(6.0 / ((n_in + units) + units))
    gate = rng.uniform(-gate_limit, gate_limit, (n_in + units, 2 * units)).astype(np.float32)  # [r | u]
    cand = rng.uniform(-cand_limit, cand_limit, (n_in + units, units)).astype(np.float32)
    gate_r, gate_z = gate[:, :units], -gate[:, units:]
    wx = np.hstack([cand[:n_in], gate_r[:n_in], gate_z[:n_in]])  # (in, 3H) [candidate | reset | update]
    wrz = np.hstack([gate_r[n_in:], gate_z[n_in:]])  # (H, 2H)
    wh = cand[n_in:]  # (H, H)
    b = np.concatenate([np.zeros(units), np.ones(units), -np.ones(units)]).astype(np.float32)
    return wx, wrz, wh, b


class GRULayer(tf.Module):
    """One GRU layer's weights (see the module docstring for the equations of both variants)."""

    def __init__(self, n_in: int, units: int, rng: np.random.Generator, config: Config, name: str):
        super().__init__(name=name)
        self.units = units
        self.variant = config.gru_variant
        if config.gru_init == "tf1":
            wx, wrz, wh, b = tf1_gru_init(rng, n_in, units)
        else:
            # Each gate block initialised on its own (in, H) shape, as the official "compatibility mode".
            wx = np.hstack([init_matrix(rng, (n_in, units), config) for _ in range(3)])
            wrz = np.hstack([init_matrix(rng, (units, units), config) for _ in range(2)])
            wh = init_matrix(rng, (units, units), config)
            b = np.zeros(3 * units, np.float32)
        self.Wx = tf.Variable(wx, name="Wx")  # (in, 3H) [candidate | reset | update]
        self.Wrz = tf.Variable(wrz, name="Wrz")  # (H, 2H) [reset | update]
        self.Wh = tf.Variable(wh, name="Wh")  # (H, H)
        self.b = tf.Variable(b, name="b")  # (3H,) input bias
        if self.variant == "reset_after":
            self.bh = tf.Variable(np.zeros(3 * units, np.float32), name="bh")  # (3H,) recurrent bias

    @property
    def layer_variables(self) -> tuple:
        """The layer's variables, in a fixed order."""
        own = (self.Wx, self.Wrz, self.Wh, self.b)
        return own + (self.bh,) if self.variant == "reset_after" else own

    def cell(self, vx: tf.Tensor, h: tf.Tensor, activation) -> tf.Tensor:
        """One step given ``vx = x @ Wx + b`` (batch, 3H) and the state ``h`` (batch, H); returns (batch, H).

        The gates compute in ``vx``'s dtype (float32, or bfloat16/float16 under mixed precision: the float32
        weights and state are cast at use); the state update ``h + z (c - h)`` and the returned state stay in
        ``h``'s dtype (float32), so rounding does not accumulate along a session."""
        units = self.units
        dtype = vx.dtype

        def use(var):
            return var if var.dtype == dtype else tf.cast(var, dtype)

        h_c = h if h.dtype == dtype else tf.cast(h, dtype)
        vx_c, vx_rz = tf.split(vx, [units, 2 * units], axis=1)
        if self.variant == "reset_after":
            bh_c, bh_rz = tf.split(use(self.bh), [units, 2 * units])
            rz = tf.sigmoid(vx_rz + tf.nn.bias_add(tf.matmul(h_c, use(self.Wrz)), bh_rz))
            r, z = tf.split(rz, 2, axis=1)
            candidate = activation(vx_c + r * tf.nn.bias_add(tf.matmul(h_c, use(self.Wh)), bh_c))
        else:
            rz = tf.sigmoid(vx_rz + tf.matmul(h_c, use(self.Wrz)))
            r, z = tf.split(rz, 2, axis=1)
            candidate = activation(tf.matmul(h_c * r, use(self.Wh)) + vx_c)
        if dtype != h.dtype:
            z, candidate = tf.cast(z, h.dtype), tf.cast(candidate, h.dtype)
        return h + z * (candidate - h)


class GRU4RecModel(tf.Module):
    """GRU4Rec for ``n_items`` items with the architecture of ``config`` (a :class:`gru4rec.config.Config`)."""

    def __init__(self, n_items: int, config: Config, name: str = "gru4rec"):
        super().__init__(name=name)
        if n_items < 1:
            raise ValueError(f"n_items must be >= 1, got {n_items}")
        self.n_items = int(n_items)
        self.config = config
        self.layer_sizes = tuple(config.layers)
        if config.constrained_embedding:
            self.embedding_mode = "shared"
        elif config.embedding > 0:
            self.embedding_mode = "separate"
        else:
            self.embedding_mode = "none"
        self._activation = tf.tanh if config.hidden_act == "tanh" else tf.nn.relu
        rng = np.random.default_rng(config.seed)
        with self.name_scope:
            if self.embedding_mode == "separate":
                self.E = tf.Variable(init_matrix(rng, (self.n_items, config.embedding), config), name="E")
                n_in = config.embedding
            elif self.embedding_mode == "shared":
                n_in = self.layer_sizes[-1]
            else:
                n_in = self.n_items
            self.gru_layers = []
            for i, units in enumerate(self.layer_sizes):
                self.gru_layers.append(GRULayer(n_in, units, rng, config, name=f"gru_{i}"))
                n_in = units
            self.Wy = tf.Variable(init_matrix(rng, (self.n_items, self.layer_sizes[-1]), config), name="Wy")
            self.By = tf.Variable(np.zeros(self.n_items, np.float32), name="By")

    # ------------------------------------------------------------------ pieces the trainer uses
    @property
    def input_table(self) -> tf.Variable:
        """The (n_items, d) matrix whose rows are the first layer's input: ``Wy``, ``E`` or the first ``Wx``."""
        if self.embedding_mode == "shared":
            return self.Wy
        if self.embedding_mode == "separate":
            return self.E
        return self.gru_layers[0].Wx

    @property
    def sparse_variables(self) -> list:
        """Variables indexed by item (updated row-wise): output weights, output bias, input table."""
        out = [self.Wy, self.By]
        if self.embedding_mode != "shared":
            out.append(self.input_table)
        return out

    @property
    def dense_variables(self) -> list:
        sparse_ids = {id(v) for v in self.sparse_variables}
        out = []
        for layer in self.gru_layers:
            for var in layer.layer_variables:
                if id(var) not in sparse_ids:
                    out.append(var)
        return out

    def initial_state(self, batch_size: int) -> list:
        return [tf.zeros((batch_size, units), tf.float32) for units in self.layer_sizes]

    def stack(
        self, x_rows: tf.Tensor, state: Sequence[tf.Tensor], training: bool = False, seed: Optional[tf.Tensor] = None
    ) -> tuple:
        """Run the GRU stack on input rows (rows of :attr:`input_table` for the batch's items).

        ``seed``: a (2,) int tensor for the stateless dropout masks (training only); layer ``i`` uses
        ``seed + [0, i+1]`` and the input rows ``seed``. Dropout as the official TF/PyTorch codes: in the separate
        and shared modes ``dropout_p_embed`` on the input rows and ``dropout_p_hidden`` on every layer's output; in
        mode none (the first layer is the embedding) ``dropout_p_embed`` on the first layer's output and
        ``dropout_p_hidden`` on the others'. The new state is the dropped output, or with ``dropout_on_state=False``
        the undropped one. Returns ``(hidden of the last layer (batch, H_last), new_state)``.

        Mixed precision: the stack computes in ``x_rows``' dtype (cast the gathered rows with
        ``gru4rec.precision.PrecisionPolicy.cast``); the float32 weights are cast at use and the state stays
        float32, so the returned hidden and state are float32 whatever the compute dtype.
        """
        cfg = self.config
        use_dropout = training and seed is not None
        dtype = x_rows.dtype
        x = x_rows
        if use_dropout and cfg.dropout_p_embed > 0 and self.embedding_mode != "none":
            x = _dropout(x, cfg.dropout_p_embed, seed)
        new_state = []
        for i, layer in enumerate(self.gru_layers):
            x = x if x.dtype == dtype else tf.cast(x, dtype)
            b = layer.b if dtype == layer.b.dtype else tf.cast(layer.b, dtype)
            if i == 0 and self.embedding_mode == "none":
                vx = tf.nn.bias_add(x, b)
            else:
                wx = layer.Wx if dtype == layer.Wx.dtype else tf.cast(layer.Wx, dtype)
                vx = tf.nn.bias_add(tf.matmul(x, wx), b)
            h = layer.cell(vx, state[i], self._activation)
            rate = cfg.dropout_p_embed if i == 0 and self.embedding_mode == "none" else cfg.dropout_p_hidden
            out = h
            if use_dropout and rate > 0:
                out = _dropout(h, rate, seed + tf.constant([0, i + 1], seed.dtype))
            new_state.append(out if cfg.dropout_on_state else h)
            x = out
        return x, new_state

    # ------------------------------------------------------------------ the public contract
    def step(self, items: tf.Tensor, state: Sequence[tf.Tensor], training: bool = False, seed=None) -> tuple:
        """One step for a batch of item indices ``(batch,)``: ``(hidden (batch, H_last), new_state)``."""
        rows = tf.gather(self.input_table, items)
        return self.stack(rows, state, training=training, seed=seed)

    def score_items(self, hidden: tf.Tensor, item_idx: tf.Tensor) -> tf.Tensor:
        """Raw scores ``(batch, m)`` of the items ``item_idx (m,)``."""
        return tf.matmul(hidden, tf.gather(self.Wy, item_idx), transpose_b=True) + tf.gather(self.By, item_idx)

    def score_all(self, hidden: tf.Tensor) -> tf.Tensor:
        """Raw scores ``(batch, n_items)`` of every item."""
        return tf.matmul(hidden, self.Wy, transpose_b=True) + self.By
