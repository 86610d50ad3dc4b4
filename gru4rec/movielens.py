"""MovieLens ratings as sessions: real data beside the synthetic presets (no ceiling is known for it).

A session is a burst of one user's ratings: the user's ratings in time order, cut wherever two consecutive ratings
are more than ``session_gap`` seconds apart (default one hour). ``ItemId`` is the movie, ``Time`` the rating's unix
time, ``SessionId`` a running number in the order of (user, time). The kit does not ship the data (GroupLens'
terms do not allow redistribution); point :func:`prepare` at a copy you have:

- the GroupLens ``u.data`` of ML-100K (TAB-separated ``user item rating timestamp``, no header),
- the GroupLens ``ratings.dat`` of ML-1M / ML-10M (``user::item::rating::timestamp``),
- a RecBole atomic file such as ``ml-100k.inter`` (a header of ``name:type`` fields; the RecBole wheel on PyPI ships
  ``recbole/dataset_example/ml-100k/ml-100k.inter``).

MovieLens users often rate many movies within the same second, so time alone does not order a session. The order
is made explicit and the same for every reader: equal timestamps are ordered by ItemId and spread 1 ms apart
(``Time`` + k/1000 for the k-th rating of that second), so that codes that sort by (SessionId, Time), such as the
official GRU4Rec codes, see the same sequences as the kit.

The split (:func:`split_by_time`) holds out whole sessions, as the RSC15 rules do: sessions ordered by their last
rating, the last ``test_fraction`` of them (default a quarter) are the test set; test ratings of movies absent from
training are dropped and test sessions left with fewer than 2 ratings removed; training sessions of one rating are
dropped (they hold no next-item pair). ``train_tr`` / ``train_valid`` split
``train_full`` the same way. Files: :data:`FILES` (the GRU4Rec TSV format) and ``movielens_stats.json``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd

from gru4rec import io as gio
from gru4rec.io import ITEM_KEY, SESSION_KEY, TIME_KEY, DataFormatError, PathLike

__all__ = [
    "FILES", "STATS_FILE", "read_ratings", "order_events", "sessionize", "split_by_time", "prepare", "is_complete",
]  # fmt: skip

FILES = {
    "train_full": "movielens_train_full.txt",
    "test": "movielens_test.txt",
    "train_tr": "movielens_train_tr.txt",
    "train_valid": "movielens_train_valid.txt",
}
STATS_FILE = "movielens_stats.json"
_RECBOLE_FIELDS = {"user_id": SESSION_KEY, "item_id": ITEM_KEY, "timestamp": TIME_KEY}
INT64_LIMIT = 2**63


def _read_table(path: Path, expected: str, **kwargs) -> pd.DataFrame:
    """``pd.read_csv`` whose tokenizer errors ("C error: Expected 4 fields in line 6, saw 5") name the file and
    line as :class:`DataFormatError` does."""
    try:
        return pd.read_csv(path, **kwargs)
    except pd.errors.ParserError as error:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error))
        if found:
            raise DataFormatError(path, int(found.group(2)), None, expected, f"{found.group(3)} fields") from None
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataFormatError(path, None, None, expected, first[:200]) from None


def _check_integers(path: PathLike, line_offset: int, column_names: list, frame: pd.DataFrame) -> None:
    """Raise DataFormatError at the first field of ``frame`` (strings) that is not a non-negative integer."""
    for position, name in enumerate(column_names):
        values = frame[name]
        bad = ~values.str.fullmatch(r"\d+")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataFormatError(path, row + line_offset, f"{position + 1} ({name})", "a non-negative integer",
                                  repr(values.iloc[row]))  # fmt: skip
        long = values.str.len() > 18  # 19+ digits may not fit int64: compared exactly
        too_big = long & values.map(lambda text: len(text) > 18 and int(text) >= INT64_LIMIT) if long.any() else long
        if too_big.any():
            row = int(np.flatnonzero(too_big.to_numpy())[0])
            raise DataFormatError(path, row + line_offset, f"{position + 1} ({name})",
                                  "a non-negative integer below 2**63 (int64)", repr(values.iloc[row]))  # fmt: skip


def read_ratings(path: PathLike) -> pd.DataFrame:
    """A MovieLens ratings file (``u.data``, ``ratings.dat`` or a RecBole ``.inter``) as a DataFrame with
    ``SessionId`` (the user), ``ItemId`` and ``Time`` (unix seconds), one row per rating, in file order.
    Raises DataFormatError naming the file, line and column of the first field that is not as expected."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(21, "is a folder, expected the ratings file (u.data, ratings.dat or .inter)", str(path))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected MovieLens ratings: u.data, ratings.dat or .inter)")
    with open(path, encoding="utf-8", errors="replace") as handle:
        first = handle.readline(gio.MAX_LINE_BYTES + 1)  # bounded: a file without newlines is not read whole
    if len(first) > gio.MAX_LINE_BYTES and not first.endswith("\n"):
        raise DataFormatError(path, 1, None, f"lines of at most {gio.MAX_LINE_BYTES >> 20} MiB",
                              f"a longer line (no line break in its first {gio.MAX_LINE_BYTES:,} characters)")
    first = first.rstrip("\r\n")
    if not first:
        raise DataFormatError(path, 1, None, "MovieLens ratings (u.data, ratings.dat or a RecBole .inter)",
                              "an empty file")  # fmt: skip
    if ":token" in first or ":float" in first:  # a RecBole atomic file: its header names the fields
        header = [field.split(":", 1)[0] for field in first.split("\t")]
        missing = [name for name in _RECBOLE_FIELDS if name not in header]
        if missing:
            raise DataFormatError(path, 1, None, "a header with user_id:token, item_id:token and timestamp:float",
                                  f"{first!r}, which has no field {', '.join(missing)}")  # fmt: skip
        raw = _read_table(path, f"{len(header)} TAB-separated fields as in the header", sep="\t", header=0,
                          names=header, dtype=str, keep_default_na=False)  # fmt: skip
        raw = raw[list(_RECBOLE_FIELDS)]
        line_offset = 2
    else:
        sep = "::" if "::" in first else "\t"
        names = ["user_id", "item_id", "rating", "timestamp"]
        n_fields = len(first.split(sep))
        if n_fields != 4:
            raise DataFormatError(path, 1, None, "4 fields (user, item, rating, timestamp) separated by "
                                  f"{'::' if sep == '::' else 'TAB'}", f"{n_fields}: {first!r}")  # fmt: skip
        expected = f"4 fields (user, item, rating, timestamp) separated by {'::' if sep == '::' else 'TAB'}"
        raw = _read_table(path, expected, sep=sep, header=None, names=names, dtype=str,
                          engine="python" if sep == "::" else "c", keep_default_na=False)  # fmt: skip
        raw = raw[list(_RECBOLE_FIELDS)]
        line_offset = 1
    if raw.isna().any().any():
        row = int(np.flatnonzero(raw.isna().any(axis=1).to_numpy())[0])
        raise DataFormatError(path, row + line_offset, None, "user, item and timestamp fields", "a missing field")
    ids = raw[["user_id", "item_id"]].apply(lambda column: column.str.replace(r"\.0+$", "", regex=True))
    _check_integers(path, line_offset, ["user_id", "item_id"], ids)
    times = pd.to_numeric(raw["timestamp"], errors="coerce")
    bad = ~np.isfinite(times.to_numpy(np.float64))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        found = repr(raw["timestamp"].iloc[row])
        raise DataFormatError(path, row + line_offset, "3 (timestamp)", "unix seconds", found)
    return pd.DataFrame({
        SESSION_KEY: ids["user_id"].astype(np.int64).to_numpy(),
        ITEM_KEY: ids["item_id"].astype(np.int64).to_numpy(),
        TIME_KEY: times.to_numpy(np.float64),
    })  # fmt: skip


