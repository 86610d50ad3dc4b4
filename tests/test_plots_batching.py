"""Figures of notebook 02 and the computations behind them (gru4rec.lessons.batching), on small hand-made sessions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from gru4rec.batching import epoch_batches
from gru4rec.lessons import batching as lessons
from gru4rec.plots import batching as plots
from gru4rec.session_data import SessionData


def sessions(lengths, seed=0):
    rng = np.random.default_rng(seed)
    rows = [
        (s + 1, int(rng.integers(0, 9)) + 100, float(s * 10 + j))
        for s, length in enumerate(lengths)
        for j in range(length)
    ]
    return SessionData.from_frame(pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"]))


def test_padding_waste_counts_cells_by_hand():
    # pairs per session: 1, 3, 1, 1 with batch 2
    waste = lessons.padding_waste(np.array([2, 4, 2, 2]), batch_size=2).set_index("scheme")
    assert (waste["real_pairs"] == 6).all()
    assert waste.loc["pad every session to the longest", "cells"] == 2 * 2 * 3
    assert waste.loc["pad each mini-batch (data order)", "cells"] == 2 * 3 + 2 * 1
    assert waste.loc["pad each mini-batch (sorted by length)", "cells"] == 2 * 3 + 2 * 1
    parallel = waste.loc["session-parallel (GRU4Rec)"]
    # lane 0: s0 (1 step), s2 (1), s3 (1); lane 1: s1 (3 steps) -> 3 steps x 2 lanes, no padding, no idle cell
    assert parallel["cells"] == 6 and parallel["padding"] == 0 and parallel["idle_tail"] == 0
    assert waste.loc["pad every session to the longest", "wasted_share"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="length >= 2"):
        lessons.padding_waste(np.array([1, 3]), 2)


def test_check_every_pair_once_passes_on_real_batches_and_catches_each_kind_of_error():
    data = sessions([2, 5, 3, 2, 7, 4, 2, 3])
    batches = epoch_batches(data, batch_size=3)
    check = lessons.check_every_pair_once(data, batches)
    assert check["every_pair_once"] is True
    assert check["n_pairs_expected"] == check["n_pairs_in_batches"] == data.n_pairs

    dropped = batches.valid.copy()
    step, lane = np.argwhere(dropped)[-1]
    dropped[step, lane] = False
    assert lessons.check_every_pair_once(data, dataclasses.replace(batches, valid=dropped))["every_pair_once"] is False

    swapped = batches.targets.copy()
    swapped[0, 0] = (swapped[0, 0] + 1) % data.n_items
    check = lessons.check_every_pair_once(data, dataclasses.replace(batches, targets=swapped))
    assert check["pairs_match"] is False and check["every_pair_once"] is False

    no_reset = batches.resets.copy()
    no_reset[0, 0] = False
    check = lessons.check_every_pair_once(data, dataclasses.replace(batches, resets=no_reset))
    assert check["resets_match"] is False and check["every_pair_once"] is False


def test_steps_since_reset_and_lane_state():
    resets = np.array([[True, True], [False, True], [False, False], [True, False]])
    assert lessons.steps_since_reset(resets).tolist() == [[0, 0], [1, 0], [2, 1], [0, 2]]
    assert lessons.steps_since_reset(np.array([[False], [True]])).tolist() == [[-1], [0]]
    data = sessions([3, 2, 2])
    batches = epoch_batches(data, batch_size=2)
    state = lessons.lane_state(batches, data, step=1)
    assert state.columns.tolist() == ["lane", "SessionId", "pair", "input_item", "target_item", "reset", "valid"]
    assert state["SessionId"].tolist() == [1, 3] and state["pair"].tolist() == [1, 0]
    assert state["reset"].tolist() == [False, True]
    first_session = data.item_map.ids[data.session(0)]
    assert state.loc[0, "input_item"] == first_session[1] and state.loc[0, "target_item"] == first_session[2]
    with pytest.raises(ValueError, match="step"):
        lessons.lane_state(batches, data, step=batches.n_steps)


def test_figures_carry_the_data():
    data = sessions([2, 5, 3, 2, 7, 4, 2, 3])
    batches = epoch_batches(data, batch_size=3)
    figure = plots.lanes_heatmap(batches.session_index, batches.resets, batches.valid, n_steps=4, highlight_step=2)
    heat, marks = figure.data
    assert np.shape(heat.z) == (3, 4) and list(heat.x) == [0, 1, 2, 3]
    z = np.asarray(heat.z, dtype=float)
    expected = np.where(batches.valid[:4].T, batches.session_index[:4].T % len(plots.SESSION_PALETTE), np.nan)
    np.testing.assert_array_equal(z, expected)
    assert len(marks.x) == int(batches.resets[:4].sum()) and len(figure.layout.shapes) == 1
    labels = lessons.cell_labels(batches, data, first_step=1, n_steps=3, lanes=2)
    assert labels.shape == (3, 2)
    state = lessons.lane_state(batches, data, step=1)
    assert labels[0, 0] == (
        f"SessionId {state.loc[0, 'SessionId']}, pair {state.loc[0, 'pair']}: "
        f"{state.loc[0, 'input_item']} → {state.loc[0, 'target_item']}"
    )
    assert (labels == "idle").sum() == (~batches.valid[1:4, :2]).sum()
    figure = plots.lanes_heatmap(
        batches.session_index, batches.resets, batches.valid, first_step=1, n_steps=3, max_lanes=2, hover=labels
    )
    assert np.asarray(figure.data[0].text).shape == (2, 3)
    with pytest.raises(ValueError, match="window"):
        plots.lanes_heatmap(batches.session_index, batches.resets, batches.valid, n_steps=3, hover=labels)
    with pytest.raises(ValueError, match="first_step"):
        plots.lanes_heatmap(batches.session_index, batches.resets, batches.valid, first_step=batches.n_steps)

    waste = lessons.padding_waste(data.session_lengths, 3)
    figure = plots.padding_figure(waste)
    assert [trace.type for trace in figure.data] == ["bar", "bar", "bar", "scatter"]
    assert list(figure.data[0].x) == waste["real_pairs"].tolist()

    figure = plots.lanes_in_use_figure(batches.valid)
    assert list(figure.data[0].y) == batches.valid.sum(axis=1).tolist()
