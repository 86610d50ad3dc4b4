"""Data-parallel training with ``tf.distribute``: ``--distribute mirrored|multiworker``.

- ``mirrored``: ``tf.distribute.MirroredStrategy`` over the local devices (every GPU; on a CPU-only machine the
  logical CPU devices, see ``tf.config.set_logical_device_configuration``).
- ``multiworker``: ``tf.distribute.MultiWorkerMirroredStrategy`` over several processes or machines described by
  ``TF_CONFIG`` (``{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}``). Every
  worker runs the same command on the same training data; each writes its own run folder (give each its own
  ``--out``), and their weights stay identical.

How the work is split. The session-parallel mini-batch of ``batch_size`` lanes is cut into equal blocks of lanes,
one per replica (``batch_size`` must be a multiple of the number of replicas); every replica carries the GRU state
of its own lanes only. Every replica sees the *whole* mini-batch's item indices (inputs, targets, shared negative
samples: a few integers per lane), so:

- **in-batch negatives are exact**: a replica scores its lanes against the targets of *all* lanes (and the shared
  samples), as one device would; the item rows are mirrored variables, so no all-gather of rows is needed — the
  indices are all that is gathered, and they are given to every replica;
- **sparse gradients are all-reduced as dense blocks over a common index set**: the rows a window touches are
  ``tf.unique`` of the whole mini-batch's indices, identical on every replica, so each replica's gradient on those
  rows is a ``(n_unique, d)`` tensor with the same row order everywhere, and one sum all-reduce of these blocks (and
  of the dense GRU gradients) is the all-gather-and-coalesce of the rows' gradients. The update then touches only
  those rows, on every replica's copy;
- each replica's loss is the sum over its own lanes divided by the *global* ``batch_size``, so the all-reduced sum
  is the single-device gradient. Training therefore matches one device with the same global batch up to float
  summation order (tested: ``tests/test_distribute.py``). Dropout masks are drawn per replica for its lanes, so
  with dropout the runs are statistically, not numerically, the same.

One update per ``strategy.run``. On TF 2.21 a replica-context ``all_reduce`` inside a ``tf.range`` loop raises
"merge_call called while defining a new graph or a tf.function … control flow statement" with both
``MirroredStrategy`` and ``MultiWorkerMirroredStrategy``, so the single-device trainer's in-graph chunk loop cannot
hold the all-reduce. In distributed mode each window (one optimizer update: one step for BP, ``bptt_steps`` steps for
BPTT) is one ``tf.function`` call running ``strategy.run``; the chunk's per-step tensors are still prepared once per
chunk. This costs a host round trip per update (measured in the tests' output and in ``docs/devices.md``).

Mixed precision and loss scaling work as on one device; the gradients are all-reduced before the finite check, so
every replica skips the same steps.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

import numpy as np
import tensorflow as tf

from gru4rec.config import Config
from gru4rec.train import Trainer

STRATEGIES = ("none", "mirrored", "multiworker")


class DistributeError(ValueError):
    """The asked-for data-parallel set-up cannot run here (no devices, no TF_CONFIG, a batch that does not split)."""


def local_devices() -> list:
    """Devices a MirroredStrategy uses here: the GPUs, else the logical CPU devices."""
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def make_strategy(kind: str, devices: Optional[list] = None):
    """The ``tf.distribute`` strategy for ``--distribute kind`` (None for ``none``). Create it before other TF
    work (``MultiWorkerMirroredStrategy`` configures the runtime's collectives)."""
    if kind not in STRATEGIES:
        raise DistributeError(f"--distribute must be one of {', '.join(STRATEGIES)}; got {kind!r}")
    if kind == "none":
        return None
    if kind == "mirrored":
        devices = list(devices) if devices is not None else local_devices()
        if len(devices) < 2:
            raise DistributeError(
                f"--distribute mirrored needs at least 2 local devices; this process sees {devices}. Use several "
                "GPUs, or split the CPU into logical devices (tf.config.set_logical_device_configuration) before "
                "TensorFlow starts"
            )
        return tf.distribute.MirroredStrategy(devices)
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        raise DistributeError(
            "--distribute multiworker needs TF_CONFIG describing the cluster, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
        )
    try:
        tf_config = json.loads(raw)
        workers = tf_config["cluster"]["worker"]
        index = int(tf_config["task"]["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise DistributeError(f"TF_CONFIG is not a valid cluster description ({error}): {raw[:200]}") from None
    if not 0 <= index < len(workers):
        raise DistributeError(f"TF_CONFIG task index {index} is not a worker of {workers}")
    return tf.distribute.MultiWorkerMirroredStrategy()


class DistributedTrainer(Trainer):
    """A :class:`gru4rec.train.Trainer` whose lanes are split across the replicas of ``strategy``."""

    def __init__(self, config: Config, n_items: int, item_counts: np.ndarray, strategy, kind: str, **kwargs: Any):
        self.strategy = strategy
        self.kind = kind
        self.n_replicas = int(strategy.num_replicas_in_sync)
        if config.batch_size % self.n_replicas:
            raise DistributeError(
                f"batch_size {config.batch_size} does not split into {self.n_replicas} replicas; use a multiple of "
                f"{self.n_replicas}"
            )
        self.local_batch = config.batch_size // self.n_replicas
        with strategy.scope():
            super().__init__(config, n_items, item_counts, **kwargs)
        self.run_chunk = self._run_chunk_distributed
        self._prepare = tf.function(self._prepare_chunk)
        self._update = tf.function(self._update_distributed)

    def distribute_info(self) -> dict:
        return {
            "strategy": self.kind,
            "class": type(self.strategy).__name__,
            "replicas": self.n_replicas,
            "lanes_per_replica": self.local_batch,
            "devices": list(self.strategy.extended.worker_devices),
            "updates_per_call": 1,
        }

    # ----------------------------------------------------------------------------------- the hooks of Trainer
    def _lanes(self, t: tf.Tensor, axis: int = 1) -> tf.Tensor:
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        start = tf.cast(replica, tf.int32) * self.local_batch
        return tf.gather(t, tf.range(start, start + self.local_batch), axis=axis)

    def _columns(self, t: tf.Tensor) -> tf.Tensor:
        replica = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int32)
        batch = self.batch
        order = tf.concat([(tf.range(batch) + replica * self.local_batch) % batch,
                           tf.range(batch, batch + self.n_sample)], axis=0)  # fmt: skip
        return tf.gather(t, order, axis=1)

    def _all_reduce(self, grads: list) -> list:
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)

    def _initial_state(self):
        units = self.model.layer_sizes
        return [
            self.strategy.experimental_distribute_values_from_function(
                lambda _ctx, n=n: tf.zeros((self.local_batch, n), tf.float32)
            )
            for n in units
        ]

    def _ran_on(self, state) -> str:
        return self.strategy.experimental_local_results(state[0])[0].device

    # ----------------------------------------------------------------------------------- one update per call
    def _prepare_chunk(self, inputs, targets, resets, valid, samples):
        k, batch, n_sample = self.k, self.batch, self.n_sample
        n_win = self.chunk // k
        hyper, seeds, keep, (row_mask, col_mask, col_bias) = self._chunk_inputs(resets, valid)
        items = tf.reshape(tf.concat([inputs, targets, samples], axis=1), [n_win, k, 2 * batch + n_sample])
        floats = tf.concat([keep[..., 0], row_mask, col_mask, col_bias], axis=-1)
        return items, floats, seeds, hyper

    def _replica_window(self, items, floats, seeds, hyper, state):
        batch, n_sample = self.batch, self.n_sample
        n_cols = batch + n_sample
        x, y, smp = tf.split(items, [batch, batch, n_sample], axis=1)
        keep_w, rows_w, cols_w, bias_w = tf.split(floats, [batch, batch, n_cols, n_cols], axis=1)
        state, sums = self._window(x, y, keep_w[..., tf.newaxis], (rows_w, cols_w, bias_w), smp, seeds, hyper, state)
        sums = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, sums)
        return state, sums

    def _update_distributed(self, items, floats, seeds, hyper, state):
        return self.strategy.run(self._replica_window, args=(items, floats, seeds, hyper, list(state)))

    def _run_chunk_distributed(self, inputs, targets, resets, valid, samples, n_windows, state):
        items, floats, seeds, hyper = self._prepare(inputs, targets, resets, valid, samples)
        losses = []
        for w in range(int(n_windows)):
            state, sums = self._update(items[w], floats[w], seeds[w], hyper[w], state)
            losses.append(self.strategy.experimental_local_results(sums)[0])
        return list(state), tf.concat(losses, axis=0)


def make_distributed_trainer(config: Config, n_items: int, item_counts: np.ndarray, strategy=None, **kwargs):
    """A :class:`DistributedTrainer` for ``config.distribute`` (``strategy``: one made by :func:`make_strategy`)."""
    kwargs.pop("choice", None)
    strategy = strategy or make_strategy(config.distribute)
    return DistributedTrainer(config, n_items, item_counts, strategy, config.distribute, **kwargs)
