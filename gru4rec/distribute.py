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

One ``strategy.run`` per update, many updates per call. The trainer's chunk function (``Trainer._run_chunk``, one
``tf.function`` call per chunk) runs its ``tf.while_loop`` in the *cross-replica* context and calls
``strategy.run`` once per window inside it (as Keras does for ``steps_per_execution``); the all-reduce sits inside
the replica function, not around a loop inside it (a replica-context ``all_reduce`` inside a ``tf.range`` loop of
the replica function fails on TF 2.21: "merge_call called while defining a new graph or a tf.function … control
flow statement"). The GRU state travels through the loop as per-replica values. So data-parallel training makes
one host call per chunk, like one device; the seed-era version made one call per update (10-16 ms/step on CPU).

The trainer does not know about ``tf.distribute``: it asks a *replica layout* (:class:`OneDevice` or
:class:`DataParallel`, both here) for this replica's lanes, the column order, the all-reduce and how to run a
window. ``gru4rec.train`` imports this module; this module imports nothing of the trainer (no import circle).

Multi-worker start-up: ``MultiWorkerMirroredStrategy()`` blocks until every worker of ``TF_CONFIG`` has started,
inside TensorFlow's C++ code, where Python's signal handlers never run. :func:`make_strategy` therefore waits
under a watchdog (:func:`peer_watchdog`): SIGINT (Ctrl-C) ends the process at once, and after
``GRU4REC_CONNECT_TIMEOUT`` seconds (default 120) a watchdog process writes a line naming the workers it could not
reach and ends it (SIGTERM, then SIGKILL). SIGTERM sent by someone else during the wait is caught by TensorFlow's
own preemption notifier (installed when the multi-worker runtime starts) and does not end the process; use SIGINT
or SIGKILL, or let the timeout act.
TensorFlow's gRPC server listens on all interfaces whatever ``TF_CONFIG`` says: run multi-worker training on a
trusted network only.

Mixed precision and loss scaling work as on one device; the gradients are all-reduced before the finite check, so
every replica skips the same steps.
"""


from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import tensorflow as tf

from gru4rec.peer_watch import CONNECT_TIMEOUT_ENV, unreachable_workers  # noqa: F401 - part of this API

STRATEGIES = ("none", "mirrored", "multiworker")
DEFAULT_CONNECT_TIMEOUT_S = 120.0


class DistributeError(ValueError):
    """The asked-for data-parallel set-up cannot run here (no devices, no TF_CONFIG, a batch that does not split)."""


def local_devices() -> list:
    """Devices a MirroredStrategy uses here: the GPUs, else the logical CPU devices."""
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def connect_timeout() -> float:
    """Seconds a worker waits for the others at start-up: ``GRU4REC_CONNECT_TIMEOUT`` (default 120)."""
    raw = os.environ.get(CONNECT_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_CONNECT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise DistributeError(f"{CONNECT_TIMEOUT_ENV} must be a positive number of seconds; got {raw!r}")
    return value


def parse_tf_config(raw: str) -> tuple:
    """``(workers, index)`` of a ``TF_CONFIG`` string; :class:`DistributeError` naming what is wrong."""
    if not raw:
        raise DistributeError(
            "--distribute multiworker needs TF_CONFIG describing the cluster, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
        )
    try:
        tf_config = json.loads(raw)
        workers = [str(w) for w in tf_config["cluster"]["worker"]]
        index = int(tf_config["task"]["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise DistributeError(f"TF_CONFIG is not a valid cluster description ({error}): {raw[:200]}") from None
    if not 0 <= index < len(workers):
        raise DistributeError(f"TF_CONFIG task index {index} is not a worker of {workers}")
    for address in workers:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise DistributeError(f"TF_CONFIG worker {address!r} is not host:port")
    return workers, index


@contextlib.contextmanager
def peer_watchdog(workers: Sequence[str], index: int, timeout_s: float) -> Iterator[None]:
    """Guard a block that waits for the other workers inside TensorFlow's C++ code, which holds Python's global
    lock (no Python thread or signal handler runs meanwhile): SIGINT and SIGTERM get their default action (the
    process ends at once; TensorFlow's preemption notifier replaces the SIGTERM one once the multi-worker runtime
    starts), and a watchdog process (``gru4rec/peer_watch.py``) ends this one with a one-line error
    naming the workers whose port does not answer when the block has not finished after ``timeout_s`` seconds.
    Both are undone when the block ends."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, signal.SIG_DFL)
    watcher = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("peer_watch.py")), str(os.getpid()), f"{timeout_s:g}",
         str(index), *workers],
        stdin=subprocess.PIPE,
    )  # fmt: skip
    try:
        yield
    finally:
        watcher.stdin.close()  # tells the watchdog the block ended
        watcher.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def make_strategy(kind: str, devices: Optional[list] = None):
    """The ``tf.distribute`` strategy for ``--distribute kind`` (None for ``none``). Create it before other TF
    work (``MultiWorkerMirroredStrategy`` configures the runtime's collectives); for ``multiworker`` it waits for
    the other workers under :func:`peer_watchdog` (``GRU4REC_CONNECT_TIMEOUT`` seconds)."""
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
    workers, index = parse_tf_config(os.environ.get("TF_CONFIG", ""))
    timeout_s = connect_timeout()
    with peer_watchdog(workers, index, timeout_s):
        return tf.distribute.MultiWorkerMirroredStrategy()


