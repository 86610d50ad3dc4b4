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
(the set is written into a staging folder and moved in with ``rsc15_stats.json`` last, the set's completion
marker: :func:`is_complete`). On a 33M-click file the whole of :func:`prepare` takes seconds, not minutes: pyarrow
parses the file, the filters are ``bincount`` passes over integer codes, and the writers format digits with numpy.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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
    "funnel_branches",
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
class _Base:
    """The click arrays with dense session / item codes; every filter stage is a boolean row mask over it.

    Sessions that come in contiguous blocks (as in yoochoose-clicks.dat, listed by SessionId) are handled with
    ``reduceat`` / ``repeat`` over the blocks, otherwise with integer session codes. Masked sums send the rows left out
    to a spare last bin of ``bincount`` (``np.where(mask, code, n)``) rather than compressing the arrays.
    """

    sessions: np.ndarray
    items: np.ndarray
    times: np.ndarray
    icode: np.ndarray  # int32 item code 0 .. n_icodes - 1
    n_icodes: int
    n_scodes: int
    starts: Optional[np.ndarray] = None  # first row of each session block (contiguous sessions)
    run_lengths: Optional[np.ndarray] = None  # rows of each session block
    scode: Optional[np.ndarray] = None  # int64 session code of each row (sessions not contiguous)
    item_uniques: Optional[np.ndarray] = None  # ItemId of each item code
    full_max_time: Optional[np.ndarray] = None  # last event time of each session block over all rows (cached)

    def __len__(self) -> int:
        return len(self.sessions)

    def session_lengths(self, mask: np.ndarray) -> np.ndarray:
        if self.starts is not None:
            if len(self.starts) == 0:
                return np.zeros(0, dtype=np.int64)
            # running count of kept rows, read at the session boundaries (faster than add.reduceat over the blocks)
            running = np.empty(len(mask) + 1, dtype=np.int32 if len(mask) < 2**31 else np.int64)
            running[0] = 0
            np.cumsum(mask, dtype=running.dtype, out=running[1:])
            bounds = running[self.starts]
            return np.diff(bounds, append=running[-1]).astype(np.int64)
        return np.bincount(np.where(mask, self.scode, self.n_scodes), minlength=self.n_scodes + 1)[:-1]

    def item_support(self, mask: np.ndarray) -> np.ndarray:
        return np.bincount(np.where(mask, self.icode, self.n_icodes), minlength=self.n_icodes + 1)[:-1]

    def expand(self, session_flags: np.ndarray) -> np.ndarray:
        """Per-session booleans -> per-row booleans."""
        if self.starts is not None:
            return np.repeat(session_flags, self.run_lengths)
        return session_flags[self.scode]

    def session_max_time(self, mask: np.ndarray, lengths: Optional[np.ndarray] = None) -> np.ndarray:
        """Last event time of each session among the rows of ``mask`` (-inf where none); ``lengths``: kept rows per
        session, if known (then only the sessions that lost some of their rows are recomputed)."""
        if len(self) == 0:
            return np.full(self.n_scodes, -np.inf)
        if self.starts is not None and lengths is not None:
            if self.full_max_time is None:
                self.full_max_time = np.maximum.reduceat(self.times, self.starts)
            whole = lengths == self.run_lengths
            partial = ~whole & (lengths > 0)
            out = np.where(whole, self.full_max_time, -np.inf)
            rows = np.flatnonzero(self.expand(partial) & mask)
            np.maximum.at(out, np.searchsorted(self.starts, rows, side="right") - 1, self.times[rows])
            return out
        masked = np.where(mask, self.times, -np.inf)
        if self.starts is not None:
            return np.maximum.reduceat(masked, self.starts)
        out = np.full(self.n_scodes, -np.inf)
        np.maximum.at(out, self.scode, masked)
        return out

    def stage(self, mask: np.ndarray) -> _Stage:
        if np.count_nonzero(mask) > len(mask) // 8:  # dense: full passes without compressing the arrays
            return _Stage(mask, self.session_lengths(mask), self.item_support(mask))
        # sparse (the holdout sets): work on the few rows
        return _Stage(mask, *self._row_counts(np.flatnonzero(mask)))

    def _row_counts(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Events per session and per item among ``rows`` (row indices)."""
        if self.starts is not None:
            sessions = np.searchsorted(self.starts, rows, side="right") - 1
        else:
            sessions = self.scode[rows]
        return np.bincount(sessions, minlength=self.n_scodes), np.bincount(self.icode[rows], minlength=self.n_icodes)

    def narrow(self, previous: _Stage, mask: np.ndarray) -> _Stage:
        """The stage of ``mask``, a subset of ``previous.mask``: the previous counts minus those of the rows dropped.

        Each filter drops few rows, so counting the dropped rows is much cheaper than recounting the kept ones.
        """
        dropped = np.flatnonzero(previous.mask & ~mask)
        if len(dropped) * 4 > len(self):
            return self.stage(mask)
        lengths, support = self._row_counts(dropped)
        return _Stage(mask, previous.lengths - lengths, previous.support - support)

    def frame(self, mask: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(
            {SESSION_KEY: self.sessions[mask], ITEM_KEY: self.items[mask], TIME_KEY: self.times[mask]}, copy=False
        )


@dataclass
class _Stage:
    """A row mask with its events per session and per item."""

    mask: np.ndarray
    lengths: np.ndarray
    support: np.ndarray

    def counts(self) -> dict:
        return {
            "events": int(self.lengths.sum()),
            "sessions": int(np.count_nonzero(self.lengths)),
            "items": int(np.count_nonzero(self.support)),
        }


def _encode(sessions: np.ndarray, items: np.ndarray, times: np.ndarray) -> _Base:
    sessions = np.asarray(sessions, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    times = np.asarray(times, dtype=np.float64)
    if len(sessions) and not np.isfinite(times).all():
        raise ValueError("Time holds NaN or infinite values")
    # pyarrow's hash encoding: about twice as fast as pandas.factorize here, and int32 codes (half the memory)
    encoded = pc.dictionary_encode(pa.array(items, type=pa.int64()), memory_pool=pa.system_memory_pool())
    item_uniques = encoded.dictionary.to_numpy()
    base = _Base(sessions, items, times, encoded.indices.to_numpy(), len(item_uniques), 0)
    base.item_uniques = np.asarray(item_uniques, dtype=np.int64)
    # yoochoose lists each session's clicks together: then sessions are blocks of rows
    if len(sessions) == 0 or bool(np.all(sessions[1:] >= sessions[:-1])):
        new_session = np.empty(len(sessions), dtype=bool)
        new_session[:1] = True
        np.not_equal(sessions[1:], sessions[:-1], out=new_session[1:])
        base.starts = np.flatnonzero(new_session)
        del new_session
        base.run_lengths = np.diff(np.append(base.starts, len(sessions)))
        base.n_scodes = len(base.starts)
    else:
        scode, uniques = pd.factorize(sessions, sort=False)
        base.scode, base.n_scodes = scode.astype(np.int64, copy=False), len(uniques)
    return base


def _time_split(base: _Base, stage: _Stage, days: float = 1.0) -> tuple[np.ndarray, np.ndarray, float]:
    """(before, last) row masks by each session's last event vs ``tmax - days * DAY`` (the original's rule), and
    the per-session flag of the last part."""
    if not stage.mask.any():
        return stage.mask, np.zeros(base.n_scodes, dtype=bool), float("nan")
    session_last = base.session_max_time(stage.mask, stage.lengths)
    tmax = float(session_last.max())
    is_last = session_last >= tmax - days * DAY
    return stage.mask & ~base.expand(is_last), is_last, tmax


def _filter_holdout(base: _Base, holdout: _Stage, train: _Stage, funnel: list, name: str) -> _Stage:
    holdout = base.stage(holdout.mask & (train.support > 0)[base.icode])
    funnel.append({"step": f"{name}: items not in train dropped", **holdout.counts()})
    holdout = base.stage(holdout.mask & base.expand(holdout.lengths >= 2))
    funnel.append({"step": f"{name}: sessions shorter than 2 dropped", **holdout.counts()})
    return holdout


def _split_off_last_day(base: _Base, stage: _Stage) -> tuple[_Stage, _Stage, float]:
    before_mask, is_last, tmax = _time_split(base, stage)
    before = base.narrow(stage, before_mask)
    last = _Stage(stage.mask & ~before_mask, stage.lengths * is_last, stage.support - before.support)
    return before, last, tmax


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


def funnel_branches(stats: dict) -> dict:
    """The funnel of a stats dict cut into its three chains, each one a DataFrame whose counts can only fall.

    The funnel lists the steps in the order they run, but after the filters the data forks: ``"train"`` is raw
    clicks → the three filters → ``train_full`` → ``train_tr``; ``"test"`` is the filtered clicks → the last day's
    sessions → its two clean-up steps; ``"train_valid"`` is ``train_full`` → the last day of ``train_full`` → its
    clean-up steps. Each chain starts from the step it branches off, so every row is a subset of the row before.
    """
    frame = funnel_frame(stats)
    is_test = frame["step"].str.startswith("test")
    is_valid = frame["step"].str.startswith("train_valid")
    is_train = ~(is_test | is_valid)
    train = frame[is_train]
    full = train[train["step"].str.startswith("train_full")]
    if len(full) != 1:
        raise ValueError("funnel_branches: the funnel has no single 'train_full' step (not from rsc15.split?)")
    filtered = train.loc[: full.index[0] - 1].iloc[-1:]  # the last filter before the time split
    return {
        "train": train.reset_index(drop=True),
        "test": pd.concat([filtered, frame[is_test]]).reset_index(drop=True),
        "train_valid": pd.concat([full, frame[is_valid]]).reset_index(drop=True),
    }


def split_arrays(
    sessions: np.ndarray, items: np.ndarray, times: np.ndarray, min_item_support: int = MIN_ITEM_SUPPORT
) -> tuple[_Base, dict, dict]:
    """The RSC15 rules on column arrays: (base, {split name: boolean row mask}, stats). See :func:`split`."""
    base = _encode(sessions, items, times)
    everything = np.ones(len(base), dtype=bool)
    raw_lengths = base.run_lengths if base.run_lengths is not None else np.bincount(base.scode)
    raw = _Stage(everything, raw_lengths, np.bincount(base.icode, minlength=base.n_icodes))
    funnel = [{"step": "raw clicks", **raw.counts()}]
    stage = base.narrow(raw, base.expand(raw.lengths > 1))
    funnel.append({"step": "sessions of length 1 dropped", **stage.counts()})
    stage = base.narrow(stage, stage.mask & (stage.support >= min_item_support)[base.icode])
    funnel.append({"step": f"items with support < {min_item_support} dropped", **stage.counts()})
    stage = base.narrow(stage, stage.mask & base.expand(stage.lengths >= 2))
    funnel.append({"step": "sessions shorter than 2 dropped", **stage.counts()})

    train_full, test, tmax = _split_off_last_day(base, stage)
    funnel.append({"step": "train_full (sessions ending before the last 24 h)", **train_full.counts()})
    funnel.append({"step": "test: sessions ending in the last 24 h", **test.counts()})
    test = _filter_holdout(base, test, train_full, funnel, "test")

    train_tr, valid, tmax_train = _split_off_last_day(base, train_full)
    funnel.append({"step": "train_tr (train_full sessions ending before its last 24 h)", **train_tr.counts()})
    funnel.append({"step": "train_valid: sessions ending in the last 24 h of train_full", **valid.counts()})
    valid = _filter_holdout(base, valid, train_tr, funnel, "train_valid")

    stages = {"train_full": train_full, "test": test, "train_tr": train_tr, "train_valid": valid}
    stats = {
        "rules": "GRU4Rec examples/rsc15/preprocess.py",
        "min_item_support": int(min_item_support),
        "split_seconds": DAY,
        "tmax": tmax,
        "tmax_train_full": tmax_train,
        "funnel": funnel,
        "files": {},
    }
    for name, part in stages.items():
        counts = part.counts()
        counts["mean_session_length"] = counts["events"] / counts["sessions"] if counts["sessions"] else 0.0
        if counts["events"]:
            counts["time_min"] = float(np.min(base.times, where=part.mask, initial=np.inf))
            counts["time_max"] = float(np.max(base.times, where=part.mask, initial=-np.inf))
        stats["files"][name] = {"file": FILES[name], **counts}
    return base, {name: part.mask for name, part in stages.items()}, stats


def split(clicks: pd.DataFrame, min_item_support: int = MIN_ITEM_SUPPORT) -> Rsc15Splits:
    """Apply the RSC15 rules to a clicks frame (``SessionId``, ``ItemId``, ``Time``); nothing is written.

    Returns the four splits and ``stats``: ``funnel`` (events / sessions / items after each filter, in order; also
    as a DataFrame via ``.funnel``) and ``files`` (events, sessions, items, mean session length of each split).
    """
    missing = [c for c in (SESSION_KEY, ITEM_KEY, TIME_KEY) if c not in clicks.columns]
    if missing:
        raise ValueError(f"rsc15.split: the frame lacks column(s) {missing}")
    base, masks, stats = split_arrays(
        clicks[SESSION_KEY].to_numpy(),
        clicks[ITEM_KEY].to_numpy(),
        clicks[TIME_KEY].to_numpy(),
        min_item_support,
    )
    return Rsc15Splits(**{name: base.frame(mask) for name, mask in masks.items()}, stats=stats)


def _write_stats(stats: dict, path: str) -> None:
    with gio.atomic_write(path) as handle:
        json.dump(stats, handle, indent=2)
        handle.write("\n")


STAGING_PREFIX = ".prepare-"


def remove_leftovers(out_dir: PathLike) -> list:
    """Remove what a killed :func:`prepare` left in ``out_dir``: its staging folders and the temporary files of
    ``io.atomic_write`` for the set's files. Returns the removed paths."""
    out_dir = os.fspath(out_dir)
    names = set(FILES.values()) | {STATS_FILE}
    removed = []
    for entry in os.listdir(out_dir):
        path = os.path.join(out_dir, entry)
        if entry.startswith(STAGING_PREFIX) and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        elif entry.endswith(".tmp") and any(entry.startswith(f".{name}.") for name in names):
            with contextlib.suppress(OSError):
                os.remove(path)
                removed.append(path)
    return removed


