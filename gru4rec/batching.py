"""Session-parallel mini-batches (Hidasi et al. 2016, section 3.1.1), built for a whole epoch at once.

``batch_size`` lanes run side by side. Each lane plays one session at a time: at step ``t`` it feeds the session's
current item and asks for the next one. When a lane's session has no next item left, the next session in order takes
that lane and the lane's hidden state is reset. There is no padding: every (item, next item) pair of every session is
in the epoch exactly once.

Two details, both kept from the official code: sessions are taken in the order of their first event (unless
``shuffle``), and when several lanes free up at the same step, the lower lane index takes the earlier session. At
the end of the epoch the official Theano, TF and PyTorch codes drop the lanes that cannot be refilled from the
mini-batch and play the others on to the end; here the batch keeps its shape and the idle lanes are marked
``valid=False`` (the trainer masks them, with the same update).

Two options give the seed's loop (Songweiping/GRU4Rec_TensorFlow, as the original 2016 Theano code):
``order="session_id"`` takes the sessions in SessionId order (its ``data.sort([SessionId, Time])``) instead of the
order of their first event, and ``end="first_unfilled_lane"`` ends the epoch at the first step at which a lane
frees up with no session left to take it: the sessions still playing in the other lanes are cut there (their
remaining pairs are not in the epoch) and a session that would start at that step is not played at all.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from gru4rec.session_data import SessionData


@dataclass(frozen=True, eq=False)
class EpochBatches:
    """One epoch of session-parallel mini-batches; every array is ``(steps, batch_size)``."""

    inputs: np.ndarray  # (steps, batch) int32 item index fed at this step (0 where not valid)
    targets: np.ndarray  # (steps, batch) int32 the next item to predict (0 where not valid)
    resets: np.ndarray  # (steps, batch) bool: the lane starts a new session here; zero its state first
    valid: np.ndarray  # (steps, batch) bool: the lane holds a real (input, target) pair at this step
    session_index: np.ndarray  # (steps, batch) int64 index of the session in the lane (-1 where not valid)

    @property
    def n_steps(self) -> int:
        return self.inputs.shape[0]

    @property
    def batch_size(self) -> int:
        return self.inputs.shape[1]

    @property
    def n_pairs(self) -> int:
        return int(self.valid.sum())


ORDERS = ("time", "session_id")
ENDS = ("all_sessions", "first_unfilled_lane")


def session_order(n_sessions: int, shuffle: bool = False, seed: int = 0, session_ids=None) -> np.ndarray:
    """The order in which sessions enter the lanes: data order (start time), a seeded permutation, or with
    ``session_ids`` (n_sessions,) ascending SessionId (stable)."""
    if shuffle:
        return np.random.default_rng(seed).permutation(n_sessions)
    if session_ids is not None:
        return np.argsort(np.asarray(session_ids), kind="stable")
    return np.arange(n_sessions)


def first_unfilled_step(lane: np.ndarray, start_step: np.ndarray, n_pairs: np.ndarray, batch_size: int) -> int:
    """The first step at which a lane frees up with no session left: the minimum over the lanes of the step at which
    each one's last session ends (0 for a lane that never gets a session)."""
    free_at = np.zeros(batch_size, dtype=np.int64)
    np.maximum.at(free_at, lane, start_step + n_pairs)
    return int(free_at.min())


def assign_lanes(n_pairs_per_session: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy lane assignment: each session, in order, takes the lane that frees up first (lowest index on ties).

    Returns ``(lane, start_step)`` per session, both ``(n_sessions,)`` int64. This is the one sequential part of the
    batcher (a heap over the lanes, O(n_sessions log batch)); filling the arrays is vectorised.
    """
    n_sessions = len(n_pairs_per_session)
    lane = np.empty(n_sessions, dtype=np.int64)
    start = np.empty(n_sessions, dtype=np.int64)
    free_at = [(0, b) for b in range(batch_size)]  # (step at which the lane is free, lane); already a heap
    lengths = n_pairs_per_session.tolist()
    for s in range(n_sessions):
        step, b = free_at[0]
        lane[s] = b
        start[s] = step
        heapq.heapreplace(free_at, (step + lengths[s], b))
    return lane, start


def epoch_batches(data: SessionData, batch_size: int, shuffle: bool = False, seed: int = 0, order: str = "time",
                  end: str = "all_sessions") -> EpochBatches:  # fmt: skip
    """All mini-batches of one epoch over ``data`` as ``(steps, batch_size)`` arrays (see the module docstring):
    ``order`` ``time`` or ``session_id`` (with ``shuffle=False``), ``end`` ``all_sessions`` or
    ``first_unfilled_lane``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    if data.n_sessions == 0:
        raise ValueError("no sessions with at least two events: nothing to batch")
    if order not in ORDERS:
        raise ValueError(f"order: unknown value {order!r}; allowed: {', '.join(ORDERS)}")
    if end not in ENDS:
        raise ValueError(f"end: unknown value {end!r}; allowed: {', '.join(ENDS)}")
    if shuffle and order != "time":
        raise ValueError("order: 'session_id' applies with shuffle=False only")
    order = session_order(data.n_sessions, shuffle, seed, data.session_ids if order == "session_id" else None)
    starts = data.offsets[:-1][order]  # (n_sessions,) first event of each session, in lane order
    n_pairs = (data.offsets[1:] - data.offsets[:-1])[order] - 1  # (n_sessions,)
    lane, start_step = assign_lanes(n_pairs, batch_size)
    n_steps = int((start_step + n_pairs).max())
    if end == "first_unfilled_lane":
        n_steps = first_unfilled_step(lane, start_step, n_pairs, batch_size)
        if n_steps == 0:
            raise ValueError(f"batch_size {batch_size}: fewer sessions ({data.n_sessions}) than lanes, so the epoch "
                             f"ends before its first step with end='first_unfilled_lane'")  # fmt: skip

    # One row per pair: which session, which position inside it.
    pair_session = np.repeat(np.arange(len(order)), n_pairs)  # (n_pairs,)
    first_pair = np.cumsum(n_pairs) - n_pairs  # (n_sessions,)
    position = np.arange(len(pair_session)) - first_pair[pair_session]  # (n_pairs,)
    event = starts[pair_session] + position  # index of the input event
    step = start_step[pair_session] + position
    column = lane[pair_session]
    if end == "first_unfilled_lane":  # the pairs from the end step on are not in the epoch
        kept = step < n_steps
        pair_session, event, step, column = pair_session[kept], event[kept], step[kept], column[kept]

    shape = (n_steps, batch_size)
    inputs = np.zeros(shape, dtype=np.int32)
    targets = np.zeros(shape, dtype=np.int32)
    valid = np.zeros(shape, dtype=bool)
    resets = np.zeros(shape, dtype=bool)
    session_index = np.full(shape, -1, dtype=np.int64)
    inputs[step, column] = data.items[event]
    targets[step, column] = data.items[event + 1]
    valid[step, column] = True
    session_index[step, column] = order[pair_session]
    started = start_step < n_steps
    resets[start_step[started], lane[started]] = True
    return EpochBatches(inputs, targets, resets, valid, session_index)
