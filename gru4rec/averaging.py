"""Polynomial-decay averaging of the weights (Shamir & Zhang, ICML 2013), a departure from the official codes.

The official GRU4Rec codes evaluate the weights of the last update. With the RSC15-best parameters (Adagrad at
learning rate 0.2, momentum, hidden dropout 0.4) those weights are noisy: on the kit's ``small`` preset the Recall@20
of the per-epoch checkpoints moves up and down by about 0.003 from epoch to epoch after the third. An average of
the iterates removes that noise. The kit keeps a second copy of the model, ``average``, and after the ``t``-th
chunk of training (``chunk_steps`` mini-batch steps, i.e. ``chunk_steps / bptt_steps`` updates; the last chunk of an
epoch is shorter) moves it towards the current weights::

    c_t = (eta + 1) / (t + eta)            # c_1 = 1: the first average is the weights themselves
    average <- average + c_t * (weights - average)

so that the weights after chunk ``s`` count in the average after chunk ``t`` in proportion to about ``(s / t) ** eta``:
``eta = 0`` is the plain mean of all iterates, and a larger ``eta`` forgets the early ones faster (the last quarter
of training holds ``1 - 0.75 ** (eta + 1)`` of the weight: 68 % for ``eta = 3``). The rule needs neither the number of
epochs nor a start step, so the average after epoch 3 of a 10-epoch run is that of a 3-epoch run. It moves once per
chunk, so the average depends on ``chunk_steps`` (the weights it averages do not): the same run with another
``chunk_steps`` evaluates another average.

Training itself is unchanged (the optimizer updates the model's own weights); evaluation, validation and export use
the average. Its cost is one pass over the weights per chunk (estimated from the bytes moved: under 1 % of a chunk
of the official configuration; not timed).
"""

from __future__ import annotations

import tensorflow as tf

from gru4rec.model import GRU4RecModel


class WeightAverage:
    """The running polynomial-decay average of ``source``'s weights; ``model`` is a :class:`GRU4RecModel` of the
    same architecture holding it, ``count`` the averaging updates done. :meth:`checkpoint` is the part the run's
    checkpoint saves as ``average``, so a resumed run goes on averaging."""

    def __init__(self, source: GRU4RecModel, eta: float):
        if not (isinstance(eta, (int, float)) and eta >= 0):
            raise ValueError(f"weight_averaging: invalid value {eta!r}; allowed: a number >= 0")
        self.eta = float(eta)
        self.model = GRU4RecModel(source.n_items, source.config, name="average")
        self.count = tf.Variable(0, dtype=tf.int64, trainable=False, name="average_count")
        self._pairs = list(zip(self.model.trainable_variables, source.trainable_variables))
        self.update = tf.function(self._update, autograph=False)

    def checkpoint(self) -> tf.train.Checkpoint:
        return tf.train.Checkpoint(model=self.model, count=self.count)

    def _update(self) -> None:
        """One averaging update: ``average += c_t * (weights - average)``, ``c_t = (eta + 1) / (t + eta)``."""
        self.count.assign_add(1)
        c = (self.eta + 1.0) / (tf.cast(self.count, tf.float32) + self.eta)
        for avg, weights in self._pairs:
            avg.assign_add(c * (weights - avg))  # same shape as the weight, e.g. Wy (n_items, H)


def average_restore_target(model: GRU4RecModel) -> tf.train.Checkpoint:
    """A checkpoint object that restores the ``average`` part of a run's checkpoint into ``model`` (and nothing
    else), for reading a trained run back."""
    return tf.train.Checkpoint(average=tf.train.Checkpoint(model=model))