def _publish(staging: str, out_dir: str) -> None:
    """Move a complete set from ``staging`` into ``out_dir``: the old stats file (the set's completion marker) goes
    first, the new one last, so a kill in between leaves a folder without stats, which counts as incomplete
    (:func:`is_complete`), never a silent mix of old and new files."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(out_dir, STATS_FILE))
    for name in FILES.values():
        os.replace(os.path.join(staging, name), os.path.join(out_dir, name))
    os.replace(os.path.join(staging, STATS_FILE), os.path.join(out_dir, STATS_FILE))


def is_complete(out_dir: PathLike) -> bool:
    """Whether ``out_dir`` holds a whole set written by :func:`prepare` (the stats file, written last, and the four
    files)."""
    out_dir = os.fspath(out_dir)
    return all(os.path.isfile(os.path.join(out_dir, name)) for name in (*FILES.values(), STATS_FILE))


def prepare(
    clicks_path: PathLike,
    out_dir: PathLike,
    progress: Optional[Callable[[str], None]] = None,
    min_item_support: int = MIN_ITEM_SUPPORT,
    extra_stats: Optional[dict] = None,
) -> dict:
    """Read a yoochoose clicks file, apply the RSC15 rules, write the four TSV files and ``rsc15_stats.json``.

    Returns the stats dict (also written, except ``seconds`` and ``cpu_seconds``: wall and CPU time per phase).
    ``progress`` receives one-line messages for the long steps. ``extra_stats`` are merged into the JSON (e.g. the
    generator's parameters).
    """
    say = progress or (lambda message: None)
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise NotADirectoryError(f"{out_dir}: is a file, expected the output folder")
    os.makedirs(out_dir, exist_ok=True)
    remove_leftovers(out_dir)
    seconds, cpu = {}, {}
    start, cpu_start = time.perf_counter(), time.process_time()
    say(f"reading {os.fspath(clicks_path)}")
    sessions, items, times = gio._read_clicks_arrays(clicks_path)
    seconds["read"] = time.perf_counter() - start
    cpu["read"] = time.process_time() - cpu_start
    say(f"read {len(sessions):,} clicks in {seconds['read']:.1f} s; filtering and splitting")
    mark, cpu_mark = time.perf_counter(), time.process_time()
    base, masks, stats = split_arrays(sessions, items, times, min_item_support)
    del sessions, items, times
    seconds["filter_split"] = time.perf_counter() - mark
    cpu["filter_split"] = time.process_time() - cpu_mark
    mark, cpu_mark = time.perf_counter(), time.process_time()
    events = sum(stats["files"][name]["events"] for name in FILES)
    say(f"writing {', '.join(FILES.values())} ({events:,} rows)")
    stats["source"] = os.path.basename(os.fspath(clicks_path))
    if extra_stats:
        stats.update(extra_stats)
    staging = tempfile.mkdtemp(dir=out_dir, prefix=STAGING_PREFIX)
    try:
        gio.write_sessions_arrays(
            base.sessions,
            base.items,
            base.times,
            [(os.path.join(staging, FILES[name]), masks[name]) for name in FILES],
            item_codes=(base.icode, base.item_uniques),
        )
        _write_stats(stats, os.path.join(staging, STATS_FILE))  # no timings in the file: same input, same bytes
        _publish(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    seconds["write"] = time.perf_counter() - mark
    cpu["write"] = time.process_time() - cpu_mark
    seconds["total"] = time.perf_counter() - start
    cpu["total"] = time.process_time() - cpu_start
    stats["seconds"] = {key: round(value, 3) for key, value in seconds.items()}
    stats["cpu_seconds"] = {key: round(value, 3) for key, value in cpu.items()}
    return stats


def update_stats(out_dir: PathLike, **entries) -> dict:
    """Merge ``entries`` into an existing ``rsc15_stats.json`` (atomically) and return the result."""
    path = os.path.join(os.fspath(out_dir), STATS_FILE)
    with open(path, encoding="utf-8") as handle:
        stats = json.load(handle)
    stats.update(entries)
    _write_stats(stats, path)
    return stats
