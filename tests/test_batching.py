"""Session-parallel batches against a naive step-by-step loop, and the exactly-once property."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gru4rec.batching import assign_lanes, epoch_batches
from gru4rec.session_data import SessionData


def random_sessions(n_sessions: int, n_items: int, seed: int) -> SessionData:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 9, size=n_sessions)
    rows = []
    for s, length in enumerate(lengths):
        start = rng.uniform(0, 1000)
        for j in range(length):
            rows.append((s + 100, int(rng.integers(0, n_items)) * 7 + 3, start + j))
    return SessionData.from_frame(pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"]))


def naive_batches(data: SessionData, batch_size: int, order: np.ndarray):
    """The textbook loop: advance every lane one event per step; a finished lane takes the next session."""
    queue = list(order)
    lanes = [None] * batch_size  # (session, position of the input event)
    pending_reset = [False] * batch_size
    for b in range(batch_size):
        if queue:
            lanes[b] = (queue.pop(0), 0)
            pending_reset[b] = True
    steps = []
    while any(lane is not None for lane in lanes):
        row = []
        for b in range(batch_size):
            if lanes[b] is None:
                row.append(None)
                continue
            s, pos = lanes[b]
            items = data.session(s)
            row.append((int(items[pos]), int(items[pos + 1]), pending_reset[b], s))
            pending_reset[b] = False
            if pos + 2 < len(items):
                lanes[b] = (s, pos + 1)
            elif queue:
                lanes[b] = (queue.pop(0), 0)
                pending_reset[b] = True
            else:
                lanes[b] = None
        steps.append(row)
    return steps


@pytest.mark.parametrize("batch_size", [1, 3, 8, 50])
@pytest.mark.parametrize("shuffle", [False, True])
def test_matches_naive_loop(batch_size: int, shuffle: bool) -> None:
    data = random_sessions(40, 30, seed=batch_size)
    batches = epoch_batches(data, batch_size, shuffle=shuffle, seed=7)
    order = np.random.default_rng(7).permutation(data.n_sessions) if shuffle else np.arange(data.n_sessions)
    expected = naive_batches(data, batch_size, order)
    assert batches.n_steps == len(expected)
    for t, row in enumerate(expected):
        for b, cell in enumerate(row):
            if cell is None:
                assert not batches.valid[t, b]
                assert batches.session_index[t, b] == -1
                continue
            item, target, reset, session = cell
            assert batches.valid[t, b]
            assert batches.inputs[t, b] == item
            assert batches.targets[t, b] == target
            assert batches.resets[t, b] == reset
            assert batches.session_index[t, b] == session


def test_every_pair_exactly_once() -> None:
    data = random_sessions(300, 50, seed=1)
    batches = epoch_batches(data, 16)
    assert batches.n_pairs == data.n_pairs == data.n_events - data.n_sessions
    got = sorted(
        zip(
            batches.session_index[batches.valid].tolist(),
            batches.inputs[batches.valid].tolist(),
            batches.targets[batches.valid].tolist(),
        )
    )
    want = sorted(
        (s, int(a), int(b))
        for s in range(data.n_sessions)
        for a, b in zip(data.session(s)[:-1], data.session(s)[1:])
    )
    assert got == want
    # A reset happens exactly once per session, at its first step.
    assert batches.resets.sum() == data.n_sessions


def test_sessions_enter_in_start_time_order() -> None:
    data = random_sessions(60, 20, seed=3)
    batches = epoch_batches(data, 4)
    first_step = {}
    for t, b in zip(*np.nonzero(batches.resets)):
        first_step[int(batches.session_index[t, b])] = (t, b)
    ordered = sorted(first_step, key=lambda s: first_step[s])
    assert ordered == list(range(data.n_sessions))


def test_assign_lanes_lowest_lane_wins_ties() -> None:
    lane, start = assign_lanes(np.array([1, 1, 2, 1, 1]), 2)
    assert lane.tolist() == [0, 1, 0, 1, 1]
    assert start.tolist() == [0, 0, 1, 1, 2]


def test_bad_arguments() -> None:
    data = random_sessions(5, 5, seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        epoch_batches(data, 0)
    empty = SessionData.from_frame(pd.DataFrame({"SessionId": [1], "ItemId": [1], "Time": [0.0]}))
    with pytest.raises(ValueError, match="no sessions"):
        epoch_batches(empty, 2)


def test_more_lanes_than_sessions_is_handled() -> None:
    data = random_sessions(3, 5, seed=2)
    batches = epoch_batches(data, 10)
    assert batches.n_pairs == data.n_pairs
    assert not batches.valid[:, 3:].any()
