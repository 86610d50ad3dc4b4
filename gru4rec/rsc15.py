"""The RSC15 (YooChoose) preprocessing of the GRU4Rec papers, vectorised.

The rules are those of ``examples/rsc15/preprocess.py`` in the original GRU4Rec repository (Hidasi et al.):

1. drop sessions of length 1;
2. drop items with support < 5 (fewer than 5 events left after step 1);
3. drop sessions shorter than 2 (again, after step 2);
4. split by time: ``tmax`` is the last event time; sessions whose *last* event is at or after ``tmax - 86400`` (the
   final 24 hours) form the test set, the others ``train_full``;
5. drop test events whose item does not occur in ``train_full``, then test sessions shorter than 2;
6. split ``train_full`` the same way into ``train_tr`` and ``train_valid`` (the last 24 hours of ``train_full``).

Rows keep the input order (the original filters with boolean masks, which keep order too). One deliberate
difference: the original parses the timestamps with ``datetime.strptime(...).timestamp()``, i.e. in the machine's
local time zone; here timestamps are read as UTC (they end in ``Z``), so ``Time`` is the true unix time. Every split
boundary is relative (``tmax - 86400``), so the splits are the same unless a DST change falls in the last day.

:func:`split` works on a DataFrame (for notebooks: it returns the four frames and the funnel of counts after each
filter as data); :func:`prepare` reads a clicks file, splits it and writes the four TSV files and ``rsc15_stats.json``
(every write atomic). On a 33M-click file the whole of :func:`prepare` takes seconds, not minutes: pyarrow parses
the file, the filters are ``bincount`` passes over integer codes, and the writers format digits with numpy.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import pandas as pd

from gru4rec import io as gio
from gru4rec.io import ITEM_KEY, SESSION_KEY, TIME_KEY, PathLike

__all__ = [
    "DAY",
    "MIN_ITEM_SUPPORT",
    "FILES",
    "Rsc15Splits",
    "split",
    "split_arrays",
    "prepare",
    "funnel_frame",
]

DAY = 86400.0
MIN_ITEM_SUPPORT = 5
FILES = {
    "train_full": "rsc15_train_full.txt",
    "test": "rsc15_test.txt",
    "train_tr": "rsc15_train_tr.txt",
    "train_valid": "rsc15_train_valid.txt",
}
STATS_FILE = "rsc15_stats.json"


@dataclass
class _Events:
    """Column arrays of an event table plus dense session / item codes (shared code spaces)."""

    sessions: np.ndarray
    items: np.ndarray
    times: np.ndarray
    scode: np.ndarray  # int64 session code, 0 .. n_sessions_codes - 1
    icode: np.ndarray  # int64 item code, 0 .. n_item_codes - 1
    n_scodes: int
    n_icodes: int
    sessions_sorted: bool = False  # scode non-decreasing (sessions in contiguous blocks, in code order)

    def take(self, mask: np.ndarray) -> _Events:
        return _Events(
            self.sessions[mask], self.items[mask], self.times[mask], self.scode[mask], self.icode[mask],
            self.n_scodes, self.n_icodes, self.sessions_sorted,
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.sessions)

    def counts(self) -> dict:
        return {
            "events": int(len(self)),
            "sessions": int(np.count_nonzero(np.bincount(self.scode, minlength=self.n_scodes))),
            "items": int(np.count_nonzero(np.bincount(self.icode, minlength=self.n_icodes))),
        }

    def session_lengths(self) -> np.ndarray:
        return np.bincount(self.scode, minlength=self.n_scodes)

    def session_max_time(self) -> np.ndarray:
        out = np.full(self.n_scodes, -np.inf)
        if len(self) == 0:
            return out
        if self.sessions_sorted:
            starts = np.flatnonzero(np.r_[True, self.scode[1:] != self.scode[:-1]])
            out[self.scode[starts]] = np.maximum.reduceat(self.times, starts)
        else:
            np.maximum.at(out, self.scode, self.times)
        return out

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({SESSION_KEY: self.sessions, ITEM_KEY: self.items, TIME_KEY: self.times}, copy=False)


def _encode(sessions: np.ndarray, items: np.ndarray, times: np.ndarray) -> _Events:
    sessions = np.asarray(sessions, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    times = np.asarray(times, dtype=np.float64)
    if len(sessions) and not np.isfinite(times).all():
        raise ValueError("Time holds NaN or infinite values")
    # YooChoose lists each session's clicks together, in SessionId order: then codes are a cumulative sum.
    sorted_sessions = len(sessions) < 2 or bool(np.all(sessions[1:] >= sessions[:-1]))
    if sorted_sessions:
        scode = np.zeros(len(sessions), dtype=np.int64)
        if len(sessions):
            np.cumsum(sessions[1:] != sessions[:-1], out=scode[1:])
        n_scodes = int(scode[-1]) + 1 if len(sessions) else 0
    else:
        scode, uniques = pd.factorize(sessions, sort=False)
        scode = scode.astype(np.int64, copy=False)
        n_scodes = len(uniques)
    icode, item_uniques = pd.factorize(items, sort=False)
    return _Events(
        sessions, items, times, scode, icode.astype(np.int64, copy=False), n_scodes, len(item_uniques),
        sorted_sessions,
    )  # fmt: skip


def _time_split(events: _Events, days: float = 1.0) -> tuple[_Events, _Events, float]:
    """(before, last) by each session's last event vs ``tmax - days * DAY`` (the original's rule)."""
    if len(events) == 0:
        return events, events, float("nan")
    tmax = float(events.times.max())
    session_last = events.session_max_time()
    is_last = session_last >= tmax - days * DAY
    in_last = is_last[events.scode]
    return events.take(~in_last), events.take(in_last), tmax


def _filter_holdout(holdout: _Events, train: _Events, funnel: list, name: str) -> _Events:
    in_train = np.bincount(train.icode, minlength=train.n_icodes) > 0
    holdout = holdout.take(in_train[holdout.icode])
    funnel.append(_step(f"{name}: items not in train dropped", holdout))
    lengths = holdout.session_lengths()
    holdout = holdout.take(lengths[holdout.scode] >= 2)
    funnel.append(_step(f"{name}: sessions shorter than 2 dropped", holdout))
    return holdout


def _step(name: str, events: _Events) -> dict:
    return {"step": name, **events.counts()}


@dataclass
class Rsc15Splits:
    """The four splits (DataFrames with SessionId, ItemId, Time, in input order) and their statistics."""

    train_full: pd.DataFrame
    test: pd.DataFrame
    train_tr: pd.DataFrame
    train_valid: pd.DataFrame
    stats: dict = field(default_factory=dict)

    @property
    def funnel(self) -> pd.DataFrame:
        """Counts (events, sessions, items) after each filter, one row per step, in order."""
        return funnel_frame(self.stats)

    def frames(self) -> dict:
        return {name: getattr(self, name) for name in FILES}


def funnel_frame(stats: dict) -> pd.DataFrame:
    """The ``funnel`` of a stats dict (from :func:`split` or ``rsc15_stats.json``) as a DataFrame."""
    return pd.DataFrame(stats["funnel"], columns=["step", "events", "sessions", "items"])


def split_arrays(
    sessions: np.ndarray, items: np.ndarray, times: np.ndarray, min_item_support: int = MIN_ITEM_SUPPORT
) -> tuple[dict, dict]:
    """The RSC15 rules on column arrays: returns ({split name: _Events}, stats). See :func:`split`."""
    events = _encode(sessions, items, times)
    funnel = [_step("raw clicks", events)]
    lengths = events.session_lengths()
    events = events.take(lengths[events.scode] > 1)
    funnel.append(_step("sessions of length 1 dropped", events))
    support = np.bincount(events.icode, minlength=events.n_icodes)
    events = events.take(support[events.icode] >= min_item_support)
    funnel.append(_step(f"items with support < {min_item_support} dropped", events))
    lengths = events.session_lengths()
    events = events.take(lengths[events.scode] >= 2)
    funnel.append(_step("sessions shorter than 2 dropped", events))

    train_full, test, tmax = _time_split(events)
    funnel.append(_step("train_full (sessions ending before the last 24 h)", train_full))
    funnel.append(_step("test: sessions ending in the last 24 h", test))
    test = _filter_holdout(test, train_full, funnel, "test")

    train_tr, valid, tmax_train = _time_split(train_full)
    funnel.append(_step("train_tr (train_full sessions ending before its last 24 h)", train_tr))
    funnel.append(_step("train_valid: sessions ending in the last 24 h of train_full", valid))
    valid = _filter_holdout(valid, train_tr, funnel, "train_valid")

    parts = {"train_full": train_full, "test": test, "train_tr": train_tr, "train_valid": valid}
    stats = {
        "rules": "GRU4Rec examples/rsc15/preprocess.py",
        "min_item_support": int(min_item_support),
        "split_seconds": DAY,
        "tmax": tmax,
        "tmax_train_full": tmax_train,
        "funnel": funnel,
        "files": {},
    }
    for name, part in parts.items():
        counts = part.counts()
        counts["mean_session_length"] = counts["events"] / counts["sessions"] if counts["sessions"] else 0.0
        if len(part):
            counts["time_min"] = float(part.times.min())
            counts["time_max"] = float(part.times.max())
        stats["files"][name] = {"file": FILES[name], **counts}
    return parts, stats


def split(clicks: pd.DataFrame, min_item_support: int = MIN_ITEM_SUPPORT) -> Rsc15Splits:
    """Apply the RSC15 rules to a clicks frame (``SessionId``, ``ItemId``, ``Time``); nothing is written.

    Returns the four splits and ``stats``: ``funnel`` (events / sessions / items after each filter, in order; also
    as a DataFrame via ``.funnel``) and ``files`` (events, sessions, items, mean session length of each split).
    """
    missing = [c for c in (SESSION_KEY, ITEM_KEY, TIME_KEY) if c not in clicks.columns]
    if missing:
        raise ValueError(f"rsc15.split: the frame lacks column(s) {missing}")
    parts, stats = split_arrays(
        clicks[SESSION_KEY].to_numpy(),
        clicks[ITEM_KEY].to_numpy(),
        clicks[TIME_KEY].to_numpy(),
        min_item_support,
    )
    return Rsc15Splits(**{name: part.frame() for name, part in parts.items()}, stats=stats)


def _write_stats(stats: dict, path: str) -> None:
    with gio.atomic_write(path) as handle:
        json.dump(stats, handle, indent=2)
        handle.write("\n")


def prepare(
    clicks_path: PathLike,
    out_dir: PathLike,
    progress: Optional[Callable[[str], None]] = None,
    min_item_support: int = MIN_ITEM_SUPPORT,
    extra_stats: Optional[dict] = None,
) -> dict:
    """Read a yoochoose clicks file, apply the RSC15 rules, write the four TSV files and ``rsc15_stats.json``.

    Returns the stats dict (also written, except ``seconds``: the time of each phase). ``progress`` receives
    one-line messages for the long steps. ``extra_stats`` are merged into the JSON (e.g. the generator's parameters).
    """
    say = progress or (lambda message: None)
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    seconds = {}
    start = time.perf_counter()
    say(f"reading {os.fspath(clicks_path)}")
    sessions, items, times = gio._read_clicks_arrays(clicks_path)
    seconds["read"] = time.perf_counter() - start
    say(f"read {len(sessions):,} clicks in {seconds['read']:.1f} s; filtering and splitting")
    mark = time.perf_counter()
    parts, stats = split_arrays(sessions, items, times, min_item_support)
    del sessions, items, times
    seconds["filter_split"] = time.perf_counter() - mark
    for name, part in parts.items():
        mark = time.perf_counter()
        path = os.path.join(out_dir, FILES[name])
        say(f"writing {FILES[name]} ({len(part):,} events)")
        gio.write_sessions(part.frame(), path)
        seconds[f"write_{name}"] = time.perf_counter() - mark
    stats["source"] = os.path.basename(os.fspath(clicks_path))
    if extra_stats:
        stats.update(extra_stats)
    _write_stats(stats, os.path.join(out_dir, STATS_FILE))  # no timings in the file: same input, same bytes
    seconds["total"] = time.perf_counter() - start
    stats["seconds"] = {key: round(value, 3) for key, value in seconds.items()}
    return stats


def update_stats(out_dir: PathLike, **entries) -> dict:
    """Merge ``entries`` into an existing ``rsc15_stats.json`` (atomically) and return the result."""
    path = os.path.join(os.fspath(out_dir), STATS_FILE)
    with open(path, encoding="utf-8") as handle:
        stats = json.load(handle)
    stats.update(entries)
    _write_stats(stats, path)
    return stats
