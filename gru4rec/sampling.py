"""Extra negative samples, drawn with probability proportional to support^sample_alpha, from a precomputed store.

As in the official code (``SampleCache`` / the Theano "sample store"): a buffer of ``sample_store_size // n_sample``
rows of ``n_sample`` item indices is drawn at once (``searchsorted`` of uniform numbers in the cumulative
distribution of ``support ** sample_alpha``); each training step uses one row, shared by the whole mini-batch; when
the buffer is used up it is drawn again. Here the draws use TensorFlow's stateless RNG keyed by ``(seed, refill
number)``, so the buffer is a pure function of the seed and of how many times it was refilled. Only the position in
the buffer and the refill count are checkpointed (:attr:`NegativeSampler.state`); :meth:`NegativeSampler.sync`
redraws the current buffer after a restore.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def sampling_cdf(item_counts: np.ndarray, sample_alpha: float) -> np.ndarray:
    """Cumulative distribution of ``support ** sample_alpha`` (float64, last value exactly 1)."""
    counts = np.asarray(item_counts, dtype=np.float64)
    if counts.ndim != 1 or len(counts) == 0:
        raise ValueError("item_counts must be a non-empty 1-D array")
    weights = counts**sample_alpha
    weights[counts <= 0] = 0.0  # an item never seen in training is never sampled (0 ** 0 would be 1)
    total = weights.sum()
    if total <= 0:
        raise ValueError("item_counts: no item has positive support; cannot sample negatives")
    cdf = np.cumsum(weights) / total
    cdf[-1] = 1.0
    return cdf


class SamplerState(tf.Module):
    """The checkpointed part of the sampler: the next row of the buffer and how many times it was drawn."""

    def __init__(self, rows: int):
        super().__init__(name="sampler_state")
        self.pointer = tf.Variable(rows, dtype=tf.int64, trainable=False, name="pointer")  # rows => draw first
        self.refills = tf.Variable(0, dtype=tf.int64, trainable=False, name="refills")


class NegativeSampler:
    """Rows of ``n_sample`` shared negatives, ``take(n)`` -> ``(n, n_sample)`` int32; also usable in ``tf.function``."""

    def __init__(
        self,
        item_counts: np.ndarray,
        n_sample: int,
        sample_alpha: float,
        seed: int,
        store_size: int = 10_000_000,
        min_rows: int = 1,
    ):
        self.n_sample = int(n_sample)
        self.seed = int(seed)
        self.n_items = len(item_counts)
        self.rows = max(int(min_rows), int(store_size) // max(self.n_sample, 1), 1)
        self.cdf = tf.constant(sampling_cdf(item_counts, sample_alpha)) if self.n_sample > 0 else None
        self.state = SamplerState(self.rows)
        self.buffer = tf.Variable(
            tf.zeros((self.rows if self.n_sample > 0 else 0, self.n_sample), tf.int32), trainable=False, name="buffer"
        )

    def _draw(self, refill: tf.Tensor) -> tf.Tensor:
        seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(refill, tf.int64) + 7919])
        u = tf.random.stateless_uniform([self.rows * self.n_sample], seed=seed, dtype=tf.float64)
        idx = tf.searchsorted(self.cdf, u, side="right")
        idx = tf.minimum(idx, self.n_items - 1)
        return tf.reshape(tf.cast(idx, tf.int32), (self.rows, self.n_sample))

    def take(self, n: int) -> tf.Tensor:
        """The next ``n`` rows (``n <= rows``) of the stream of rows: the rest of the buffer, then (if more are
        needed) the start of a fresh draw. One row per training step, whatever the chunk size."""
        if self.n_sample == 0:
            return tf.zeros((n, 0), tf.int32)
        if n > self.rows:
            raise ValueError(f"cannot take {n} rows from a sample store of {self.rows} rows")
        return self._take(tf.constant(n, tf.int64))

    @tf.function
    def _take(self, n: tf.Tensor) -> tf.Tensor:
        state = self.state
        start = state.pointer.read_value()
        head = self.buffer[tf.minimum(start, self.rows) : tf.minimum(start + n, self.rows)]
        if start + n > self.rows:
            state.refills.assign_add(1)
            self.buffer.assign(self._draw(state.refills))
            rest = n - tf.cast(tf.shape(head)[0], tf.int64)
            block = tf.concat([head, self.buffer[:rest]], axis=0)
            state.pointer.assign(rest)
        else:
            block = head
            state.pointer.assign(start + n)
        return block

    def sync(self) -> None:
        """Redraw the buffer that matches the (restored) refill count."""
        if self.n_sample > 0 and int(self.state.refills.numpy()) > 0:
            self.buffer.assign(self._draw(self.state.refills))