def order_events(ratings: pd.DataFrame) -> pd.DataFrame:
    """A new frame sorted by (user, time, item) in which no two ratings of a user share a ``Time``: the k-th rating
    (k = 0, 1, ...) of a user within one second gets ``Time + k / 1000``."""
    ordered = ratings.sort_values([SESSION_KEY, TIME_KEY, ITEM_KEY], kind="stable").reset_index(drop=True)
    rank = ordered.groupby([SESSION_KEY, TIME_KEY], sort=False).cumcount().to_numpy()
    return ordered.assign(**{TIME_KEY: ordered[TIME_KEY].to_numpy() + rank / 1000.0})


def sessionize(events: pd.DataFrame, session_gap: float = 3600.0) -> pd.DataFrame:
    """A new frame from :func:`order_events`' output whose ``SessionId`` numbers the sessions (1, 2, ...): a user's
    ratings cut wherever two consecutive ones are more than ``session_gap`` seconds apart."""
    if not session_gap > 0:
        raise ValueError(f"session_gap: expected a number of seconds > 0, got {session_gap!r}")
    users = events[SESSION_KEY].to_numpy()
    times = events[TIME_KEY].to_numpy()
    starts = np.r_[True, (users[1:] != users[:-1]) | (times[1:] - times[:-1] > session_gap)]
    return events.assign(**{SESSION_KEY: np.cumsum(starts).astype(np.int64)})


