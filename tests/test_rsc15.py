"""RSC15 preprocessing: a hand-made clicks file with its four outputs worked out by hand, and agreement with the
original pandas code of GRU4Rec's examples/rsc15/preprocess.py on random data."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from gru4rec import io as gio
from gru4rec import rsc15

# Items: A=101 B=102 C=103 D=104 (support 2: dropped) E=105 (only in test: dropped there) F=106 (not in train_tr).
# Day 0 is 2014-04-01 (UTC); the last click is 2014-04-04T00:12 (tmax), so the test cut is 2014-04-03T00:12.
HAND_CLICKS = """\
1,2014-04-01T01:00:00.250Z,101,0
1,2014-04-01T01:06:00.000Z,102,0
1,2014-04-01T01:12:00.000Z,101,0
2,2014-04-01T02:00:00.000Z,102,S
2,2014-04-01T02:06:00.000Z,103,S
3,2014-04-01T03:00:00.000Z,101,0
4,2014-04-02T01:00:00.000Z,101,0
4,2014-04-02T01:06:00.000Z,102,0
4,2014-04-02T01:09:00.000Z,106,0
4,2014-04-02T01:12:00.000Z,103,0
4,2014-04-02T01:18:00.000Z,104,0
5,2014-04-02T02:00:00.000Z,104,0
5,2014-04-02T02:06:00.000Z,103,0
6,2014-04-02T03:00:00.000Z,103,7
6,2014-04-02T03:03:00.000Z,106,7
6,2014-04-02T03:06:00.000Z,101,7
6,2014-04-02T03:12:00.000Z,102,7
7,2014-04-03T01:00:00.000Z,102,0
7,2014-04-03T01:03:00.000Z,106,0
7,2014-04-03T01:06:00.000Z,103,0
8,2014-04-03T02:00:00.000Z,101,0
8,2014-04-03T02:03:00.000Z,106,0
8,2014-04-03T02:06:00.000Z,102,0
9,2014-04-03T22:00:00.000Z,105,0
9,2014-04-03T22:06:00.000Z,105,0
9,2014-04-03T22:12:00.000Z,101,0
10,2014-04-03T23:00:00.000Z,105,0
10,2014-04-03T23:06:00.000Z,105,0
10,2014-04-03T23:12:00.000Z,105,0
11,2014-04-04T00:00:00.000Z,101,0
11,2014-04-04T00:03:00.000Z,106,0
11,2014-04-04T00:06:00.000Z,103,0
11,2014-04-04T00:12:00.000Z,102,0
12,2014-04-03T00:00:00.000Z,102,0
12,2014-04-03T00:30:00.000Z,103,0
"""

# Worked out by hand:
# 1. length-1 sessions: session 3 goes.
# 2. supports: A 7, B 8, C 7, D 2, E 5, F 5 -> D goes (session 4 loses its last click, session 5 keeps only C).
# 3. sessions shorter than 2: session 5 goes.
# 4. last click per session: 1 01:12, 2 02:06, 4 02T01:12 (D is gone), 6 02T03:12, 7 03T01:06, 8 03T02:06,
#    9 03T22:12, 10 03T23:12, 11 04T00:12, 12 03T00:30; cut 03T00:12 -> train_full 1 2 4 6, test 7 8 9 10 11 12
#    (12 starts before the cut but ends after it: the rule looks at the last click).
# 5. test items not in train_full: E -> session 9 keeps A only, 10 nothing; both go for length < 2.
# 6. train_full's last click 02T03:12, cut 01T03:12 -> train_tr 1 2, train_valid 4 6; F is not in train_tr, so
#    the valid sessions lose F: 4 = A B C, 6 = C A B.
# Unix times: 2014-04-01T00:00Z = 1396310400.
EXPECTED = {
    "rsc15_train_full.txt": """\
SessionId\tItemId\tTime
1\t101\t1396314000.250
1\t102\t1396314360.000
1\t101\t1396314720.000
2\t102\t1396317600.000
2\t103\t1396317960.000
4\t101\t1396400400.000
4\t102\t1396400760.000
4\t106\t1396400940.000
4\t103\t1396401120.000
6\t103\t1396407600.000
6\t106\t1396407780.000
6\t101\t1396407960.000
6\t102\t1396408320.000
""",
    "rsc15_test.txt": """\
