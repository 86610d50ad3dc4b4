"""What notebook 02 (session-parallel batching) computes: the cells padding would waste, the check that an epoch of
session-parallel batches holds every (item, next item) pair exactly once, and what each lane holds at a step.

The batches themselves come from :func:`gru4rec.batching.epoch_batches`; the figures are in
:mod:`gru4rec.plots.batching`.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from gru4rec.batching import EpochBatches, assign_lanes
from gru4rec.session_data import SessionData

__all__ = ["padding_waste", "check_every_pair_once", "lane_state", "steps_since_reset", "cell_labels"]


def _padded_cells(pairs: np.ndarray, batch_size: int) -> int:
    """Cells of mini-batches of ``batch_size`` consecutive sessions, each padded to its longest session."""
    n_batches = -(-len(pairs) // batch_size)
    padded = np.zeros(n_batches * batch_size, dtype=np.int64)
    padded[: len(pairs)] = pairs
    return int(padded.reshape(n_batches, batch_size).max(axis=1).sum() * batch_size)


def padding_waste(session_lengths: np.ndarray, batch_size: int) -> pd.DataFrame:
    """Cells (lane × step) an epoch needs under four batching schemes, for sessions of the given lengths (events).

    A cell is one (input item, target item) slot; a session of length ``n`` holds ``n - 1`` real pairs. Schemes:

    - ``pad every session to the longest``: one rectangle, ``n_sessions`` × the longest session (in batches);
    - ``pad each mini-batch (data order)``: batches of ``batch_size`` consecutive sessions, each padded to its own
      longest session (the usual ``pad_sequence`` approach);
    - ``pad each mini-batch (sorted by length)``: the same after sorting the sessions by length (bucketing; less
      waste, but the batches no longer follow time);
    - ``session-parallel (GRU4Rec)``: lanes replay sessions back to back (:mod:`gru4rec.batching`); no padding at
      all; the only empty cells are the lanes that run out of sessions at the very end of the epoch.

    Returns one row per scheme: ``cells``, ``real_pairs``, ``padding`` (empty cells *inside* the data) and
    ``idle_tail`` (empty lanes after the last session started; session-parallel only), ``wasted_share``.
    """
    lengths = np.asarray(session_lengths, dtype=np.int64)
    if len(lengths) == 0 or lengths.min() < 2:
        raise ValueError("padding_waste needs sessions of length >= 2 (each holds length - 1 pairs)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pairs = lengths - 1
    real = int(pairs.sum())
    n_batches = -(-len(pairs) // batch_size)
    lane, start = assign_lanes(pairs, batch_size)
    n_steps = int((start + pairs).max())
    # the session-parallel epoch has no padding; its empty cells are the idle lanes of the tail
    schemes = [
        ("pad every session to the longest", int(n_batches * batch_size * pairs.max()), 0),
        ("pad each mini-batch (data order)", _padded_cells(pairs, batch_size), 0),
        ("pad each mini-batch (sorted by length)", _padded_cells(np.sort(pairs)[::-1], batch_size), 0),
        ("session-parallel (GRU4Rec)", n_steps * batch_size, n_steps * batch_size - real),
    ]
    rows = []
    for name, cells, idle in schemes:
        rows.append(
            {
                "scheme": name,
                "cells": cells,
                "real_pairs": real,
                "padding": cells - real - idle,
                "idle_tail": idle,
                "wasted_share": (cells - real) / cells,
            }
        )
    return pd.DataFrame(rows)


def steps_since_reset(resets: np.ndarray) -> np.ndarray:
    """(steps, lanes) int64: how many steps ago the lane's current session started (0 at its reset; -1 before the
    lane's first reset). This is also the pair's position inside its session."""
    resets = np.asarray(resets, dtype=bool)
    steps = np.arange(resets.shape[0])[:, None]
    last = np.maximum.accumulate(np.where(resets, steps, -1), axis=0)
    return np.where(last >= 0, steps - last, -1)


def check_every_pair_once(data: SessionData, batches: EpochBatches) -> dict:
    """Check an epoch of session-parallel batches against the data it was built from.

    Returns a dict of plain values: ``n_pairs_expected`` (sum of session length - 1), ``n_pairs_in_batches`` (valid
    cells), ``counts_match`` (every session has exactly its number of pairs), ``pairs_match`` (each valid cell's
    input and target are the data's k-th and (k+1)-th click of that session, for k = 0, 1, ...), ``contiguous``
    (a session stays in one lane on consecutive steps, so the hidden state can be carried), ``resets_match``
    (a reset exactly where, and only where, a session starts), and ``every_pair_once`` (all of these).
    """
    valid = np.asarray(batches.valid, dtype=bool)
    steps, lanes = np.nonzero(valid)
    session = batches.session_index[steps, lanes]
    expected = int(data.n_pairs)
    result = {"n_pairs_expected": expected, "n_pairs_in_batches": int(valid.sum())}
    if np.any(session < 0) or np.any(session >= data.n_sessions):
        result.update(counts_match=False, pairs_match=False, contiguous=False, resets_match=False)
        result["every_pair_once"] = False
        return result
    order = np.lexsort((steps, session))
    steps, lanes, session = steps[order], lanes[order], session[order]
    n_pairs = data.session_lengths - 1
    counts_match = bool(np.array_equal(np.bincount(session, minlength=data.n_sessions), n_pairs))
    first = np.r_[True, session[1:] != session[:-1]] if len(session) else np.zeros(0, dtype=bool)
    index = np.arange(len(session))
    position = index - np.maximum.accumulate(np.where(first, index, 0))
    pairs_match = False
    if counts_match:
        event = data.offsets[session] + position
        pairs_match = bool(
            np.array_equal(batches.inputs[steps, lanes], data.items[event])
            and np.array_equal(batches.targets[steps, lanes], data.items[event + 1])
        )
    later = ~first
    contiguous = bool(
        np.all(lanes[later] == lanes[np.flatnonzero(later) - 1])
        and np.all(steps[later] == steps[np.flatnonzero(later) - 1] + 1)
    )
    expected_resets = np.zeros_like(valid)
    expected_resets[steps[first], lanes[first]] = True
    resets_match = bool(np.array_equal(np.asarray(batches.resets, dtype=bool), expected_resets))
    result.update(counts_match=counts_match, pairs_match=pairs_match, contiguous=contiguous, resets_match=resets_match)
    result["every_pair_once"] = bool(
        counts_match and pairs_match and contiguous and resets_match and result["n_pairs_in_batches"] == expected
    )
    return result


def lane_state(batches: EpochBatches, data: SessionData, step: int, lanes: Optional[int] = None) -> pd.DataFrame:
    """What every lane does at ``step``: one row per lane with ``lane``, ``SessionId``, ``pair`` (the pair's position
    in its session, 0 = first click → second click), ``input_item`` and ``target_item`` (original ItemIds),
    ``reset`` (the lane's hidden state is zeroed before this step) and ``valid`` (False: the lane is idle)."""
    if not 0 <= step < batches.n_steps:
        raise ValueError(f"step must be in 0 .. {batches.n_steps - 1}, got {step}")
    n_lanes = batches.batch_size if lanes is None else min(int(lanes), batches.batch_size)
    resets = np.asarray(batches.resets[: step + 1, :n_lanes], dtype=bool)
    position = steps_since_reset(resets)[-1]
    valid = np.asarray(batches.valid[step, :n_lanes], dtype=bool)
    session = batches.session_index[step, :n_lanes]
    ids = data.item_map.ids
    return pd.DataFrame(
        {
            "lane": np.arange(n_lanes),
            "SessionId": np.where(valid, data.session_ids[np.maximum(session, 0)], -1),
            "pair": np.where(valid, position, -1),
            "input_item": np.where(valid, ids[batches.inputs[step, :n_lanes]], -1),
            "target_item": np.where(valid, ids[batches.targets[step, :n_lanes]], -1),
            "reset": resets[-1],
            "valid": valid,
        }
    )


def cell_labels(
    batches: EpochBatches, data: SessionData, first_step: int = 0, n_steps: int = 60, lanes: Optional[int] = None
) -> np.ndarray:
    """Hover labels for a window of an epoch, ``(steps in window, lanes)`` strings: ``"SessionId 12, pair 2: 2145… →
    2145…"`` for a busy cell (original ItemIds), ``"idle"`` for an empty one."""
    last = min(first_step + int(n_steps), batches.n_steps)
    n_lanes = batches.batch_size if lanes is None else min(int(lanes), batches.batch_size)
    position = steps_since_reset(batches.resets[:last, :n_lanes])[first_step:last]
    window = (slice(first_step, last), slice(0, n_lanes))
    valid = np.asarray(batches.valid[window], dtype=bool)
    session = np.maximum(batches.session_index[window], 0)
    ids = data.item_map.ids
    labels = np.full(valid.shape, "idle", dtype=object)
    for t, b in zip(*np.nonzero(valid)):
        labels[t, b] = (
            f"SessionId {data.session_ids[session[t, b]]}, pair {position[t, b]}: "
            f"{ids[batches.inputs[window][t, b]]} → {ids[batches.targets[window][t, b]]}"
        )
    return labels
