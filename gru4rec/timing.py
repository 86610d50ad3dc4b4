"""Step-time measurements for the loop-sinking lesson (notebook 03): one graph call per step against one per chunk.

The seed (a TF 1.15 port of GRU4Rec for the Ascend 910) ran one ``sess.run`` per mini-batch step: the host fed a
batch, the device ran one small step, the host fetched the loss. Its published logs show about 4.3 ms/step on a V100
and 19.9 ms/step on the Ascend 910 (:func:`published_step_times`), for a step whose arithmetic takes a fraction of a
millisecond: both devices mostly waited on the host ("host bound"). *Loop sinking* runs many steps per device call.
This kit's trainer (:class:`gru4rec.train.Trainer`) does it with ``chunk_steps``: a ``tf.range`` loop inside one
``tf.function`` call runs a whole chunk of steps; ``chunk_steps=1`` gives back the seed's one-call-per-step loop with
everything else unchanged (same model, optimizer, sampler, data).

:func:`measure_step_time` times the trainer's own host loop (``Trainer.run_epoch``) for a given ``chunk_steps``: the
wall time of each call includes what one call costs the host (building the input tensors, drawing the negatives,
dispatching the function, waiting for the loss). The first call (tracing and compilation) and the last, partial chunk
of an epoch are left out. Ops run on the device and thread pool in effect when it is called (wrap it in
``gru4rec.devices.device_scope``; ``gru4rec.train.single_threaded_ops_on_cpu`` explains the CPU thread setting of
the command line). Timings depend on the machine and on whatever else runs on it; the tests check only the structure
of the results.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from gru4rec.config import Config
from gru4rec.lessons.comparison import PUBLISHED_DEVICES as _LOG_DEVICES
from gru4rec.session_data import SessionData

__all__ = ["measure_step_time", "loop_sinking", "published_step_times", "PUBLISHED_DEVICES"]

PUBLISHED_DEVICES = {name: f"{device} (published)" for name, device in _LOG_DEVICES.items()}
"""The seed logs in ``data/seed_logs`` and the device each was published for."""


class _Enough(Exception):
    """Raised from the chunk callback to stop an epoch once enough steps are timed."""


def measure_step_time(
    config: Config,
    data: SessionData,
    chunk_steps: int,
    n_steps: int = 512,
    warmup_calls: int = 1,
    max_epochs: int = 50,
) -> dict:
    """Train ``config`` on ``data`` with ``chunk_steps`` steps per graph call and time ``n_steps`` steps.

    Args:
        config: the training settings (its ``chunk_steps`` and ``n_epochs`` are replaced).
        data: training sessions (only as many steps as needed are run; epochs are repeated if the data is short).
        chunk_steps: mini-batch steps per ``tf.function`` call (1 = one call per step, as the seed).
        n_steps: steps to time, after the warm-up calls; rounded up to whole calls.
        warmup_calls: calls left out at the start (the first traces and compiles the function).
        max_epochs: stop after this many epochs even if fewer steps were timed (tiny data, huge chunks).

    Returns:
        A dict with ``chunk_steps`` (steps per call as the trainer ran them: rounded up to a multiple of
        ``bptt_steps``), ``n_steps`` and ``n_calls`` timed, ``seconds`` (their wall time), ``ms_per_step``,
        ``events_per_s`` (valid (item, next item) pairs per second), ``ms_per_call`` (one value per timed call),
        ``first_call_ms`` (the first call, with tracing), ``batch_size``, ``bptt_steps``, ``n_sample`` and
        ``device`` (where the ops ran).

    Raises:
        ValueError: ``n_steps`` or ``warmup_calls`` out of range, or no full call could be timed within
            ``max_epochs`` epochs.
    """
    from gru4rec.train import Trainer, plan_epoch

    if int(n_steps) < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    if int(warmup_calls) < 0:
        raise ValueError(f"warmup_calls must be >= 0, got {warmup_calls}")
    config = config.with_overrides(chunk_steps=int(chunk_steps), n_epochs=1)
    trainer = Trainer(config, data.n_items, data.item_counts, max_steps_per_epoch=data.n_pairs)  # as train() does
    chunk = trainer.chunk
    calls: list = []  # (steps, seconds, events) of every full call, in order
    first_call_ms = math.nan
    valid_per_step: Optional[np.ndarray] = None

    def on_chunk(lo: int, losses: np.ndarray, seconds: float) -> None:
        nonlocal first_call_ms
        if math.isnan(first_call_ms):
            first_call_ms = 1000.0 * seconds
        if len(losses) == chunk:  # the last, partial chunk of an epoch is left out
            events = int(valid_per_step[lo : lo + chunk].sum()) if valid_per_step is not None else 0
            calls.append((len(losses), seconds, events))
        if len(calls) - warmup_calls >= -(-int(n_steps) // chunk):
            raise _Enough

    for epoch in range(int(max_epochs)):
        valid_per_step = plan_epoch(data, config, epoch, chunk).valid.sum(axis=1)
        try:
            trainer.run_epoch(data, epoch, on_chunk)
        except _Enough:
            break
    timed = calls[int(warmup_calls) :]
    if not timed:
        raise ValueError(
            f"no full call of {chunk} steps could be timed in {max_epochs} epochs of {data.n_pairs} training pairs "
            f"(batch {config.batch_size}); use a smaller chunk_steps or more data"
        )
    steps = sum(c[0] for c in timed)
    seconds = sum(c[1] for c in timed)
    events = sum(c[2] for c in timed)
    return {
        "chunk_steps": int(chunk),
        "n_steps": int(steps),
        "n_calls": len(timed),
        "seconds": float(seconds),
        "ms_per_step": 1000.0 * seconds / steps,
        "events_per_s": events / seconds if seconds > 0 else math.nan,
        "ms_per_call": [1000.0 * c[1] for c in timed],
        "first_call_ms": float(first_call_ms),
        "batch_size": int(config.batch_size),
        "bptt_steps": int(config.bptt_steps),
        "n_sample": int(config.n_sample),
        "device": str(getattr(trainer, "device", "") or ""),
    }


def loop_sinking(
    config: Config,
    data: SessionData,
    chunk_steps: Sequence[int] = (1, 128),
    n_steps: int = 512,
    warmup_calls: int = 1,
) -> dict:
    """One call per step against one call per chunk: :func:`measure_step_time` for ``chunk_steps[0]`` (normally 1)
    and ``chunk_steps[1]``, on the same config and data.

    Returns ``ms_per_step_one_call_per_step``, ``ms_per_step_chunked``, ``speedup`` (their ratio), ``chunk_steps``
    and the two full measurements under ``one_call_per_step`` and ``chunked``.
    """
    if len(chunk_steps) != 2:
        raise ValueError(f"chunk_steps must be two values (per-step, chunked), got {chunk_steps!r}")
    per_step = measure_step_time(config, data, chunk_steps[0], n_steps=n_steps, warmup_calls=warmup_calls)
    # at least one timed chunked call, even when n_steps is below the chunk
    chunked = measure_step_time(config, data, chunk_steps[1], n_steps=n_steps, warmup_calls=warmup_calls)
    return {
        "ms_per_step_one_call_per_step": per_step["ms_per_step"],
        "ms_per_step_chunked": chunked["ms_per_step"],
        "speedup": per_step["ms_per_step"] / chunked["ms_per_step"],
        "chunk_steps": [per_step["chunk_steps"], chunked["chunk_steps"]],
        "one_call_per_step": per_step,
        "chunked": chunked,
    }


def published_step_times(logs: Optional[Mapping[str, Any]] = None) -> dict:
    """The seed's published step times, from its two training logs (``data/seed_logs``, see ``SOURCE.md`` there).

    For each of ``v100`` and ``ascend910``: ``device`` (the published device name), ``ms_per_step`` (the median of
    the sampled ``Each Step time`` values after step 1, which includes graph compilation), ``first_step_ms``,
    ``batch_size`` (50) and ``n_samples``. ``logs`` maps a name to a parsed log (``gru4rec.logs.read_log``) to use
    other files.
    """
    from gru4rec.logs import read_log, seed_log_path

    out = {}
    for name, device in PUBLISHED_DEVICES.items():
        frame = logs[name] if logs is not None else read_log(seed_log_path(name))
        steady = frame.loc[frame["step"] > 1, "step_time"].dropna()
        first = frame.loc[frame["step"] == 1, "step_time"]
        out[name] = {
            "device": device,
            "ms_per_step": 1000.0 * float(steady.median()),
            "first_step_ms": 1000.0 * float(first.iloc[0]) if len(first) else math.nan,
            "batch_size": 50,
            "n_samples": int(len(steady)),
        }
    return out