SessionId\tItemId\tTime
7\t102\t1396486800.000
7\t106\t1396486980.000
7\t103\t1396487160.000
8\t101\t1396490400.000
8\t106\t1396490580.000
8\t102\t1396490760.000
11\t101\t1396569600.000
11\t106\t1396569780.000
11\t103\t1396569960.000
11\t102\t1396570320.000
12\t102\t1396483200.000
12\t103\t1396485000.000
""",
    "rsc15_train_tr.txt": """\
SessionId\tItemId\tTime
1\t101\t1396314000.250
1\t102\t1396314360.000
1\t101\t1396314720.000
2\t102\t1396317600.000
2\t103\t1396317960.000
""",
    "rsc15_train_valid.txt": """\
SessionId\tItemId\tTime
4\t101\t1396400400.000
4\t102\t1396400760.000
4\t103\t1396401120.000
6\t103\t1396407600.000
6\t101\t1396407960.000
6\t102\t1396408320.000
""",
}

EXPECTED_FUNNEL = [
    ("raw clicks", 35, 12, 6),
    ("sessions of length 1 dropped", 34, 11, 6),
    ("items with support < 5 dropped", 32, 11, 5),
    ("sessions shorter than 2 dropped", 31, 10, 5),
    ("train_full (sessions ending before the last 24 h)", 13, 4, 4),
    ("test: sessions ending in the last 24 h", 18, 6, 5),
    ("test: items not in train dropped", 13, 5, 4),
    ("test: sessions shorter than 2 dropped", 12, 4, 4),
    ("train_tr (train_full sessions ending before its last 24 h)", 5, 2, 3),
    ("train_valid: sessions ending in the last 24 h of train_full", 8, 2, 4),
    ("train_valid: items not in train dropped", 6, 2, 3),
    ("train_valid: sessions shorter than 2 dropped", 6, 2, 3),
]


@pytest.fixture()
def hand_clicks(tmp_path):
    path = tmp_path / "yoochoose-clicks.dat"
    path.write_text(HAND_CLICKS)
    return str(path)


def test_prepare_hand_made_file_gives_the_hand_worked_outputs(hand_clicks, tmp_path):
    out = tmp_path / "out"
    stats = rsc15.prepare(hand_clicks, out)
    for name, text in EXPECTED.items():
        assert (out / name).read_text() == text, name
    assert sorted(os.listdir(out)) == sorted([*EXPECTED, "rsc15_stats.json"])  # no temporary files left
    funnel = [(s["step"], s["events"], s["sessions"], s["items"]) for s in stats["funnel"]]
    assert funnel == EXPECTED_FUNNEL
    written = json.loads((out / "rsc15_stats.json").read_text())
    assert written["funnel"] == stats["funnel"]
    assert "seconds" not in written and "seconds" in stats
    assert written["files"]["test"] == {
        "file": "rsc15_test.txt", "events": 12, "sessions": 4, "items": 4, "mean_session_length": 3.0,
        "time_min": 1396483200.0, "time_max": 1396570320.0,
    }  # fmt: skip
    assert written["tmax"] == 1396570320.0


def test_split_on_a_frame_matches_prepare_and_exposes_the_funnel(hand_clicks):
    splits = rsc15.split(gio.read_clicks(hand_clicks))
    assert splits.funnel["events"].tolist() == [row[1] for row in EXPECTED_FUNNEL]
    assert splits.test["SessionId"].unique().tolist() == [7, 8, 11, 12]
    assert splits.train_valid["ItemId"].tolist() == [101, 102, 103, 103, 101, 102]
    assert set(splits.frames()) == {"train_full", "test", "train_tr", "train_valid"}


def test_funnel_branches_are_chains_whose_counts_only_fall(hand_clicks):
    splits = rsc15.split(gio.read_clicks(hand_clicks))
    branches = rsc15.funnel_branches(splits.stats)
    assert set(branches) == {"train", "test", "train_valid"}
    for name, chain in branches.items():
        for column in ("events", "sessions", "items"):
            values = chain[column].tolist()
            assert values == sorted(values, reverse=True), (name, column, values)
    train = branches["train"]
    assert train["step"].iloc[0] == "raw clicks" and train["step"].iloc[-1].startswith("train_tr")
    assert train["events"].iloc[-1] == len(splits.train_tr)
    assert branches["test"]["step"].iloc[0] == "sessions shorter than 2 dropped"
    assert branches["test"]["events"].iloc[-1] == len(splits.test)
    assert branches["train_valid"]["step"].iloc[0].startswith("train_full")
    assert branches["train_valid"]["events"].iloc[-1] == len(splits.train_valid)
    assert len(train) + len(branches["test"]) + len(branches["train_valid"]) == len(splits.funnel) + 2
    with pytest.raises(ValueError, match="train_full"):
        rsc15.funnel_branches({"funnel": [{"step": "raw clicks", "events": 1, "sessions": 1, "items": 1}]})


def test_shuffled_input_gives_the_same_rows(hand_clicks):
    clicks = gio.read_clicks(hand_clicks)
    shuffled = clicks.sample(frac=1.0, random_state=3).reset_index(drop=True)
    a, b = rsc15.split(clicks), rsc15.split(shuffled)
    for name in a.frames():
        key = ["SessionId", "Time"]
        left = a.frames()[name].sort_values(key).reset_index(drop=True)
        right = b.frames()[name].sort_values(key).reset_index(drop=True)
        pd.testing.assert_frame_equal(left, right)
    assert a.stats["funnel"] == b.stats["funnel"]


def _original_preprocess(data: pd.DataFrame) -> dict:
    """The filters and splits of GRU4Rec's examples/rsc15/preprocess.py, verbatim in pandas (np.in1d -> np.isin)."""
    session_lengths = data.groupby("SessionId").size()
    data = data[np.isin(data.SessionId, session_lengths[session_lengths > 1].index)]
    item_supports = data.groupby("ItemId").size()
    data = data[np.isin(data.ItemId, item_supports[item_supports >= 5].index)]
    session_lengths = data.groupby("SessionId").size()
    data = data[np.isin(data.SessionId, session_lengths[session_lengths >= 2].index)]
    tmax = data.Time.max()
    session_max_times = data.groupby("SessionId").Time.max()
    session_train = session_max_times[session_max_times < tmax - 86400].index
    session_test = session_max_times[session_max_times >= tmax - 86400].index
    train = data[np.isin(data.SessionId, session_train)]
    test = data[np.isin(data.SessionId, session_test)]
    test = test[np.isin(test.ItemId, train.ItemId)]
    tslength = test.groupby("SessionId").size()
    test = test[np.isin(test.SessionId, tslength[tslength >= 2].index)]
    tmax = train.Time.max()
    session_max_times = train.groupby("SessionId").Time.max()
    session_train = session_max_times[session_max_times < tmax - 86400].index
    session_valid = session_max_times[session_max_times >= tmax - 86400].index
    train_tr = train[np.isin(train.SessionId, session_train)]
    valid = train[np.isin(train.SessionId, session_valid)]
    valid = valid[np.isin(valid.ItemId, train_tr.ItemId)]
    tslength = valid.groupby("SessionId").size()
    valid = valid[np.isin(valid.SessionId, tslength[tslength >= 2].index)]
    return {"train_full": train, "test": test, "train_tr": train_tr, "train_valid": valid}


@pytest.mark.parametrize("shuffle", [False, True])
def test_matches_the_original_pandas_code_on_random_clicks(shuffle):
    rng = np.random.default_rng(7)
    n = 60_000
    clicks = pd.DataFrame(
        {
            "SessionId": np.sort(rng.integers(0, 18_000, n)),
            "ItemId": rng.zipf(1.3, n) % 2000,
            "Time": np.round(rng.uniform(0, 12 * 86400, n), 3),
        }
    )
    if shuffle:
        clicks = clicks.sample(frac=1.0, random_state=1)
    expected = _original_preprocess(clicks)
    got = rsc15.split(clicks)
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(got.frames()[name], frame.reset_index(drop=True), check_dtype=False)


def test_prepare_reports_bad_input_with_the_line(tmp_path):
    path = tmp_path / "clicks.dat"
    path.write_text(HAND_CLICKS.replace("2014-04-02T03:03:00.000Z", "yesterday"))
    with pytest.raises(gio.DataFormatError, match=r"clicks.dat:15: column 2 \(Timestamp\)"):
        rsc15.prepare(str(path), tmp_path / "out")
    assert not (tmp_path / "out" / "rsc15_train_full.txt").exists()