def split_by_time(events: pd.DataFrame, test_fraction: float = 0.25, min_length: int = 2, what: str = "the sessions",
                  names: tuple = ("training", "test")) -> tuple:  # fmt: skip
    """``(train, test)``: the last ``test_fraction`` of the sessions by their last rating are the test set; test
    ratings of items absent from training are dropped, then sessions (of both) with fewer than ``min_length``.
    A split that leaves either side empty is a ValueError naming ``what`` was split, the counts and the fraction."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}")
    last = events.groupby(SESSION_KEY)[TIME_KEY].max().sort_values(kind="stable")
    n_test = max(1, int(round(len(last) * test_fraction)))
    if n_test >= len(last):
        raise ValueError(
            f"test_fraction {test_fraction:g}: holding out {n_test} of the {len(last)} sessions of {what} leaves "
            f"no {names[0]} session; use a smaller test fraction (or more data)"
        )
    test_users = last.index[-n_test:]
    is_test = events[SESSION_KEY].isin(test_users).to_numpy()
    train, test = events[~is_test], events[is_test]
    train = train[train.groupby(SESSION_KEY)[ITEM_KEY].transform("size") >= min_length]
    test = test[test[ITEM_KEY].isin(train[ITEM_KEY].unique())]
    test = test[test.groupby(SESSION_KEY)[ITEM_KEY].transform("size") >= min_length]
    for name, part in zip(names, (train, test)):
        if len(part) == 0:
            raise ValueError(
                f"test_fraction {test_fraction:g}: splitting the {len(last)} sessions of {what} leaves no {name} "
                f"session of {min_length}+ ratings (of movies rated in training); use another test fraction"
            )
    return train.reset_index(drop=True), test.reset_index(drop=True)


def _split_stats(frame: pd.DataFrame, name: str) -> dict:
    sessions = frame[SESSION_KEY].nunique()
    return {"file": name, "events": int(len(frame)), "sessions": int(sessions),
            "items": int(frame[ITEM_KEY].nunique()), "mean_session_length": len(frame) / max(sessions, 1)}  # fmt: skip


def is_complete(out_dir: PathLike) -> bool:
    """Whether ``out_dir`` holds a finished :func:`prepare` (its stats file is written last)."""
    return (Path(out_dir) / STATS_FILE).is_file()


def prepare(
    ratings_path: PathLike,
    out_dir: PathLike,
    test_fraction: float = 0.25,
    session_gap: float = 3600.0,
    progress: Optional[Callable[[str], None]] = None,
) -> dict:
    """Read MovieLens ratings, order them, cut them into sessions, split them and write :data:`FILES` and
    :data:`STATS_FILE` into ``out_dir``. The files are written into a staging folder beside it and moved in, the
    stats file last."""
    say = progress or (lambda message: None)
    say(f"reading {ratings_path}")
    ordered = order_events(read_ratings(ratings_path))
    n_users = int(ordered[SESSION_KEY].nunique())
    events = sessionize(ordered, session_gap)
    train_full, test = split_by_time(events, test_fraction, what=str(ratings_path))
    train_tr, train_valid = split_by_time(train_full, test_fraction, what=f"the training split ({FILES['train_full']})",
                                          names=("train_tr", "validation"))  # fmt: skip
    splits = {"train_full": train_full, "test": test, "train_tr": train_tr, "train_valid": train_valid}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    staging = out / ".staging-movielens"
    shutil.rmtree(staging, ignore_errors=True)  # the leftovers of a killed run
    staging.mkdir()
    stats = {"source": str(ratings_path), "ratings": int(len(events)), "users": n_users,
             "items": int(events[ITEM_KEY].nunique()), "sessions": int(events[SESSION_KEY].nunique()),
             "session_gap": session_gap, "test_fraction": test_fraction, "files": {}}  # fmt: skip
    for key, frame in splits.items():
        say(f"writing {FILES[key]} ({len(frame):,} ratings)")
        gio.write_sessions(frame, staging / FILES[key])
        stats["files"][key] = _split_stats(frame, FILES[key])
    (out / STATS_FILE).unlink(missing_ok=True)  # a folder whose files are being replaced is not complete
    for key in splits:
        os.replace(staging / FILES[key], out / FILES[key])
    shutil.rmtree(staging, ignore_errors=True)
    with gio.atomic_write(out / STATS_FILE) as handle:
        json.dump(stats, handle, indent=2)
        handle.write("\n")
    return stats
