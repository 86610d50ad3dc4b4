"""Row-sparse optimizers: Adagrad with momentum (the official GRU4Rec optimizer) and Adam (the seed's).

Item-indexed matrices (output weights and bias, input embedding) get a gradient on a few rows per step. Updating
every row (what Keras 3's optimizers do with such a gradient) costs 14-50 ms per step with 37,500 items on a 2-core
CPU against about 0.45 ms for the touched rows (``shared/notes/facts.md``). Here a sparse gradient is a
``tf.IndexedSlices`` whose indices may repeat; it is coalesced (``tf.unique`` + ``unsorted_segment_sum``, like the
official PyTorch ``IndexedAdagradM``) and only those rows of the weights and of the optimizer slots are read and
written (gather / scatter).

Adagrad (official ``adagrad`` + momentum, eps = 1e-6)::

    acc += g^2;  u = g / sqrt(acc + eps)
    momentum > 0:  v = momentum * v - lr * u;  w += v      else:  w -= lr * u

The official docstring calls this "Nesterov momentum", but all three official implementations apply the classical
(heavy-ball) form above; so does this module. Rows that a step does not touch keep their velocity and do not move.

Adam (TF1 ``AdamOptimizer`` formulas: beta1 0.9, beta2 0.999, eps 1e-8, bias correction from the global step) with
the seed's schedule ``lr = max(lr_floor, learning_rate * decay ** floor(step / decay_steps))``. For sparse gradients
it is "lazy" by default (``lazy_adam=True``): only touched rows' moments decay and update. With ``lazy_adam=False``
it does what TF1's ``AdamOptimizer`` does with a sparse gradient (the seed's): every row's moments decay each step
(an untouched row has gradient 0) and every row moves by ``lr_t * m / (sqrt(v) + eps)``, the dense cost the lazy
form avoids. The schedule applies to Adagrad too (``decay=1`` leaves it constant).

``grad_cap > 0`` rescales all gradients together when their global norm exceeds it (the official Theano rule).
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import tensorflow as tf

from gru4rec.config import Config


class RowGrad:
    """A gradient on rows ``indices`` (unique) of a variable, optionally with those rows' current values."""

    def __init__(self, indices: tf.Tensor, values: tf.Tensor, rows: Optional[tf.Tensor] = None):
        self.indices, self.values, self.rows = indices, values, rows


Grad = Union[tf.Tensor, tf.IndexedSlices, RowGrad]


def coalesce(grad: tf.IndexedSlices) -> tuple:
    """Unique row indices and the summed gradient rows: ``(indices (u,), values (u, ...))``."""
    unique, position = tf.unique(grad.indices)
    values = tf.math.unsorted_segment_sum(grad.values, position, tf.shape(unique)[0])
    return unique, values


class RowSparseOptimizer(tf.Module):
    """Base class: slots per variable, the step counter, the learning-rate schedule and gradient capping."""

    slot_names: tuple = ()

    def __init__(self, config: Config, variables: Sequence[tf.Variable], name: str = "optimizer"):
        super().__init__(name=name)
        self.learning_rate_base = float(config.learning_rate)
        self.decay = float(config.decay)
        self.decay_steps = int(config.decay_steps)
        self.lr_floor = float(config.lr_floor)
        self.grad_cap = float(config.grad_cap)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.variables_ = list(variables)
        self.slots = []
        with self.name_scope:
            for var in self.variables_:
                base = var.name.split(":")[0].replace("/", "_")
                self.slots.append(
                    {
                        slot: tf.Variable(tf.zeros_like(var), trainable=False, name=f"{base}_{slot}")
                        for slot in self.slot_names
                    }
                )

    def learning_rate(self, step=None) -> tf.Tensor:
        """``max(lr_floor, learning_rate * decay ** floor(step / decay_steps))`` at ``step`` (default: now)."""
        step = self.step if step is None else step
        if self.decay == 1.0:
            return tf.fill(tf.shape(step), tf.constant(self.learning_rate_base, tf.float32))
        exponent = tf.math.floordiv(tf.cast(step, tf.int64), self.decay_steps)
        lr = self.learning_rate_base * tf.pow(tf.constant(self.decay, tf.float32), tf.cast(exponent, tf.float32))
        return tf.maximum(tf.constant(self.lr_floor, tf.float32), lr)

    def hyperparameters(self, steps: tf.Tensor) -> tf.Tensor:
        """Per-update scalars for updates number ``steps`` (int64 vector): ``(len(steps), n)`` float32, column 0 the
        learning rate. A trainer can compute them for a whole chunk of updates at once, outside its step loop."""
        return self.learning_rate(steps)[:, tf.newaxis]

    def apply(self, grads: Sequence[Grad], hyper: Optional[tf.Tensor] = None) -> tf.Tensor:
        """Apply one update with ``grads`` (one per variable, in the constructor's order); returns the lr used.

        ``hyper``: this update's row of :meth:`hyperparameters` (computed here when None)."""
        if hyper is None:
            hyper = self.hyperparameters(tf.reshape(self.step, [1]))[0]
        lr = hyper[0]
        prepared = []
        for grad in grads:
            if isinstance(grad, tf.IndexedSlices):
                prepared.append(RowGrad(*coalesce(grad)))
            else:
                prepared.append(grad)
        if self.grad_cap > 0:
            squares = [tf.reduce_sum(tf.square(g.values if isinstance(g, RowGrad) else g)) for g in prepared]
            norm = tf.sqrt(tf.add_n(squares))
            scale = tf.where(norm >= self.grad_cap, self.grad_cap / norm, 1.0)
            prepared = [
                RowGrad(g.indices, g.values * scale, g.rows) if isinstance(g, RowGrad) else g * scale
                for g in prepared
            ]
        self._prepare(hyper)
        for var, slots, grad in zip(self.variables_, self.slots, prepared):
            if grad is None:
                continue
            if isinstance(grad, RowGrad):
                rows = grad.rows if grad.rows is not None else tf.gather(var, grad.indices)
                self._apply_rows(var, slots, grad.indices, grad.values, rows, lr)
            else:
                self._apply_dense(var, slots, grad, lr)
        self.step.assign_add(1)
        return lr

    def _prepare(self, hyper) -> None:
        """Unpack this update's hyperparameters for the per-variable updates."""
        return None

    def _apply_dense(self, var, slots, grad, lr):  # pragma: no cover - abstract
        raise NotImplementedError

    def _apply_rows(self, var, slots, indices, grad, rows, lr):  # pragma: no cover - abstract
        """Update ``var[indices]`` (unique) whose current values are ``rows``; write with scatter_update only
        (on CPU ``scatter_update`` copies rows about 5x faster than ``scatter_add``/``scatter_sub``)."""
        raise NotImplementedError


