"""Training: BP and truncated BPTT over session-parallel mini-batches, many steps per ``tf.function`` call.

Both methods share one in-graph loop. A chunk of ``chunk_steps`` mini-batch steps goes to the device as
``(chunk, batch)`` tensors (inputs, targets, resets, valid) plus the chunk's negative samples; a ``tf.while_loop``
inside ONE ``tf.function`` call runs them, carrying the hidden state. Shapes are static (the last chunk of an epoch
is padded with steps whose lanes are all invalid, and the loop stops before them), so the function is traced once.
The seed ran one ``sess.run`` per step, which left its V100 and Ascend 910 waiting on the host ("host bound").

- BP (``bptt_steps=1``, the paper's method): one update per step; the state is carried to the next step without a
  gradient.
- Truncated BPTT (``bptt_steps=k``): one update per window of ``k`` steps with gradients through the whole window;
  lanes whose session starts inside the window have their state zeroed there (a real GRU on session-parallel lanes;
  the seed's "BPTT" folder trained an LSTM on padded, shuffled sequences). The window's loss is the mean of its
  steps' losses; the state enters the next window without a gradient. Each step keeps its own negative samples.

A step's loss for the update is the sum over its valid lanes divided by ``batch_size`` (official). The logged loss is
the mean over valid lanes, and the log shows the running mean of the epoch's step losses (like the seed's log).

Lanes without a session (the epoch's tail) are masked; their input and target indices are replaced by those of a
valid lane of the same step, so they touch no extra rows of the item matrices and the sparse updates equal the
official code's (which shrinks the batch). With ``n_sample=0`` the epoch stops where fewer than two lanes are left
(no negatives remain), as the official code does.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import tensorflow as tf

from gru4rec import run_folder as _run_folder
from gru4rec.averaging import WeightAverage
from gru4rec.batching import epoch_batches
from gru4rec.config import Config
from gru4rec.distribute import DataParallel, OneDevice, make_strategy
from gru4rec.io import atomic_write
from gru4rec.losses import (
    cross_entropy_over_unique,
    final_activation,
    identity_final_activation,
    loss_masks,
    row_losses,
)
from gru4rec.model import GRU4RecModel
from gru4rec.optim import RowGrad, make_optimizer
from gru4rec.precision import PrecisionPolicy, get_policy
from gru4rec.sampling import NegativeSampler
from gru4rec.session_data import SessionData
from gru4rec.text import plural

SMALL_STEP_N_SAMPLE = 256
FEW_CPUS = 4


def single_threaded_ops_on_cpu(config: Optional[Config] = None) -> bool:
    """Run every op on one thread (intra-op parallelism 1; independent ops still run side by side) when training
    on a CPU with at most ``FEW_CPUS`` cores, or with small steps (``n_sample <= 256``) on any CPU. The trainer's
    ops are small (a mini-batch of rows): splitting each across a thread pool costs more than it saves.

    Measured on the 2-core CPU (AVX-512 machine, ms/step, one thread vs TF's pool): seed configuration 0.25 vs 0.35;
    official RSC15-best 0.90 vs 1.40 (batch 32, 2,048 negatives); batch 128 1.9 vs 2.6; batch 512 with 4,096
    negatives 10.4 vs 10.6; 512 units 11.6 vs 14.1. (On the first, AVX2 machine: seed 0.47-0.59 vs 0.76-0.82.)
    With more cores, large steps keep TF's pool (not measured by this project).

    TensorFlow accepts this only before its runtime starts (the first op), so it is tried at the start of ``train``
    and of the commands; it is skipped when a GPU is visible or ``TF_NUM_INTRAOP_THREADS`` is set. It applies to the
    whole process. Returns whether ops run single-threaded."""
    large_step = config is not None and config.n_sample > SMALL_STEP_N_SAMPLE
    if large_step and (os.cpu_count() or 1) > FEW_CPUS:
        return tf.config.threading.get_intra_op_parallelism_threads() == 1
    if os.environ.get("TF_NUM_INTRAOP_THREADS"):
        return os.environ["TF_NUM_INTRAOP_THREADS"] == "1"
    if tf.config.threading.get_intra_op_parallelism_threads() == 1:
        return True
    try:
        if tf.config.list_physical_devices("GPU"):
            return False
        tf.config.threading.set_intra_op_parallelism_threads(1)
        return True
    except RuntimeError:  # the runtime has started already; keep its setting
        return False


def cpu_threads_line(single_threaded: bool) -> str:
    """One line for a notebook's set-up: how TensorFlow runs the ops on a CPU (:func:`single_threaded_ops_on_cpu`)."""
    if single_threaded:
        return "CPU ops: one thread per op (small ops, few cores: as the command line runs them)"
    return "CPU ops: TensorFlow's thread pool"


class TrainingError(RuntimeError):
    """Training stopped (a NaN loss); the message says where and which checkpoint is the last good one."""


# ----------------------------------------------------------------------------------------------- epoch arrays
@dataclass
class EpochPlan:
    """An epoch's arrays after the trainer's adjustments, padded to whole chunks."""

    inputs: np.ndarray  # (padded_steps, B) int32
    targets: np.ndarray
    resets: np.ndarray  # bool
    valid: np.ndarray  # bool
    n_steps: int  # real steps
    n_events: int  # valid (input, target) pairs actually trained on


def check_training_data(data: SessionData, config: Config) -> None:
    """Clear errors for data the trainer cannot use."""
    if data.n_sessions == 0 or data.n_pairs == 0:
        raise ValueError("training data is empty: no session with at least two events")
    if config.n_sample == 0 and data.n_sessions < 2:
        raise ValueError(
            "training data has a single session and n_sample=0: the in-batch negatives need at least two sessions; "
            "use n_sample >= 1"
        )
    if config.batch_size > data.n_sessions:
        raise ValueError(
            f"batch_size {config.batch_size} is larger than the number of training sessions ({data.n_sessions}); "
            f"use batch_size <= {data.n_sessions}"
        )
    if config.bptt_steps > 1:
        # a window longer than an epoch never completes an update (and its unrolled graph takes minutes to build)
        lower_bound = max(-(-data.n_pairs // config.batch_size), 1)
        if config.bptt_steps > lower_bound or config.n_sample == 0:
            n_steps = plan_epoch(data, config, 0, chunk=1).n_steps
            if config.bptt_steps > n_steps:
                raise ValueError(
                    f"bptt_steps {config.bptt_steps} is longer than an epoch ({n_steps} mini-batch steps with "
                    f"batch_size {config.batch_size}); use bptt_steps <= {n_steps}"
                )


def plan_epoch(data: SessionData, config: Config, epoch: int, chunk: int) -> EpochPlan:
    """Session-parallel batches of one epoch (``gru4rec.batching``), adjusted for training (module docstring)."""
    eb = epoch_batches(data, config.batch_size, shuffle=config.shuffle, seed=config.seed + epoch,
                       order=config.session_order, end=config.epoch_end)  # fmt: skip
    inputs, targets, resets, valid = eb.inputs, eb.targets, eb.resets, eb.valid
    n_valid = valid.sum(axis=1)
    n_steps = len(n_valid)
    if config.n_sample == 0:
        short = np.flatnonzero(n_valid < 2)
        if len(short):
            n_steps = int(short[0])
    if n_steps == 0:
        raise ValueError("training data gives no step with two or more sessions side by side; use n_sample >= 1")
    inputs, targets = inputs[:n_steps].copy(), targets[:n_steps].copy()
    resets, valid = resets[:n_steps].copy(), valid[:n_steps].copy()
    first_valid = valid.argmax(axis=1)
    rows = np.arange(n_steps)
    inputs = np.where(valid, inputs, inputs[rows, first_valid][:, None]).astype(np.int32)
    targets = np.where(valid, targets, targets[rows, first_valid][:, None]).astype(np.int32)
    padded = -(-n_steps // chunk) * chunk
    if padded > n_steps:
        extra = padded - n_steps
        inputs = np.concatenate([inputs, np.repeat(inputs[-1:], extra, axis=0)])
        targets = np.concatenate([targets, np.repeat(targets[-1:], extra, axis=0)])
        resets = np.concatenate([resets, np.zeros((extra, resets.shape[1]), bool)])
        valid = np.concatenate([valid, np.zeros((extra, valid.shape[1]), bool)])
    return EpochPlan(inputs, targets, resets, valid, n_steps, int(valid.sum()))


def truncate_plan(plan: EpochPlan, n_steps: int, chunk: int) -> EpochPlan:
    """The first ``n_steps`` steps of ``plan`` (padded to whole chunks with invalid steps)."""
    padded = -(-n_steps // chunk) * chunk
    valid = plan.valid[:padded].copy()
    valid[n_steps:] = False
    return EpochPlan(plan.inputs[:padded], plan.targets[:padded], plan.resets[:padded], valid, n_steps,
                     int(valid.sum()))  # fmt: skip


# ----------------------------------------------------------------------------------------------- the engine
class Progress(tf.Module):
    """Checkpointed counters: epochs done and mini-batch steps done."""

    def __init__(self):
        super().__init__(name="progress")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.batch_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="batch_step")


class Trainer:
    """Model + optimizer + sampler + the compiled chunk function. ``train()`` wraps it with the run folder."""

    def __init__(
        self,
        config: Config,
        n_items: int,
        item_counts: np.ndarray,
        model: Optional[GRU4RecModel] = None,
        max_steps_per_epoch: Optional[int] = None,
        policy: Optional[PrecisionPolicy] = None,
        parallel: Optional[OneDevice] = None,
    ):
        """``parallel``: the replica layout (``gru4rec.distribute``): :class:`OneDevice` (default) or a
        :class:`DataParallel` over a ``tf.distribute`` strategy, whose scope then holds every variable."""
        self.parallel = parallel or OneDevice()
        with self.parallel.scope():
            self._build(config, n_items, item_counts, model, max_steps_per_epoch, policy)
        self.run_chunk = tf.function(self._run_chunk, autograph=False)

    def _build(self, config, n_items, item_counts, model, max_steps_per_epoch, policy) -> None:
        self.config = config
        # CPU and GPU policies compute alike; on the NPU pass the policy of the opened device (``train`` does).
        self.policy = policy or get_policy(config.precision, "cpu")
        self.model = model or GRU4RecModel(n_items, config)
        self.k = config.bptt_steps
        self.chunk = -(-config.chunk_steps // self.k) * self.k
        self.batch = config.batch_size
        self.n_sample = config.n_sample
        self.final_act = config.final_activation
        self.variables = self.model.sparse_variables + self.model.dense_variables
        self.optimizer = make_optimizer(config, self.variables)
        store = config.sample_store_size
        if max_steps_per_epoch is not None:  # no need to draw more than one epoch's rows at a time
            store = min(store, config.n_sample * max(max_steps_per_epoch, self.chunk))
        self.sampler = NegativeSampler(
            item_counts, config.n_sample, config.sample_alpha, config.seed, store, min_rows=self.chunk
        )
        self.progress = Progress()
        self.logq_table = None  # (n_items,) logq * log(support); cross-entropy only, as the official TF/PyTorch codes
        if config.logq > 0 and config.loss == "cross-entropy":
            counts = np.maximum(np.asarray(item_counts, np.float64), 1.0)
            self.logq_table = tf.constant((config.logq * np.log(counts)).astype(np.float32))
        self._seed_stride = len(config.layers) + 1
        # BP with cross-entropy: the loss on the scores of the distinct items (``losses.cross_entropy_over_unique``),
        # the same value and gradient without expanding the scores to the mini-batch columns. It needs the logQ
        # correction to commute with the final activation (no correction, or an identity activation).
        self._xe_over_unique = config.loss == "cross-entropy" and (
            config.logq == 0 or identity_final_activation(self.final_act)
        )
        # float16 only: a dynamic loss scale (checkpointed); a step whose gradients overflow is skipped.
        self.loss_scale = self.policy.new_loss_scale()
        # weight_averaging > 0: a polynomial-decay average of the weights, moved after every chunk (a departure
        # from the official codes, which evaluate the last weights; gru4rec/averaging.py).
        self.average = WeightAverage(self.model, config.weight_averaging) if config.weight_averaging > 0 else None

    @property
    def inference_model(self) -> GRU4RecModel:
        """The weights to evaluate and export: the average with ``weight_averaging`` > 0, else the model itself."""
        return self.model if self.average is None else self.average.model

    def checkpoint(self) -> tf.train.Checkpoint:
        parts = dict(model=self.model, optimizer=self.optimizer, sampler=self.sampler.state, progress=self.progress)
        if self.loss_scale is not None:
            parts["loss_scale"] = self.loss_scale
        if self.average is not None:
            parts["average"] = self.average.checkpoint()
        return tf.train.Checkpoint(**parts)

    def distribute_info(self) -> dict:
        """The data-parallel set-up for ``config.json`` (``{"strategy": "none"}`` on one device)."""
        return self.parallel.info(self.chunk // self.k)

    # -------------------------------------------------------------------------------------------- in-graph
    def _window(self, x, y, keep, masks, smp, seeds, hyper, state):
        """One update over a window of k steps: x, y (k, B) items; keep (k, B, 1) 0 where a lane starts a session;
        masks: row_mask (k, B), col_mask and col_bias (k, M); smp (k, n_sample); seeds (k, 2); hyper: this update's
        optimizer scalars. Returns the new state and the k steps' loss sums.

        The item rows a window touches are gathered once, by unique index (``tf.unique`` keeps first-occurrence
        order, so with the targets first, the first ``n_out`` unique rows are the output candidates). Their gradients
        then come out already summed per item: with ``k == 1`` the scores are computed against the unique rows and
        expanded to the mini-batch columns by a column gather, so no (M, H) gradient has to be segment-summed; with
        cross-entropy not even that gather is needed (``losses.cross_entropy_over_unique``).
        """
        cfg, model, policy = self.config, self.model, self.policy
        k, batch = self.k, self.batch
        n_cols = batch + self.n_sample
        row_mask, col_mask, col_bias = masks
        if k > 1:
            n_real = tf.reduce_sum(tf.reduce_max(row_mask, axis=1))  # steps with a valid lane (all replicas)
        # x, y and the samples are the whole mini-batch on every replica (the item rows and the in-batch negatives
        # are the same everywhere); the forward pass runs on this replica's lanes only.
        keep, row_mask = self.parallel.lanes(keep), self.parallel.lanes(row_mask)
        col_mask, col_bias = self.parallel.columns(col_mask), self.parallel.columns(col_bias)
        ycols = tf.concat([y, smp], axis=1)  # (k, M)
        flat_y = tf.reshape(ycols, [-1])
        flat_x = tf.reshape(x, [-1])
        shared = model.embedding_mode == "shared"
        if shared:
            # One table of unique rows serves as input embeddings and output weights; the bias is gathered for all
            # of them (no dynamic slice: its gradient is slow), but only the output rows' part is updated.
            uniq, seg = tf.unique(tf.concat([flat_y, flat_x], axis=0))
            n_out = tf.reduce_max(seg[: k * n_cols]) + 1
            seg_y = self.parallel.columns(tf.reshape(seg[: k * n_cols], [k, n_cols]))
            seg_x = self.parallel.lanes(tf.reshape(seg[k * n_cols :], [k, batch]))
            table = tf.gather(model.Wy, uniq)
            bias = tf.gather(model.By, uniq)
            sources = [table, bias]
            sparse_rows = [(uniq, table), (uniq, bias)]
            in_table = out_table = table
        else:
            out_idx, seg_y = tf.unique(flat_y)
            in_idx, seg_x = tf.unique(flat_x)
            seg_y = self.parallel.columns(tf.reshape(seg_y, [k, n_cols]))
            seg_x = self.parallel.lanes(tf.reshape(seg_x, [k, batch]))
            out_table = tf.gather(model.Wy, out_idx)
            bias = tf.gather(model.By, out_idx)
            in_table = tf.gather(model.input_table, in_idx)
            sources = [out_table, bias, in_table]
            sparse_rows = [(out_idx, out_table), (out_idx, bias), (in_idx, in_table)]
        adjust = None
        if self.logq_table is not None:
            adjust = self.parallel.columns(tf.concat(
                [tf.gather(self.logq_table, y), cfg.sample_alpha * tf.gather(self.logq_table, smp)], axis=1
            ))  # fmt: skip
        dense = model.dense_variables
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(sources + dense)
            # Mixed precision: the gathered float32 rows are cast to the compute dtype here (their gradients
            # stay float32 rows), the GRU casts its weights at use and keeps a float32 state, and the scores go
            # back to float32 before the final activation and the loss.
            c_in, c_out, c_bias = policy.cast(in_table), policy.cast(out_table), policy.cast(bias)
            h = list(state)
            total = 0.0
            sums = []
            for i in range(k):
                h = [hl * keep[i] for hl in h]
                x_rows = tf.gather(c_in, seg_x[i])
                hidden, h = model.stack(x_rows, h, training=True, seed=seeds[i])
                hidden = policy.cast(hidden)
                adjust_i = None if adjust is None else adjust[i]
                if k == 1:
                    unique_scores = tf.nn.bias_add(tf.matmul(hidden, c_out, transpose_b=True), c_bias)
                if k == 1 and self._xe_over_unique:
                    unique_scores = policy.to_float32(unique_scores)
                    if adjust_i is None:
                        unique_scores = final_activation(unique_scores, self.final_act)
                    lanes = cross_entropy_over_unique(unique_scores, seg_y[i], row_mask[i], col_mask[i], adjust_i)
                else:
                    if k == 1:
                        scores = tf.gather(unique_scores, seg_y[i], axis=1)
                    else:
                        rows_i = tf.gather(c_out, seg_y[i])
                        scores = tf.nn.bias_add(
                            tf.matmul(hidden, rows_i, transpose_b=True), tf.gather(c_bias, seg_y[i])
                        )
                    lanes = row_losses(
                        policy.to_float32(scores), None, cfg.loss, self.final_act, cfg.bpreg, adjust_i,
                        masks=(row_mask[i], col_mask[i], col_bias[i]),
                    )  # fmt: skip
                step_sum = tf.reduce_sum(lanes)
                total = total + step_sum
                sums.append(step_sum)
            if k == 1:
                loss = total / batch
            else:
                loss = total / (batch * tf.maximum(n_real, 1.0))
            if self.loss_scale is not None:
                loss = self.loss_scale.scale_loss(loss)
        grads = tape.gradient(loss, sources + dense)
        # Gradients of gathered tables arrive as IndexedSlices over the unique rows; sum them into (n_unique, d).
        grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        grads = [tf.zeros_like(src) if g is None else g for src, g in zip(sources + dense, grads)]
        grads = self.parallel.all_reduce(grads, max_rows=k * (n_cols + batch))  # bound on the unique rows
        if self.loss_scale is None:
            self._apply(grads, shared, uniq if shared else None, n_out if shared else None, sparse_rows, hyper)
        else:
            # Unscale, skip the update when a gradient is not finite (the optimizer step does not advance), adapt
            # the scale. The hyperparameters are those of the optimizer's current step (skips shift the schedule).
            hyper = self.optimizer.hyperparameters(tf.reshape(self.optimizer.step.read_value(), [1]))[0]
            self.loss_scale.apply_gradients(
                grads, lambda g: self._apply(g, shared, uniq if shared else None, n_out if shared else None,
                                             sparse_rows, hyper)
            )  # fmt: skip
        return h, tf.stack(sums) if k > 1 else tf.reshape(sums[0], [1])

    def _apply(self, grads, shared, uniq, n_out, sparse_rows, hyper):
        """The optimizer update from the window's gradients (sources then dense variables)."""
        if shared:
            table, bias = sparse_rows[0][1], sparse_rows[1][1]
            sparse = [RowGrad(uniq, grads[0], table), RowGrad(uniq[:n_out], grads[1][:n_out], bias[:n_out])]
            dense_grads = grads[2:]
        else:
            sparse = [RowGrad(idx, g, rows) for (idx, rows), g in zip(sparse_rows, grads[:3])]
            dense_grads = grads[3:]
        self.optimizer.apply(sparse + list(dense_grads), hyper=hyper)

    def update_window(self, x, y, resets, valid, samples, state):
        """One update on one window of k steps, outside the chunk loop (for tests and notebooks): x, y, resets,
        valid (k, B); samples (k, n_sample). Returns the new state and the steps' loss sums."""
        k = self.k
        updates = tf.reshape(self.optimizer.step.read_value(), [1])
        hyper = self.optimizer.hyperparameters(updates)[0]
        counters = (updates * k + tf.range(k, dtype=tf.int64)) * self._seed_stride
        seeds = tf.stack([tf.fill([k], tf.constant(self.config.seed, tf.int64)), counters], axis=-1)
        keep = (1.0 - tf.cast(resets, tf.float32))[..., tf.newaxis]
        masks = loss_masks(valid, self.n_sample)
        return self._window(x, y, keep, masks, samples, seeds, hyper, state)

    def _chunk_inputs(self, resets, valid):
        """Per-step tensors computed once per chunk, outside the step loop (fewer ops per step)."""
        cfg, k, batch = self.config, self.k, self.batch
        n_win = self.chunk // k
        step0 = self.optimizer.step.read_value()
        updates = step0 + tf.range(n_win, dtype=tf.int64)
        hyper = self.optimizer.hyperparameters(updates)  # (n_win, h)
        counters = (updates[:, tf.newaxis] * k + tf.range(k, dtype=tf.int64)[tf.newaxis, :]) * self._seed_stride
        seeds = tf.stack([tf.fill(tf.shape(counters), tf.constant(cfg.seed, tf.int64)), counters], axis=-1)
        keep = tf.reshape(1.0 - tf.cast(resets, tf.float32), [n_win, k, batch, 1])
        row_mask, col_mask, col_bias = loss_masks(tf.reshape(valid, [n_win, k, batch]), self.n_sample)
        return hyper, seeds, keep, (row_mask, col_mask, col_bias)

    def _run_chunk(self, inputs, targets, resets, valid, samples, n_windows, state):
        """Run ``n_windows`` windows of a chunk; inputs... (chunk, B); samples (chunk, n_sample).
        Returns the state and the loss sum (over valid lanes) of every step run.

        Each window's inputs are packed into one int32 and one float32 tensor per chunk and picked with a single
        ``gather`` per window (a dynamic slice costs four ops per tensor inside the loop)."""
        k, batch, n_sample = self.k, self.batch, self.n_sample
        n_win = self.chunk // k
        hyper, seeds, keep, (row_mask, col_mask, col_bias) = self._chunk_inputs(resets, valid)
        items = tf.reshape(tf.concat([inputs, targets, samples], axis=1), [n_win, k, 2 * batch + n_sample])
        floats = tf.concat([keep[..., 0], row_mask, col_mask, col_bias], axis=-1)  # (n_win, k, 2B + 2M)
        losses = tf.TensorArray(tf.float32, size=n_windows, element_shape=[k])

        def one_window(w, losses, state):
            window = (tf.gather(items, w), tf.gather(floats, w), tf.gather(seeds, w), tf.gather(hyper, w), state)
            state, step_sums = self.parallel.run(self._packed_window, window)
            return w + 1, losses.write(w, self.parallel.local(step_sums)), list(state)

        # An explicit loop (the function is traced without AutoGraph), one window at a time: collectives inside
        # the loop must run in the same order on every replica.
        _, losses, state = tf.while_loop(
            lambda w, losses, state: w < n_windows, one_window, (tf.constant(0, tf.int32), losses, list(state)),
            parallel_iterations=1, maximum_iterations=n_windows,
        )  # fmt: skip
        return state, tf.reshape(losses.stack(), [-1])

    def _packed_window(self, items, floats, seeds, hyper, state):
        """One window from its packed inputs (items (k, 2B + n_sample) int32, floats (k, 2B + 2M)); on every
        replica under a strategy. Returns the state and the steps' loss sums over all replicas' lanes."""
        batch, n_sample = self.batch, self.n_sample
        n_cols = batch + n_sample
        x, y, smp = tf.split(items, [batch, batch, n_sample], axis=1)
        keep_w, rows_w, cols_w, bias_w = tf.split(floats, [batch, batch, n_cols, n_cols], axis=1)
        state, step_sums = self._window(
            x, y, keep_w[..., tf.newaxis], (rows_w, cols_w, bias_w), smp, seeds, hyper, list(state)
        )
        return state, self.parallel.all_reduce([step_sums])[0]

    # -------------------------------------------------------------------------------------------- host side
    def lr_at_update(self, update: int) -> float:
        cfg = self.config
        if cfg.decay == 1.0:
            return float(cfg.learning_rate)
        return max(cfg.lr_floor, cfg.learning_rate * cfg.decay ** (update // cfg.decay_steps))

    def _initial_state(self) -> list:
        return self.parallel.initial_state(self.model.layer_sizes, self.batch)

    def _ran_on(self, state) -> str:
        return self.parallel.ran_on(state)

    def run_epoch(
        self, data: SessionData, epoch: int, on_chunk: Optional[Callable] = None, max_steps: Optional[int] = None
    ) -> dict:
        """Train one epoch. ``on_chunk(first_step, step_losses, seconds)`` after every chunk (host-side logging).
        ``max_steps``: stop after that many mini-batch steps (the epoch is cut short). The returned ``seconds`` is the
        epoch's wall time from the batch plan on; ``in_graph_seconds`` the part spent in the chunk calls."""
        t_start = time.perf_counter()
        plan = plan_epoch(data, self.config, epoch, self.chunk)
        if max_steps is not None and max_steps < plan.n_steps:
            plan = truncate_plan(plan, max(int(max_steps), 1), self.chunk)
        state = self._initial_state()
        losses = np.zeros(plan.n_steps, np.float64)
        in_graph = 0.0  # wall time inside the chunk calls (the rest: sampler, host arrays, logging callbacks)
        for lo in range(0, plan.n_steps, self.chunk):
            t0 = time.perf_counter()
            hi = min(lo + self.chunk, plan.n_steps)
            n_real = hi - lo
            samples = self.sampler.take(n_real)  # one row per real step: chunking does not change the samples
            if n_real < self.chunk:
                samples = tf.gather(samples, np.minimum(np.arange(self.chunk), n_real - 1))
            sl = slice(lo, lo + self.chunk)
            chunk_args = [tf.constant(a[sl]) for a in (plan.inputs, plan.targets, plan.resets, plan.valid)]
            t_graph = time.perf_counter()
            state, chunk_losses = self.run_chunk(
                *chunk_args, samples, tf.constant(-(-n_real // self.k), tf.int32), state
            )
            if self.average is not None:
                self.average.update()
            chunk_losses = chunk_losses.numpy()
            in_graph += time.perf_counter() - t_graph
            n_valid = plan.valid[lo:hi].sum(axis=1)
            chunk_losses = chunk_losses[:n_real] / np.maximum(n_valid, 1)  # mean over the step's lanes
            self.device = self._ran_on(state)  # where the chunk's ops ran (TF's placement of its output)
            losses[lo:hi] = chunk_losses
            seconds = time.perf_counter() - t0
            if on_chunk is not None:
                on_chunk(lo, chunk_losses, seconds)
            if not np.all(np.isfinite(chunk_losses)):
                bad = lo + int(np.flatnonzero(~np.isfinite(chunk_losses))[0])
                return {"nan_step_in_epoch": bad, "n_steps": plan.n_steps, "losses": losses[: bad + 1]}
        wall = time.perf_counter() - t_start
        return {
            "n_steps": plan.n_steps,
            "n_events": plan.n_events,
            "n_updates": -(-plan.n_steps // self.k),
            "loss": float(losses.mean()),
            "losses": losses,
            "seconds": wall,
            "in_graph_seconds": in_graph,  # the chunk calls; ``seconds - in_graph_seconds`` is the host's share
        }


# ----------------------------------------------------------------------------------------------- the run folder
class Callback:
    """Hooks called by :func:`train` (override what you need). A plain function given as a callback is used as
    ``on_log``."""

    def on_log(self, record: dict) -> None:
        """Every ``log_every`` steps and at step 1: ``epoch, step, lr, loss, step_time, ...`` (see ``train.jsonl``)."""

    def on_epoch_end(self, record: dict) -> None:
        """After an epoch's checkpoint is written: ``epoch, loss, seconds, events_per_s, ...`` (+ validation)."""

    def on_train_end(self, result: TrainResult) -> None:
        """After the last epoch."""


class _FunctionCallback(Callback):
    def __init__(self, fn: Callable[[dict], Any]):
        self.fn = fn

    def on_log(self, record: dict) -> None:
        self.fn(record)


@dataclass
class TrainResult:
    run_dir: Path
    config: Config
    model: GRU4RecModel
    item_map: Any
    epochs_done: int
    steps: int  # mini-batch steps done (all epochs)
    updates: int  # optimizer updates done
    epoch_losses: list  # mean step loss of each epoch trained in this call
    events_per_s: float  # training events per second over this call (checkpointing and validation excluded)
    seconds: float
    history: list = field(default_factory=list)  # the epoch records
    device: str = ""
    metrics: Optional[dict] = None
    last_model: Optional[GRU4RecModel] = None  # the last update's weights (``model`` is their average when averaging)


def _scalar_metadata():
    """Summary metadata of a TensorBoard scalar (what ``tensorboard.summary.scalar`` writes), built from TF's own
    protos so that writing the event files does not need the ``tensorboard`` package installed."""
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    metadata.data_class = summary_pb2.DATA_CLASS_SCALAR
    return metadata


def write_scalar(name: str, value: float, step: int) -> None:
    """One TensorBoard scalar into the default ``tf.summary`` writer."""
    tf.summary.write(name, tf.constant(float(value), tf.float32), step=step, metadata=_scalar_metadata())


def _versions() -> dict:
    return {"python": sys.version.split()[0], "tensorflow": tf.__version__, "numpy": np.__version__,
            "platform": platform.platform()}  # fmt: skip


def _evaluate_valid(model: GRU4RecModel, data: SessionData, item_support) -> Optional[dict]:
    """Recall@20 / MRR@20 on validation data with ``gru4rec.evaluate`` (None when it cannot run)."""
    from gru4rec.evaluate import GRU4RecScorer, evaluate, metrics_only

    scorer = GRU4RecScorer(model, item_map=data.item_map, item_support=item_support)
    return metrics_only(evaluate(scorer, data, cutoffs=(20,)))


def train(
    config: Config,
    train_data: SessionData,
    out_dir,
    valid_data: Optional[SessionData] = None,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
    max_steps: Optional[int] = None,
    replace: bool = False,
) -> TrainResult:
    """Train GRU4Rec on ``train_data`` into the run folder ``out_dir``; see the module docstring.

    The folder gets ``config.json``, ``items.tsv`` (+ ``item_support.npy``), ``checkpoints/`` (one per epoch:
    model, optimizer, sampler position, counters), ``train.log`` (the seed's format), ``train.jsonl`` and
    ``tensorboard/``. ``resume=True`` continues from the latest checkpoint of ``out_dir`` (same config required,
    except ``n_epochs``) and ends with the same weights as an uninterrupted run. ``valid_data`` (indexed with the
    training item map) is evaluated after every epoch (Recall@20, MRR@20). A NaN loss raises
    :class:`TrainingError` naming the step; the checkpoints of the epochs before it are kept.

    ``config.device`` (auto/cpu/gpu/npu, ``gru4rec.devices``: an absent device raises ``DeviceUnavailableError``,
    never a fallback), ``config.precision`` (``gru4rec.precision``) and ``config.distribute``
    (none/mirrored/multiworker, ``gru4rec.distribute``) say where and how it runs; ``config.json`` records the
    device the training function's output was placed on, the environment and the precision policy.
    ``max_steps`` stops training after that many mini-batch steps in all (short timed runs); the epoch it falls in
    is cut short and still checkpointed.

    The run folder (``gru4rec.run_folder``) is locked for the whole call (another writer gets a
    ``RunFolderError``); ``replace=True`` moves an existing run aside into ``replaced-<time>/`` instead of refusing,
    once the folder, the device and the distribution have been checked. A new run refuses a folder holding a run's
    files without ``config.json``, and any of the run's entries that is a symbolic link. A resume finds the
    checkpoints from their files, refuses other training data (``config.json`` holds its fingerprint) or an
    ``items.tsv`` / ``item_support.npy`` that no longer match it, and cuts the logs back to the checkpointed step.
    Each epoch's records (``train.jsonl``, TensorBoard) are written before its checkpoint; a resume rewrites
    ``config.json`` only once it has trained an epoch (``gru4rec.run_folder``).
    """
    single_threaded = single_threaded_ops_on_cpu(config)
    run_dir = Path(out_dir)
    check_training_data(train_data, config)
    if valid_data is not None and valid_data.n_items != train_data.n_items:
        raise ValueError("valid_data must use the training item map (SessionData.from_frame(df, item_map=...))")
    if valid_data is not None and valid_data.n_pairs == 0:
        raise ValueError("valid_data: no (item, next item) pair of items in the training data to validate on")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1; got {max_steps}")
    cbs = [cb if isinstance(cb, Callback) else _FunctionCallback(cb) for cb in callbacks]
    folder = _run_folder.RunFolder(run_dir)
    with folder.locked():
        # Everything is checked before the folder is touched: the folder (links, a resume's config and data, a
        # run's files), then the device and the distribution (an absent NPU or a multi-worker set-up without its
        # peers fails here); only then is a replaced run moved aside.
        folder.check_training(config, train_data, resume=resume, replace=replace)
        choice, policy, strategy = _open_device(config)
        if replace and not (resume and folder.holds_run()):
            replaced = folder.set_aside()
            if replaced is not None:
                print(f"moved the previous run in {run_dir} to {replaced}", file=sys.stderr)
        from gru4rec.devices import device_scope, environment_report

        # On one device ops go to the chosen device; under a strategy, the strategy places them on its replicas.
        scope = device_scope(choice) if strategy is None else contextlib.nullcontext()
        with scope:
            return _train_on_device(
                config, train_data, run_dir, valid_data, resume, cbs, progress, choice, policy, single_threaded,
                environment_report(choice), max_steps, strategy,
            )  # fmt: skip


def _open_device(config: Config) -> tuple:
    """The device (``gru4rec.devices.DeviceChoice``), its precision policy and the ``tf.distribute`` strategy (None
    without one) of ``config``; raises before any model is built (the NPU adapter's options apply only then)."""
    from gru4rec.devices import resolve_device
    from gru4rec.precision import npu_precision_mode

    choice = resolve_device(
        config.device,
        precision_mode=npu_precision_mode(config.precision),
        loop_size=-(-config.chunk_steps // config.bptt_steps),
    )
    policy = get_policy(config.precision, choice.kind)
    strategy = None
    if config.distribute != "none":  # before other TF work: MultiWorkerMirroredStrategy configures collectives
        strategy = make_strategy(config.distribute)
    return choice, policy, strategy


def _make_trainer(config: Config, train_data: SessionData, policy: PrecisionPolicy, strategy) -> Trainer:
    """A :class:`Trainer`, or a data-parallel one (``gru4rec.distribute``) under ``strategy``."""
    parallel = None
    if strategy is not None:
        parallel = DataParallel(strategy, config.distribute, config.batch_size, config.n_sample)
    return Trainer(config, train_data.n_items, train_data.item_counts, max_steps_per_epoch=train_data.n_pairs,
                   policy=policy, parallel=parallel)  # fmt: skip


def _train_on_device(config, train_data, run_dir, valid_data, resume, cbs, progress, choice, policy,
                     single_threaded, environment, max_steps=None, strategy=None) -> TrainResult:  # fmt: skip
    """The body of :func:`train`, inside the chosen device's scope."""
    from gru4rec.logs import LogWriter

    folder = _run_folder.RunFolder(run_dir)
    item_support = train_data.item_counts
    trainer = _make_trainer(config, train_data, policy, strategy)
    ckpt = trainer.checkpoint()
    manager = tf.train.CheckpointManager(ckpt, str(folder.checkpoints_dir), max_to_keep=None, checkpoint_name="epoch")
    resumed_from = 0
    if resume:
        point = folder.latest_checkpoint()  # from the files, not from checkpoints/checkpoint
        if point is not None:
            folder.restore(ckpt, point.prefix)
            trainer.sampler.sync()
            resumed_from = int(trainer.progress.epoch.numpy())
            print(f"resuming {run_dir} from {point.prefix} ({plural(resumed_from, 'epoch')}, "
                  f"{int(trainer.progress.batch_step.numpy())} steps done)", file=sys.stderr)  # fmt: skip
        # the steps logged after the checkpoint (before a kill) are logged again: cut them
        folder.cut_logs(int(trainer.progress.batch_step.numpy()), resumed_from)
    meta = {
        "config": config.to_dict(),
        "n_items": int(train_data.n_items),
        "n_train_events": int(train_data.n_events),
        "n_train_sessions": int(train_data.n_sessions),
        "data": _run_folder.data_fingerprint(train_data),
        "versions": _versions(),
        "device": {"ran_on": None, **choice.as_dict(), "single_threaded_ops": single_threaded},
        "environment": environment,
        "precision": policy.as_dict(),
        "distribute": trainer.distribute_info(),
    }
    # A resume from a checkpoint rewrites config.json only once it has trained an epoch (module docstring of
    # gru4rec.run_folder): one with nothing left to train keeps the run's n_epochs and device.ran_on.
    meta_pending = resumed_from > 0
    if not meta_pending:
        folder.write_meta(meta)
    # items.tsv and item_support.npy: a new run writes its own (check_training refused a folder holding stale
    # ones); a resume checked the existing ones against config.json and writes only those missing.
    if not (resume and folder.items_path.exists()):
        train_data.item_map.save(folder.items_path)
    if not (resume and folder.support_path.exists()):
        with atomic_write(folder.support_path, "wb") as handle:
            np.save(handle, item_support)

    append = resumed_from > 0
    log = LogWriter(folder.log_path, append=append, opener=_run_folder.no_follow_opener)
    try:
        jsonl = _run_folder.open_run_log(folder.jsonl_path, append=append)
    except BaseException:
        log.close()
        raise
    writer = tf.summary.create_file_writer(str(folder.tensorboard_dir))
    history: list = []
    epoch_losses: list = []
    train_seconds = 0.0
    train_events = 0
    device = ""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        tqdm = None

    def emit(record: dict) -> None:
        """A step's record: train.jsonl, then the callbacks."""
        jsonl.write(_run_folder.jsonl_line(record))
        for cb in cbs:
            cb.on_log(record)

    try:
        for epoch in range(resumed_from, config.n_epochs):
            base_step = int(trainer.progress.batch_step.numpy())
            if max_steps is not None and base_step >= max_steps:
                break
            base_update = int(trainer.optimizer.step.numpy())
            running = {"sum": 0.0, "n": 0}
            bar = None
            if progress and tqdm is not None:
                bar = tqdm(total=None, desc=f"epoch {epoch + 1}/{config.n_epochs}", unit="step", leave=False)

            def on_chunk(lo, losses, seconds, epoch=epoch, base_step=base_step, base_update=base_update,
                         running=running, bar=bar):  # fmt: skip
                for j, value in enumerate(losses):
                    running["sum"] += float(value)
                    running["n"] += 1
                    step = base_step + lo + j + 1
                    if step == 1 or step % config.log_every == 0:
                        update = base_update + (lo + j) // trainer.k
                        record = {
                            "kind": "log", "epoch": epoch, "step": step, "lr": trainer.lr_at_update(update),
                            "loss": running["sum"] / running["n"], "step_loss": float(value),
                            "step_time": seconds / len(losses),
                        }  # fmt: skip
                        log.write(epoch, step, record["lr"], record["loss"], record["step_time"])
                        with writer.as_default():
                            write_scalar("loss/running_mean", record["loss"], step)
                            write_scalar("loss/step", record["step_loss"], step)
                            write_scalar("lr", record["lr"], step)
                            write_scalar("step_time_ms", 1000 * record["step_time"], step)
                        emit(record)
                if bar is not None:
                    bar.update(len(losses))
                    bar.set_postfix(loss=f"{running['sum'] / max(running['n'], 1):.4f}")

            left = None if max_steps is None else max_steps - base_step
            out = trainer.run_epoch(train_data, epoch, on_chunk, max_steps=left)
            if bar is not None:
                bar.close()
            device = getattr(trainer, "device", "") or device
            if "nan_step_in_epoch" in out:
                step = base_step + out["nan_step_in_epoch"] + 1
                last = folder.latest_checkpoint()
                last = last.prefix if last is not None else None
                where = f"the last good checkpoint is {last}" if last else "no checkpoint was written before it"
                raise TrainingError(f"loss is NaN at step {step} (epoch {epoch}); training stopped; {where}")
            trainer.progress.batch_step.assign_add(out["n_steps"])
            trainer.progress.epoch.assign(epoch + 1)
            train_seconds += out["seconds"]
            train_events += out["n_events"]
            epoch_losses.append(out["loss"])
            record = {
                "kind": "epoch", "epoch": epoch, "epochs_done": epoch + 1, "loss": out["loss"],
                "steps": out["n_steps"], "events": out["n_events"], "seconds": out["seconds"],
                "events_per_s": out["n_events"] / out["seconds"], "ms_per_step": 1000 * out["seconds"] / out["n_steps"],
                "checkpoint": folder.checkpoint_prefix(epoch + 1),
            }  # fmt: skip
            if valid_data is not None:
                valid = _evaluate_valid(trainer.inference_model, valid_data, item_support)
                if valid is not None:
                    record["valid_recall@20"] = valid["recall@20"]
                    record["valid_mrr@20"] = valid["mrr@20"]
            # The epoch's records go out BEFORE the checkpoint that marks the epoch done: a kill between the two
            # leaves records that the resume cuts (the epoch is trained again), never a checkpoint without them.
            with writer.as_default():
                write_scalar("epoch/loss", out["loss"], epoch + 1)
                write_scalar("epoch/events_per_s", record["events_per_s"], epoch + 1)
                for key in ("valid_recall@20", "valid_mrr@20"):
                    if key in record:
                        write_scalar(f"epoch/{key}", record[key], epoch + 1)
            writer.flush()
            jsonl.write(_run_folder.jsonl_line(record))
            jsonl.flush()
            log.flush()
            if meta_pending or (device and meta["device"]["ran_on"] != device):
                meta["device"]["ran_on"] = device or None
                folder.write_meta(meta)
                meta_pending = False
            manager.save(checkpoint_number=epoch + 1)
            history.append(record)
            for cb in cbs:
                cb.on_epoch_end(record)
    finally:
        log.close()
        jsonl.close()
        writer.close()
    result = TrainResult(
        run_dir=run_dir,
        config=config,
        model=trainer.inference_model,
        last_model=trainer.model,
        item_map=train_data.item_map,
        epochs_done=int(trainer.progress.epoch.numpy()),
        steps=int(trainer.progress.batch_step.numpy()),
        updates=int(trainer.optimizer.step.numpy()),
        epoch_losses=epoch_losses,
        events_per_s=train_events / train_seconds if train_seconds else math.nan,
        seconds=train_seconds,
        history=history,
        device=device,
    )
    for cb in cbs:
        cb.on_train_end(result)
    return result