# --------------------------------------------------------------------------------------------- replica layouts
class OneDevice:
    """The trainer's replica layout on one device: every lane, no all-reduce, windows called directly."""

    n_replicas = 1

    def scope(self):
        return contextlib.nullcontext()

    def lanes(self, t: tf.Tensor, axis: int = 1) -> tf.Tensor:
        """This replica's lanes of a ``(…, B, …)`` tensor: all of them."""
        return t

    def columns(self, t: tf.Tensor) -> tf.Tensor:
        """Score columns ``(…, B + n_sample)`` in this replica's order: unchanged."""
        return t

    def all_reduce(self, values, max_rows: Optional[int] = None):
        """The sum over the replicas: the values themselves. (``max_rows``: a bound on dynamic first dimensions.)"""
        return values

    def run(self, fn: Callable, args: tuple):
        """Run one window: ``fn(*args)``."""
        return fn(*args)

    def local(self, value):
        """A window's result as a plain tensor."""
        return value

    def initial_state(self, layer_sizes: Sequence[int], batch: int) -> list:
        """Zero GRU states ``[(B, units), ...]``."""
        return [tf.zeros((batch, n), tf.float32) for n in layer_sizes]

    def ran_on(self, state) -> str:
        return state[0].device

    def info(self, updates_per_call: int) -> dict:
        return {"strategy": "none"}


class DataParallel(OneDevice):
    """Lanes split across the replicas of ``strategy`` (module docstring): ``batch_size / n_replicas`` lanes each."""

    def __init__(self, strategy, kind: str, batch_size: int, n_sample: int):
        self.strategy = strategy
        self.kind = kind
        self.n_replicas = int(strategy.num_replicas_in_sync)
        if batch_size % self.n_replicas:
            raise DistributeError(
                f"batch_size {batch_size} does not split into {self.n_replicas} replicas; use a multiple of "
                f"{self.n_replicas}"
            )
        self.batch = int(batch_size)
        self.n_sample = int(n_sample)
        self.local_batch = self.batch // self.n_replicas

    def scope(self):
        return self.strategy.scope()

    def _replica(self) -> tf.Tensor:
        return tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int32)

    def lanes(self, t: tf.Tensor, axis: int = 1) -> tf.Tensor:
        start = self._replica() * self.local_batch
        return tf.gather(t, tf.range(start, start + self.local_batch), axis=axis)

    def columns(self, t: tf.Tensor) -> tf.Tensor:
        """Own lanes' targets first (the losses take column i as lane i's positive), then the others, then the
        shared samples."""
        batch = self.batch
        order = tf.concat([(tf.range(batch) + self._replica() * self.local_batch) % batch,
                           tf.range(batch, batch + self.n_sample)], axis=0)  # fmt: skip
        return tf.gather(t, order, axis=1)

    def all_reduce(self, values, max_rows: Optional[int] = None):
        """Sum over the replicas. Tensors whose first dimension is not static (rows of ``tf.unique``) are padded
        with zero rows to ``max_rows`` for the collective and cut back after it: TensorFlow resolves a collective
        inside the in-graph loop once, with the shape of its first run, so every run must have that shape."""
        values = list(values)
        rows = [None if v.shape.rank == 0 or v.shape[0] is not None else tf.shape(v)[0] for v in values]
        padded = []
        for v, n in zip(values, rows):
            if n is not None:
                if max_rows is None:
                    raise ValueError("all_reduce of a tensor with a dynamic first dimension needs max_rows")
                v = tf.pad(v, [[0, max_rows - n]] + [[0, 0]] * (v.shape.rank - 1))
                v = tf.ensure_shape(v, [max_rows] + v.shape.as_list()[1:])
            padded.append(v)
        summed = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, padded)
        return [v if n is None else v[:n] for v, n in zip(summed, rows)]

    def run(self, fn: Callable, args: tuple):
        return self.strategy.run(fn, args=args)

    def local(self, value):
        return self.strategy.experimental_local_results(value)[0]

    def initial_state(self, layer_sizes: Sequence[int], batch: int) -> list:
        # Made by ``strategy.run`` so that it has the type the loop's windows return (per-replica values with several
        # local replicas, plain tensors with one, as on each worker of a multi-worker run).
        zeros = [tf.zeros((self.local_batch, n), tf.float32) for n in layer_sizes]
        return list(self.strategy.run(lambda: [tf.identity(z) for z in zeros]))

    def ran_on(self, state) -> str:
        return self.local(state[0]).device

    def info(self, updates_per_call: int) -> dict:
        return {
            "strategy": self.kind,
            "class": type(self.strategy).__name__,
            "replicas": self.n_replicas,
            "lanes_per_replica": self.local_batch,
            "devices": list(self.strategy.extended.worker_devices),
            "updates_per_call": int(updates_per_call),
        }