class AdagradM(RowSparseOptimizer):
    """Official GRU4Rec Adagrad with (heavy-ball) momentum; see the module docstring."""

    def __init__(self, config: Config, variables: Sequence[tf.Variable], epsilon: float = 1e-6):
        self.momentum = float(config.momentum)
        self.epsilon = float(epsilon)
        self.slot_names = ("acc", "mom") if self.momentum > 0 else ("acc",)
        super().__init__(config, variables, name="adagrad_m")

    def _apply_dense(self, var, slots, grad, lr):
        acc = slots["acc"]
        acc.assign_add(tf.square(grad))
        update = grad * tf.math.rsqrt(acc + self.epsilon)
        if self.momentum > 0:
            mom = slots["mom"]
            mom.assign(self.momentum * mom - lr * update)
            var.assign_add(mom)
        else:
            var.assign_sub(lr * update)

    def _apply_rows(self, var, slots, indices, grad, rows, lr):
        acc = slots["acc"]
        acc_rows = tf.gather(acc, indices) + tf.square(grad)
        acc.scatter_update(tf.IndexedSlices(acc_rows, indices))
        update = grad * tf.math.rsqrt(acc_rows + self.epsilon)
        if self.momentum > 0:
            mom = slots["mom"]
            velocity = self.momentum * tf.gather(mom, indices) - lr * update
            mom.scatter_update(tf.IndexedSlices(velocity, indices))
            var.scatter_update(tf.IndexedSlices(rows + velocity, indices))
        else:
            var.scatter_update(tf.IndexedSlices(rows - lr * update, indices))


class Adam(RowSparseOptimizer):
    """Adam with TF1's formulas and the seed's staircase decay; lazy (touched rows only) for sparse gradients."""

    slot_names = ("m", "v")

    def __init__(self, config: Config, variables: Sequence[tf.Variable], beta1=0.9, beta2=0.999, epsilon=1e-8):
        self.beta1, self.beta2, self.epsilon = float(beta1), float(beta2), float(epsilon)
        self.lazy = bool(config.lazy_adam)
        super().__init__(config, variables, name="adam")

    def hyperparameters(self, steps: tf.Tensor) -> tf.Tensor:
        """Columns: lr, the bias-corrected ``lr_t``, ``beta1 ** t``, ``beta2 ** t`` with ``t = step + 1``."""
        lr = self.learning_rate(steps)
        t = tf.cast(steps + 1, tf.float32)
        b1_power, b2_power = tf.pow(self.beta1, t), tf.pow(self.beta2, t)
        lr_t = lr * tf.sqrt(1.0 - b2_power) / (1.0 - b1_power)
        return tf.stack([lr, lr_t, b1_power, b2_power], axis=1)

    def _prepare(self, hyper) -> None:
        self._lr_t, self._b1_power, self._b2_power = hyper[1], hyper[2], hyper[3]

    def _apply_dense(self, var, slots, grad, lr):
        b1_power, b2_power = self._b1_power, self._b2_power
        tf.raw_ops.ResourceApplyAdam(
            var=var.handle,
            m=slots["m"].handle,
            v=slots["v"].handle,
            beta1_power=b1_power,
            beta2_power=b2_power,
            lr=lr,
            beta1=tf.constant(self.beta1),
            beta2=tf.constant(self.beta2),
            epsilon=tf.constant(self.epsilon),
            grad=grad,
        )

    def _apply_rows(self, var, slots, indices, grad, rows, lr):
        if not self.lazy:  # TF1: the sparse gradient is a dense one with zero rows
            dense = tf.scatter_nd(indices[:, tf.newaxis], grad, tf.shape(var, out_type=indices.dtype))
            self._apply_dense(var, slots, dense, lr)
            return
        m, v = slots["m"], slots["v"]
        m_rows = self.beta1 * tf.gather(m, indices) + (1.0 - self.beta1) * grad
        v_rows = self.beta2 * tf.gather(v, indices) + (1.0 - self.beta2) * tf.square(grad)
        m.scatter_update(tf.IndexedSlices(m_rows, indices))
        v.scatter_update(tf.IndexedSlices(v_rows, indices))
        var.scatter_update(tf.IndexedSlices(rows - self._lr_t * m_rows / (tf.sqrt(v_rows) + self.epsilon), indices))


def make_optimizer(config: Config, variables: Sequence[tf.Variable]) -> RowSparseOptimizer:
    if config.optimizer == "adagrad":
        return AdagradM(config, variables)
    if config.optimizer == "adam":
        return Adam(config, variables)
    raise ValueError(f"optimizer: unknown value {config.optimizer!r}; allowed: adagrad, adam")
