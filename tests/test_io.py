"""Readers and writers: round trips, the fast formatters, and a DataFormatError for every kind of bad input."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from gru4rec import io as gio
from gru4rec.io import DataFormatError

GOOD_CLICKS = (
    "1,2014-04-07T10:51:09.277Z,214536502,0\n"
    "1,2014-04-07T10:54:09.868Z,214536500,0\n"
    "2,2014-04-07T13:56:37.614Z,214662742,S\n"
    "2,2014-04-07T13:57:19.373Z,214662742,2053\n"
)
GOOD_SESSIONS = "SessionId\tItemId\tTime\n1\t214536502\t1396867869.277\n1\t214536500\t1396868049.868\n"


def _write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return str(path)


def _error(reader, path) -> DataFormatError:
    with pytest.raises(DataFormatError) as info:
        reader(path)
    return info.value


# ----------------------------------------------------------------------------------------------------------------
# good input


def test_read_clicks_parses_ids_and_utc_timestamps(tmp_path):
    df = gio.read_clicks(_write(tmp_path, "c.dat", GOOD_CLICKS))
    assert list(df.columns) == ["SessionId", "ItemId", "Time"]
    assert df.dtypes.tolist() == [np.int64, np.int64, np.float64]
    assert df["SessionId"].tolist() == [1, 1, 2, 2]
    assert df["ItemId"].tolist() == [214536502, 214536500, 214662742, 214662742]
    # 2014-04-07T10:51:09.277Z is 1396867869.277 s after the epoch (UTC)
    expected = [1396867869.277, 1396868049.868, 1396878997.614, 1396879039.373]
    np.testing.assert_array_equal(df["Time"].to_numpy(), expected)


def test_read_clicks_accepts_windows_line_ends_and_no_final_newline(tmp_path):
    text = GOOD_CLICKS.replace("\n", "\r\n").rstrip("\r\n")
    df = gio.read_clicks(_write(tmp_path, "c.dat", text))
    assert len(df) == 4


def test_clicks_round_trip(tmp_path):
    df = gio.read_clicks(_write(tmp_path, "c.dat", GOOD_CLICKS))
    out = str(tmp_path / "out.dat")
    gio.write_clicks(df, out)
    text = open(out).read()
    assert text.splitlines()[0] == "1,2014-04-07T10:51:09.277Z,214536502,0"
    pd.testing.assert_frame_equal(gio.read_clicks(out), df)


def test_sessions_round_trip_exact_bytes(tmp_path):
    path = _write(tmp_path, "s.txt", GOOD_SESSIONS)
    df = gio.read_sessions(path)
    out = str(tmp_path / "out.txt")
    gio.write_sessions(df, out)
    assert open(out).read() == GOOD_SESSIONS


def test_read_sessions_any_column_order(tmp_path):
    path = _write(tmp_path, "s.txt", "Time\tSessionId\tItemId\n1.5\t3\t4\n")
    df = gio.read_sessions(path)
    assert list(df.columns) == ["SessionId", "ItemId", "Time"]
    assert df.iloc[0].tolist() == [3, 4, 1.5]


def test_write_sessions_falls_back_for_sub_millisecond_times(tmp_path):
    df = pd.DataFrame({"SessionId": [1, 1], "ItemId": [5, 6], "Time": [0.1234567, 1e9 + 0.5]})
    out = str(tmp_path / "s.txt")
    gio.write_sessions(df, out)
    assert open(out).readline() == "SessionId\tItemId\tTime\n"
    pd.testing.assert_frame_equal(gio.read_sessions(out), df)


def test_fast_formatters_match_python_formatting():
    rng = np.random.default_rng(0)
    n = 5000
    sessions = np.concatenate([[0, 1, 9, 10, 9999, 10000, 99999999, 2**40], rng.integers(0, 10**12, n)])
    items = rng.integers(0, 10**9, len(sessions))
    ms = rng.integers(0, 4_102_444_800_000, len(sessions))  # 1970 .. 2100
    times = ms / 1000.0
    body = b"".join(gio.format_sessions_bytes(sessions, items, times)).decode()
    expected = "".join(f"{s}\t{i}\t{m // 1000}.{m % 1000:03d}\n" for s, i, m in zip(sessions, items, ms))
    assert body == expected
    clicks = b"".join(gio.format_clicks_bytes(sessions, times, items)).decode().splitlines()
    iso = np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms")
    assert clicks == [f"{s},{t}Z,{i},0" for s, t, i in zip(sessions, iso, items)]


def test_fast_formatter_chunks_keep_order(monkeypatch):
    monkeypatch.setattr(gio, "_CHUNK", 7)
    sessions = np.arange(100)
    body = b"".join(gio.format_sessions_bytes(sessions, sessions + 1, sessions * 1.5)).decode()
    assert body.splitlines()[42] == "42\t43\t63.000"
    assert len(body.splitlines()) == 100


# ----------------------------------------------------------------------------------------------------------------
# atomic writes


def test_atomic_write_replaces_on_success(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")
    with gio.atomic_write(path) as handle:
        handle.write("new")
        assert path.read_text() == "old"  # not visible before the end
    assert path.read_text() == "new"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_atomic_write_keeps_old_file_and_removes_temp_on_failure(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with gio.atomic_write(path) as handle:
            handle.write("half")
            raise RuntimeError("boom")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_write_sessions_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "s.txt"
    path.write_text("old")

    def broken(*args, **kwargs):
        yield b"1\t2\t3.000\n"
        raise OSError("disk full")

    monkeypatch.setattr(gio, "format_sessions_bytes", broken)
    with pytest.raises(OSError):
        gio.write_sessions(pd.DataFrame({"SessionId": [1], "ItemId": [2], "Time": [3.0]}), path)
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["s.txt"]


# ----------------------------------------------------------------------------------------------------------------
# bad clicks


@pytest.mark.parametrize(
    "text, line, column, words",
    [
        ("", 1, None, ["empty file"]),
        ("\n  \n", 1, None, ["empty file"]),
        ("SessionID,Timestamp,ItemID,Category\n" + GOOD_CLICKS, 1, "1 (SessionID)", ["no header"]),
        (GOOD_CLICKS + "3,2014-04-07T13:57:19.373Z,214662742\n", 5, None, ["4 comma-separated", "3 fields"]),
        (GOOD_CLICKS + "3,2014-04-07T13:57:19.373Z,214662742,0,7\n", 5, None, ["4 comma-separated", "5 fields"]),
        (GOOD_CLICKS + "3;2014-04-07T13:57:19.373Z;214662742;0\n", 5, None, ["4 comma-separated", "1 field"]),
        (GOOD_CLICKS + "x3,2014-04-07T13:57:19.373Z,214662742,0\n", 5, "1 (SessionID)", ["integer", "'x3'"]),
        (GOOD_CLICKS + "3,2014-04-07T13:57:19.373Z,2146.5,0\n", 5, "3 (ItemID)", ["integer ItemID", "'2146.5'"]),
        (GOOD_CLICKS + "3,2014-04-07T13:57:19.373Z,,0\n", 5, "3 (ItemID)", ["integer ItemID", "empty field"]),
        (GOOD_CLICKS + "3,2014-04-07T13:57:19.373Z,NaN,0\n", 5, "3 (ItemID)", ["integer ItemID", "'NaN'"]),
        (GOOD_CLICKS + "nan,2014-04-07T13:57:19.373Z,5,0\n", 5, "1 (SessionID)", ["integer", "'nan'"]),
        (GOOD_CLICKS + "3,2014-04-07T13:57:19.373,214662742,0\n", 5, "2 (Timestamp)", ["ISO-8601", "Z"]),
        (GOOD_CLICKS + "3,07/04/2014 13:57,214662742,0\n", 5, "2 (Timestamp)", ["ISO-8601", "'07/04/2014 13:57'"]),
        (GOOD_CLICKS + "3,2014-13-07T13:57:19.373Z,214662742,0\n", 5, "2 (Timestamp)", ["ISO-8601"]),
        (GOOD_CLICKS + "3,,214662742,0\n", 5, "2 (Timestamp)", ["ISO-8601", "empty field"]),
        # a blank line still counts, as in a text editor
        (GOOD_CLICKS + "\n3,2014-04-07T13:57:19.373Z,oops,0\n", 6, "3 (ItemID)", ["'oops'"]),
    ],
)
def test_bad_clicks_name_file_line_column(tmp_path, text, line, column, words):
    path = _write(tmp_path, "clicks.dat", text)
    error = _error(gio.read_clicks, path)
    assert isinstance(error, ValueError)
    message = str(error)
    assert message.startswith(f"{path}:{line}:"), message
    assert error.line == line
    assert error.column == column
    if column is not None:
        assert f"column {column}" in message
    for word in words:
        assert word in message, message
    assert "Traceback" not in message and "pyarrow" not in message


def test_missing_clicks_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        gio.read_clicks(tmp_path / "nope.dat")


def test_bad_line_far_into_a_big_file(tmp_path):
    lines = [f"{i // 3 + 1},2014-04-07T10:51:09.277Z,{214536502 + i % 7},0" for i in range(200_000)]
    lines[150_000] = lines[150_000].replace(",0", ",0,extra")
    path = _write(tmp_path, "big.dat", "\n".join(lines) + "\n")
    error = _error(gio.read_clicks, path)
    assert error.line == 150_001


# ----------------------------------------------------------------------------------------------------------------
# bad sessions


@pytest.mark.parametrize(
    "text, line, column, words",
    [
        ("", 1, None, ["empty file", "SessionId\\tItemId\\tTime"]),
        ("1\t214536502\t1396867869.277\n", 1, None, ["header", "'1\\t214536502\\t1396867869.277'"]),
        ("SessionId\tItemId\n1\t2\n", 1, None, ["header"]),
        ("SessionId,ItemId,Time\n1,2,3.0\n", 1, None, ["header", "comma-separated"]),
        (GOOD_SESSIONS + "2\t5\n", 4, None, ["3 TAB-separated", "2 fields"]),
        (GOOD_SESSIONS + "2\t5\t1.0\t9\n", 4, None, ["3 TAB-separated", "4 fields"]),
        (GOOD_SESSIONS + "two\t5\t1.0\n", 4, "1 (SessionId)", ["integer SessionId", "'two'"]),
        (GOOD_SESSIONS + "2\t5x\t1.0\n", 4, "2 (ItemId)", ["integer ItemId", "'5x'"]),
        (GOOD_SESSIONS + "2\t5\tnoon\n", 4, "3 (Time)", ["number", "'noon'"]),
        (GOOD_SESSIONS + "2\t5\tNaN\n", 4, "3 (Time)", ["finite number", "'NaN'"]),
        (GOOD_SESSIONS + "2\t5\tinf\n", 4, "3 (Time)", ["finite number", "'inf'"]),
        (GOOD_SESSIONS + "2\t\t1.0\n", 4, "2 (ItemId)", ["integer ItemId", "empty field"]),
        (GOOD_SESSIONS + "\t5\t1.0\n", 4, "1 (SessionId)", ["integer SessionId", "empty field"]),
    ],
)
def test_bad_sessions_name_file_line_column(tmp_path, text, line, column, words):
    path = _write(tmp_path, "rsc15_test.txt", text)
    error = _error(gio.read_sessions, path)
    message = str(error)
    assert message.startswith(f"{path}:{line}:"), message
    assert error.column == column
    for word in words:
        assert word in message, message


def test_header_only_sessions_file_is_an_empty_frame(tmp_path):
    df = gio.read_sessions(_write(tmp_path, "s.txt", "SessionId\tItemId\tTime\n"))
    assert len(df) == 0 and list(df.columns) == ["SessionId", "ItemId", "Time"]


def test_writers_reject_frames_without_the_columns(tmp_path):
    with pytest.raises(ValueError, match="lacks column"):
        gio.write_sessions(pd.DataFrame({"SessionId": [1]}), tmp_path / "x")
    with pytest.raises(ValueError, match="lacks column"):
        gio.write_clicks(pd.DataFrame({"ItemId": [1]}), tmp_path / "x")


class _CountingReads:
    """Counts the bytes a reader takes from the files it opens (``gio._open_binary`` wrapped)."""

    def __init__(self, monkeypatch):
        self.total = 0
        real = gio._open_binary
        counter = self

        class Counted:
            def __init__(self, handle):
                self.handle = handle

            def read(self, *args):
                data = self.handle.read(*args)
                counter.total += len(data)
                return data

            def readline(self, *args):
                data = self.handle.readline(*args)
                counter.total += len(data)
                return data

            def __iter__(self):
                for line in self.handle:
                    counter.total += len(line)
                    yield line

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.handle.close()

        monkeypatch.setattr(gio, "_open_binary", lambda path: Counted(real(path)))


@pytest.mark.parametrize("reader, compress", [("read_sessions", ""), ("read_clicks", ""), ("read_sessions", ".gz")])
def test_a_file_without_newlines_is_rejected_after_a_bounded_read(tmp_path, monkeypatch, reader, compress):
    # once: a 2 GB file without newlines was read whole (4.4 GB of memory, 25-33 s) before its header was rejected
    size = 4 * gio.MAX_LINE_BYTES
    path = tmp_path / f"blob.txt{compress}"
    if compress:
        import gzip

        path.write_bytes(gzip.compress(b"x" * size))
    else:
        path.write_bytes(b"1" * size)
    counting = _CountingReads(monkeypatch)
    with pytest.raises(DataFormatError, match=r"blob\.txt.*:1: expected lines of at most 1 MiB"):
        getattr(gio, reader)(path)
    assert counting.total <= 2 * gio.MAX_LINE_BYTES + (1 << 16)  # never the whole file


def test_a_file_of_spaces_is_read_in_blocks_to_find_it_empty(tmp_path, monkeypatch):
    path = tmp_path / "spaces.txt"
    path.write_bytes(b" " * (1 << 20) + b"\n")
    with pytest.raises(DataFormatError, match="an empty file"):
        gio.read_sessions(path)


@pytest.mark.parametrize("suffix", [".gz", ".bz2"])
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
@pytest.mark.parametrize("reader", ["read_sessions", "read_clicks"])
def test_a_corrupt_compressed_file_is_named(tmp_path, suffix, damage, reader):
    import bz2
    import gzip

    text = (b"SessionId\tItemId\tTime\n" if reader == "read_sessions" else b"") + b"".join(
        f"1,2014-04-07T10:51:09.{i:03d}Z,21453650{i % 10},0\n".encode() if reader == "read_clicks"
        else f"1\t{i}\t{i}.5\n".encode() for i in range(2000)
    )  # fmt: skip
    packed = (gzip.compress if suffix == ".gz" else bz2.compress)(text)
    data = b"this is not compressed at all\n" * 10 if damage == "garbage" else packed[: len(packed) // 2]
    path = tmp_path / f"data.txt{suffix}"
    path.write_bytes(data)
    with pytest.raises(DataFormatError, match=r"data\.txt" + suffix.replace(".", r"\.") + ": expected a valid"):
        getattr(gio, reader)(path)
