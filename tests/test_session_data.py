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


def _layouts(seed):
    """Frames of the same kind of sessions laid out in several ways: grouped (session ids out of order), grouped and
    sorted by id as GRU4Rec files are, interleaved by time, shuffled, one session out of time order; with equal
    times and equal session starts."""
    rng = np.random.default_rng(seed)
    n_sessions = 300
    lengths = rng.integers(1, 8, n_sessions)
    sessions = np.repeat(rng.permutation(10 * n_sessions)[:n_sessions], lengths)
    start = np.repeat(rng.integers(0, 50, n_sessions).astype(float), lengths)  # many equal session starts
    times = start + np.concatenate([np.sort(rng.integers(0, 4, k)) for k in lengths]).astype(float)  # equal times
    items = rng.integers(100, 160, len(sessions))
    grouped = pd.DataFrame({"SessionId": sessions, "ItemId": items, "Time": times})
    by_id = grouped.sort_values(["SessionId", "Time"], kind="stable").reset_index(drop=True)
    by_time = grouped.sort_values(["Time", "SessionId"], kind="stable")  # sessions interleaved
    shuffled = grouped.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    unsorted_inside = grouped.copy()
    unsorted_inside.loc[1:2, "Time"] = unsorted_inside.loc[1:2, "Time"].to_numpy()[::-1] + [0.0, 5.0]
    return [grouped, by_id, by_time.reset_index(drop=True), shuffled, unsorted_inside]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_fast_path_for_grouped_files_gives_the_general_sort(seed, monkeypatch):
    import gru4rec.session_data as sd

    layouts = _layouts(seed)
    for frame, grouped in zip(layouts, (True, True, False, False, False)):
        order = sd._order_of_grouped(frame["SessionId"].to_numpy(), frame["Time"].to_numpy())
        assert (order is not None) == grouped  # the fast path runs on grouped files, the general sort otherwise
        fast = SessionData.from_frame(frame)
        with monkeypatch.context() as m:
            m.setattr(sd, "_order_of_grouped", lambda sessions, times: None)  # the general sort only
            general = SessionData.from_frame(frame)
        for name in ("items", "times", "offsets", "session_ids"):
            np.testing.assert_array_equal(getattr(fast, name), getattr(general, name), err_msg=name)
        np.testing.assert_array_equal(fast.item_map.ids, general.item_map.ids)
        train_map = ItemMap.from_ids(np.arange(100, 140))  # with a given map: unknown items dropped
        a, b = SessionData.from_frame(frame, train_map), None
        with monkeypatch.context() as m:
            m.setattr(sd, "_order_of_grouped", lambda sessions, times: None)
            b = SessionData.from_frame(frame, train_map)
        for name in ("items", "times", "offsets", "session_ids"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert a.n_dropped_unknown == b.n_dropped_unknown
