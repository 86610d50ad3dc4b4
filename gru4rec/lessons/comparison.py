"""What notebook 05 (GPU / NPU comparison) computes: the seed's published training logs, summaries of any log in the
seed's format (the kit's own ``train.log`` included), and a training set cut to the seed's epoch length.

The seed (the Ascend ModelZoo port GRU4Rec_for_TensorFlow) published one training log on a Tesla V100-SXM2-32GB and
one on an Ascend 910 (``data/seed_logs``, see ``SOURCE.md`` there); :mod:`gru4rec.logs` parses them. The figures are
in :mod:`gru4rec.plots.comparison`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
import pandas as pd

from gru4rec.batching import assign_lanes
from gru4rec.logs import read_log
from gru4rec.session_data import SessionData

__all__ = [
    "PUBLISHED_DEVICES",
    "published_logs",
    "summarize_log",
    "epoch_steps",
    "first_sessions",
    "sessions_for_steps",
    "pairs_in_order",
]

PathLike = Union[str, "os.PathLike[str]"]

#: The seed's two published runs: log name -> the device it ran on (as the seed's README names it).
PUBLISHED_DEVICES = {"v100": "Tesla V100-SXM2-32GB", "ascend910": "Ascend 910"}


def published_logs(data_dir: Optional[PathLike] = None) -> dict:
    """The seed's published logs as DataFrames (``epoch, step, lr, loss, step_time``), keyed ``v100`` and
    ``ascend910``; ``data_dir`` is the kit's ``data/`` folder (default: the checkout's)."""
    root = Path(data_dir) if data_dir is not None else Path(__file__).resolve().parents[2] / "data"
    return {name: read_log(root / "seed_logs" / f"{name}.log") for name in PUBLISHED_DEVICES}


def summarize_log(frame: pd.DataFrame, batch_size: Optional[int] = None) -> dict:
    """Plain numbers of a seed-format log: ``n_rows``, ``steps``, ``first_step_time`` (the row of the first logged
    step: graph compilation included), ``median_step_time`` / ``p10_step_time`` / ``p90_step_time`` (seconds, the
    other rows), ``first_loss``, ``final_loss``, and with ``batch_size`` ``events_per_s`` = batch_size / median step
    time (every lane busy)."""
    if len(frame) == 0:
        raise ValueError("summarize_log: the log has no records")
    times = frame["step_time"].to_numpy(dtype=np.float64)
    rest = times[1:] if len(times) > 1 else times
    rest = rest[np.isfinite(rest)]
    summary = {
        "n_rows": int(len(frame)),
        "steps": [int(step) for step in frame["step"]],
        "first_step_time": float(times[0]),
        "median_step_time": float(np.median(rest)) if len(rest) else float("nan"),
        "p10_step_time": float(np.percentile(rest, 10)) if len(rest) else float("nan"),
        "p90_step_time": float(np.percentile(rest, 90)) if len(rest) else float("nan"),
        "first_loss": float(frame["loss"].iloc[0]),
        "final_loss": float(frame["loss"].iloc[-1]),
    }
    if batch_size is not None:
        median = summary["median_step_time"]
        summary["events_per_s"] = float(batch_size / median) if median > 0 else float("nan")
    return summary


def epoch_steps(pairs_per_session: np.ndarray, batch_size: int, n_sample: int = 0,
                end: str = "all_sessions") -> int:  # fmt: skip
    """Mini-batch steps of one training epoch over sessions with these pair counts (length - 1), in this order.

    Session-parallel lanes stay busy from step 0 until their last session ends, so the number of busy lanes at step
    ``t`` is the number of lanes whose last session ends after ``t``. The epoch runs until the last lane ends, except
    that with ``n_sample == 0`` (negatives = the other lanes' targets) the trainer stops at the first step with fewer
    than two busy lanes, i.e. at the second-latest lane end (``gru4rec.train.plan_epoch``). With
    ``end="first_unfilled_lane"`` (the seed's loop, ``Config.epoch_end``) it stops at the earliest lane end.
    """
    pairs = np.asarray(pairs_per_session, dtype=np.int64)
    if len(pairs) == 0:
        return 0
    lane, start = assign_lanes(pairs, batch_size)
    lane_end = np.zeros(batch_size, dtype=np.int64)
    np.maximum.at(lane_end, lane, start + pairs)
    if end == "first_unfilled_lane":
        return int(lane_end.min())
    if n_sample > 0 or batch_size < 2:
        return int(lane_end.max())
    return int(np.sort(lane_end)[-2])


def pairs_in_order(data: SessionData, order: str = "time") -> np.ndarray:
    """Pairs per session (length - 1) in the order the sessions enter the lanes (``Config.session_order``)."""
    pairs = data.session_lengths - 1
    return pairs[np.argsort(data.session_ids, kind="stable")] if order == "session_id" else pairs


def first_sessions(data: SessionData, n_sessions: int) -> SessionData:
    """The first ``n_sessions`` sessions of ``data`` (in data order, i.e. by start time), same item map."""
    n = max(0, min(int(n_sessions), data.n_sessions))
    end = int(data.offsets[n])
    return dataclasses.replace(
        data,
        items=data.items[:end],
        times=data.times[:end],
        offsets=data.offsets[: n + 1],
        session_ids=data.session_ids[:n],
    )


def sessions_for_steps(data: SessionData, steps: int, batch_size: int, n_sample: int = 0, order: str = "time",
                       end: str = "all_sessions") -> SessionData:  # fmt: skip
    """The shortest prefix of ``data``'s sessions whose training epoch has at least ``steps`` steps (see
    :func:`epoch_steps`; ``order`` and ``end`` as ``Config.session_order`` / ``Config.epoch_end``); all of ``data``
    when even that is shorter. The seed trained on a slice of RSC15 with about 3,000 steps of batch 50 per epoch; this
    cuts the kit's data to the same epoch length."""

    def length(n: int) -> int:
        return epoch_steps(pairs_in_order(first_sessions(data, n), order), batch_size, n_sample, end)

    if length(data.n_sessions) <= steps:
        return data
    lo, hi = 1, data.n_sessions  # length(hi) > steps; find the smallest n with >= steps
    while lo < hi:
        mid = (lo + hi) // 2
        if length(mid) >= steps:
            hi = mid
        else:
            lo = mid + 1
    return first_sessions(data, lo)
