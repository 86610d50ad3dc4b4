"""gru4rec.movielens: MovieLens ratings read in three formats, ordered, cut into sessions and split by time."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from gru4rec import io as gio
from gru4rec import movielens
from gru4rec.io import DataFormatError

# user, item, rating, timestamp; user 1 rates items 30 and 10 in the same second.
ROWS = [(1, 30, 4, 1000), (1, 10, 5, 1000), (1, 20, 3, 1100), (2, 10, 2, 500), (2, 40, 1, 9000), (1, 50, 2, 99000)]


def _frame(rows=ROWS) -> pd.DataFrame:
    return pd.DataFrame({"SessionId": [r[0] for r in rows], "ItemId": [r[1] for r in rows],
                         "Time": [float(r[3]) for r in rows]})  # fmt: skip


@pytest.mark.parametrize("layout", ["u.data", "ratings.dat", "inter"])
def test_every_format_reads_to_the_same_frame(tmp_path, layout):
    if layout == "u.data":
        text = "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ROWS)
    elif layout == "ratings.dat":
        text = "".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in ROWS)
    else:
        text = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        text += "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ROWS)
    path = tmp_path / layout
    path.write_text(text)
    pd.testing.assert_frame_equal(movielens.read_ratings(path), _frame())


def test_a_bad_field_is_named_by_file_line_and_column(tmp_path):
    path = tmp_path / "u.data"
    path.write_text("1\t2\t3\t100\n1\tx7\t3\t200\n")
    expected = r"u\.data:2: column 2 \(item_id\): expected a non-negative integer, found 'x7'"
    with pytest.raises(DataFormatError, match=expected):
        movielens.read_ratings(path)
    inter = tmp_path / "a.inter"
    inter.write_text("user_id:token\titem_id:token\ttimestamp:float\n1\t2\t100\n1\t3\tsoon\n")
    with pytest.raises(DataFormatError, match=r"a\.inter:3: column 3 \(timestamp\): expected unix seconds"):
        movielens.read_ratings(inter)
    headless = tmp_path / "b.inter"
    headless.write_text("user_id:token\trating:float\n1\t2\n")
    with pytest.raises(DataFormatError, match=r"b\.inter:1: expected a header .*no field item_id, timestamp"):
        movielens.read_ratings(headless)
    (tmp_path / "empty").write_text("")
    with pytest.raises(DataFormatError, match="empty"):
        movielens.read_ratings(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no such file"):
        movielens.read_ratings(tmp_path / "missing")


def test_ordering_breaks_equal_times_by_item_and_leaves_the_input_alone():
    frame = _frame()
    before = frame.copy()
    ordered = movielens.order_events(frame)
    pd.testing.assert_frame_equal(frame, before)
    user1 = ordered[ordered.SessionId == 1]
    assert user1.ItemId.tolist() == [10, 30, 20, 50]
    assert user1.Time.tolist() == [1000.0, 1000.001, 1100.0, 99000.0]
    assert not ordered.duplicated(["SessionId", "Time"]).any()


def test_sessions_are_cut_at_gaps_longer_than_the_limit():
    sessions = movielens.sessionize(movielens.order_events(_frame()), session_gap=3600)
    # user 1: 1000, 1000.001, 1100 | 99000; user 2: 500 | 9000 (8,500 s apart)
    assert sessions.SessionId.tolist() == [1, 1, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="session_gap"):
        movielens.sessionize(_frame(), session_gap=0)


def test_the_split_holds_out_the_latest_sessions_with_known_items_only():
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame({"SessionId": np.repeat(np.arange(1, n // 4 + 1), 4), "ItemId": rng.integers(0, 60, n),
                          "Time": np.arange(n, dtype=float) * 10.0})  # fmt: skip
    frame.loc[n - 1, "ItemId"] = 999  # only in the last (test) session
    train, test = movielens.split_by_time(frame, test_fraction=0.2)
    assert train.Time.max() < test.Time.min()
    assert test.SessionId.nunique() == 20
    assert set(test.ItemId) <= set(train.ItemId) and 999 not in set(test.ItemId)
    assert (test.groupby("SessionId").size() >= 2).all() and (train.groupby("SessionId").size() >= 2).all()
    with pytest.raises(ValueError, match="test_fraction"):
        movielens.split_by_time(frame, test_fraction=1.0)


def _ratings_file(tmp_path):
    rng = np.random.default_rng(1)
    lines = []
    for user in range(1, 61):
        start = rng.integers(0, 10**6)
        for k in range(12):  # two bursts of six ratings a day apart
            lines.append(f"{user}\t{rng.integers(1, 40)}\t3\t{start + k * 60 + (86400 if k >= 6 else 0)}\n")
    path = tmp_path / "u.data"
    path.write_text("".join(lines))
    return path


def test_prepare_writes_the_four_splits_and_the_stats_last(tmp_path):
    out = tmp_path / "ml"
    stats = movielens.prepare(_ratings_file(tmp_path), out, test_fraction=0.25)
    assert movielens.is_complete(out)
    assert stats["users"] == 60 and stats["sessions"] == 120
    for key, name in movielens.FILES.items():
        frame = gio.read_sessions(out / name)
        assert len(frame) == stats["files"][key]["events"] > 0
    assert json.loads((out / movielens.STATS_FILE).read_text())["files"]["test"]["sessions"] == 30
    assert not (out / ".staging-movielens").exists()
    again = movielens.prepare(_ratings_file(tmp_path), out, test_fraction=0.5)  # a second run into the same folder
    assert again["files"]["test"]["sessions"] == 60 and movielens.is_complete(out)
    assert json.loads((out / movielens.STATS_FILE).read_text())["test_fraction"] == 0.5


def test_the_cli_prepares_movielens_and_rejects_a_missing_file(tmp_path):
    ratings = _ratings_file(tmp_path)
    done = subprocess.run([sys.executable, "-m", "gru4rec", "prepare", "movielens", "--ratings", str(ratings),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "60 users in 120 sessions" in done.stdout
    missing = subprocess.run([sys.executable, "-m", "gru4rec", "prepare", "movielens", "--ratings",
                              str(tmp_path / "nope"), "--out", str(tmp_path / "o2")], capture_output=True, text=True)
    assert missing.returncode == 2 and "no such file" in missing.stderr and "recbole" in missing.stderr


def _ml_rows(n_users=20, per_user=6):
    return [f"{u}\t{1 + (u * 7 + k) % 15}\t3\t{1000 + u * 100000 + k * 60}" for u in range(1, n_users + 1)
            for k in range(per_user)]  # fmt: skip


@pytest.mark.parametrize(
    "name, line, expected",
    [("u.data", "1\t12345678901234567890\t3\t1000", r"u\.data:3: column 2 \(item_id\): expected a non-negative "
                                                     r"integer below 2\*\*63 \(int64\), found '12345678901234567890'"),
     ("u.data", "1\t2\t3\t1000\t9", r"u\.data:3: expected 4 fields .* separated by TAB, found 5 fields"),
     ("ratings.dat", "1::2::3::1000::9", r"ratings\.dat:3: expected 4 fields .* separated by ::, found 5 fields")],
)  # fmt: skip
def test_an_id_beyond_int64_or_a_fifth_field_is_named_by_file_and_line(tmp_path, name, line, expected):
    # once: "a number is out of range (Python int too large ...)" and pandas' "C error: Expected 4 fields ..."
    rows = _ml_rows(2, 2)
    if name == "ratings.dat":
        rows = [row.replace("\t", "::") for row in rows]
    path = tmp_path / name
    path.write_text("\n".join(rows[:2] + [line] + rows[2:]) + "\n")
    with pytest.raises(DataFormatError, match=expected):
        movielens.read_ratings(path)


def test_a_test_fraction_leaving_no_training_session_says_so():
    events = movielens.sessionize(movielens.order_events(_frame()), 3600.0)
    with pytest.raises(ValueError, match=r"test_fraction 0\.999: holding out \d+ of the \d+ sessions of .* leaves no "
                                         r"training session; use a smaller test fraction"):  # fmt: skip
        movielens.split_by_time(events, 0.999)


def test_the_cli_names_a_folder_and_a_bad_test_fraction(tmp_path):
    ratings = tmp_path / "u.data"
    ratings.write_text("\n".join(_ml_rows()) + "\n")

    def run(*args):
        return subprocess.run([sys.executable, "-m", "gru4rec", "prepare", "movielens", "--out",
                               str(tmp_path / "out"), *args], capture_output=True, text=True)  # fmt: skip

    folder = run("--ratings", str(tmp_path))
    assert folder.returncode == 2 and "is a folder, expected the ratings file" in folder.stderr
    assert "no such file" not in folder.stderr and len(folder.stderr.strip().splitlines()) == 1
    fraction = run("--ratings", str(ratings), "--test-fraction", "0.999")
    assert fraction.returncode == 2 and "leaves no training session" in fraction.stderr
    assert len(fraction.stderr.strip().splitlines()) == 1


def test_a_ratings_file_without_newlines_is_rejected_from_its_first_mib(tmp_path):
    path = tmp_path / "u.data"
    path.write_bytes(b"1" * (3 * gio.MAX_LINE_BYTES))
    with pytest.raises(DataFormatError, match=r"u\.data:1: expected lines of at most 1 MiB"):
        movielens.read_ratings(path)
