"""SessionData and ItemMap: ordering, unknown items, round trips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gru4rec.session_data import ItemMap, SessionData


def frame(rows):
    return pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])


def test_sessions_sorted_by_start_time_then_time() -> None:
    data = SessionData.from_frame(
        frame([(2, 10, 5.0), (1, 11, 9.0), (2, 12, 3.0), (1, 10, 8.0), (3, 13, 1.0), (3, 10, 2.0)])
    )
    assert data.session_ids.tolist() == [3, 2, 1]
    assert data.item_map.ids[data.items].tolist() == [13, 10, 12, 10, 10, 11]
    assert data.offsets.tolist() == [0, 2, 4, 6]
    assert data.n_pairs == 3
    assert data.item_counts.tolist() == [3, 1, 1, 1]


def test_unknown_items_dropped_and_short_sessions_removed() -> None:
    train_map = ItemMap.from_ids(np.array([10, 11, 12]))
    data = SessionData.from_frame(
        frame([(1, 10, 1.0), (1, 99, 2.0), (1, 11, 3.0), (2, 98, 1.0), (2, 12, 2.0)]), item_map=train_map
    )
    assert data.n_dropped_unknown == 2
    assert data.session_ids.tolist() == [1]
    assert data.item_map.ids[data.session(0)].tolist() == [10, 11]


def test_item_map_round_trip(tmp_path) -> None:
    item_map = ItemMap(np.array([5, 3, 9]))
    assert item_map.index_of(np.array([9, 5, 4])).tolist() == [2, 0, -1]
    item_map.save(tmp_path / "items.tsv")
    loaded = ItemMap.load(tmp_path / "items.tsv")
    assert loaded.ids.tolist() == [5, 3, 9]


def test_item_map_load_names_bad_line(tmp_path) -> None:
    path = tmp_path / "items.tsv"
    path.write_text("ItemId\n1\nabc\n")
    with pytest.raises(ValueError, match=r"items.tsv:3: expected an integer ItemId"):
        ItemMap.load(path)


def test_missing_column_is_named() -> None:
    with pytest.raises(ValueError, match="Time"):
        SessionData.from_frame(pd.DataFrame({"SessionId": [1], "ItemId": [2]}))


def test_to_frame_round_trip() -> None:
    original = frame([(1, 10, 1.0), (1, 11, 2.0), (2, 10, 0.5), (2, 12, 0.7)])
    data = SessionData.from_frame(original)
    again = SessionData.from_frame(data.to_frame())
    assert np.array_equal(again.items, data.items)
    assert np.array_equal(again.offsets, data.offsets)
