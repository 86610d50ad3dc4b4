"""Sessions as flat numpy arrays: the item-id map and the session-sorted event table.

GRU4Rec never pads. A data set is one array of item indices, sorted session by session, plus the offsets where each
session starts (``items[offsets[s]:offsets[s + 1]]`` is session ``s``). Sessions are ordered by the time of their first
event, as in the official code, so session-parallel mini-batches walk through them in time order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import pandas as pd

SESSION_KEY = "SessionId"
ITEM_KEY = "ItemId"
TIME_KEY = "Time"

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True, eq=False)
class ItemMap:
    """The bijection between original ``ItemId`` values and dense item indices ``0 .. n_items - 1``."""

    ids: np.ndarray  # (n_items,) int64: index -> original ItemId

    def __post_init__(self) -> None:
        ids = np.asarray(self.ids, dtype=np.int64)
        if ids.ndim != 1:
            raise ValueError(f"ItemMap ids must be one-dimensional, got shape {ids.shape}")
        if len(np.unique(ids)) != len(ids):
            raise ValueError("ItemMap ids must be unique")
        object.__setattr__(self, "ids", ids)

    @classmethod
    def from_ids(cls, item_ids: np.ndarray) -> ItemMap:
        """Map of the distinct values of ``item_ids``, in increasing ItemId order."""
        return cls(np.unique(np.asarray(item_ids, dtype=np.int64)))

    @property
    def n_items(self) -> int:
        return len(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def index_of(self, item_ids: np.ndarray) -> np.ndarray:
        """Item indices (int64) of ``item_ids``; -1 where an id is not in the map."""
        item_ids = np.asarray(item_ids, dtype=np.int64)
        if len(self.ids) == 0:
            return np.full(item_ids.shape, -1, dtype=np.int64)
        order = np.argsort(self.ids, kind="stable")
        sorted_ids = self.ids[order]
        pos = np.clip(np.searchsorted(sorted_ids, item_ids), 0, len(sorted_ids) - 1)
        found = sorted_ids[pos] == item_ids
        return np.where(found, order[pos], -1).astype(np.int64)

    def save(self, path: PathLike) -> None:
        """Write ``items.tsv``: header ``ItemId``, one id per line, row order = item index (atomic)."""
        tmp = f"{os.fspath(path)}.tmp-{os.getpid()}"
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(ITEM_KEY + "\n")
                handle.write("".join(f"{int(item)}\n" for item in self.ids))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def load(cls, path: PathLike) -> ItemMap:
        with open(path, encoding="utf-8") as handle:
            header = handle.readline().strip()
            if header != ITEM_KEY:
                raise ValueError(f"{path}:1: expected the header '{ITEM_KEY}', found {header!r}")
            ids = []
            first_line: dict = {}
            for line_no, line in enumerate(handle, start=2):
                text = line.strip()
                try:
                    if len(text) > 20:
                        raise ValueError
                    item = int(text)
                except ValueError:
                    found = repr(text if len(text) <= 40 else text[:37] + "...")
                    raise ValueError(f"{path}:{line_no}: expected an integer ItemId, found {found}") from None
                if not -(2**63) <= item < 2**63:
                    raise ValueError(f"{path}:{line_no}: expected an ItemId that fits in 64 bits, found {item}")
                if item in first_line:
                    raise ValueError(
                        f"{path}:{line_no}: ItemId {item} appears again (first on line {first_line[item]}); "
                        "expected each ItemId once"
                    )
                first_line[item] = line_no
                ids.append(item)
        return cls(np.asarray(ids, dtype=np.int64))


_IN_ORDER = np.zeros(0, dtype=np.int64)  # marker: the events are in order already


def _order_of_grouped(sessions: np.ndarray, times: np.ndarray) -> Optional[np.ndarray]:
    """The order of :meth:`SessionData.from_frame`'s stable sort by (session start, SessionId, Time), computed
    without sorting the events when every session's events are contiguous and in time order (how GRU4Rec files are
    written): then only the sessions are sorted. None when the events are not laid out so (the general sort runs)."""
    n = len(sessions)
    if n == 0:
        return None
    cut = np.flatnonzero(sessions[1:] != sessions[:-1]) + 1
    starts = np.concatenate([[0], cut])
    run_ids = sessions[starts]
    if len(run_ids) > 1 and not np.all(run_ids[1:] > run_ids[:-1]):
        if len(pd.unique(run_ids)) != len(run_ids):
            return None  # a session comes back after another one: not contiguous
    step = times[1:] >= times[:-1]
    step[cut - 1] = True  # across a session boundary anything goes
    if not step.all():
        return None  # times out of order inside a session
    session_start = times[starts]  # the first event of a sorted session is its earliest
    by_session = np.lexsort((run_ids, session_start))
    if np.all(by_session[1:] > by_session[:-1]):
        return _IN_ORDER
    lengths = np.diff(np.concatenate([starts, [n]]))
    lengths_sorted = lengths[by_session]
    # event positions: each sorted session's first event, then its following ones
    first = np.repeat(starts[by_session] - np.concatenate([[0], np.cumsum(lengths_sorted)[:-1]]), lengths_sorted)
    return first + np.arange(n)


@dataclass(frozen=True, eq=False)
class SessionData:
    """Events sorted by (session start time, SessionId, Time); one row of ``items`` per event."""

    items: np.ndarray  # (n_events,) int32 item indices
    times: np.ndarray  # (n_events,) float64 unix seconds
    offsets: np.ndarray  # (n_sessions + 1,) int64: session s is items[offsets[s]:offsets[s + 1]]
    session_ids: np.ndarray  # (n_sessions,) int64 original SessionId
    item_map: ItemMap
    n_dropped_unknown: int = 0  # events dropped because their item is not in a given item map

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, item_map: Optional[ItemMap] = None) -> SessionData:
        """Build from a frame with ``SessionId``, ``ItemId``, ``Time`` columns.

        Without ``item_map`` the map is built from the frame's items. With one (e.g. the training map for a test set),
        events whose item is unknown are dropped (counted in ``n_dropped_unknown``) and sessions left with fewer than
        two events are removed, since they hold no (item, next item) pair.
        """
        missing = [key for key in (SESSION_KEY, ITEM_KEY, TIME_KEY) if key not in frame.columns]
        if missing:
            raise ValueError(
                f"session frame is missing column(s) {missing}; expected {SESSION_KEY}, {ITEM_KEY}, {TIME_KEY}"
            )
        sessions = frame[SESSION_KEY].to_numpy(dtype=np.int64)
        item_ids = frame[ITEM_KEY].to_numpy(dtype=np.int64)
        times = frame[TIME_KEY].to_numpy(dtype=np.float64)
        if item_map is None:
            item_map = ItemMap(np.sort(pd.unique(item_ids)))  # = ItemMap.from_ids, hashing before the sort
        items = item_map.index_of(item_ids)
        known = items >= 0
        n_dropped = int((~known).sum())
        sessions, items, times = sessions[known], items[known], times[known]

        order = _order_of_grouped(sessions, times)
        if order is None:
            # Session start time for every event, then one stable sort by (start, SessionId, Time).
            unique_sessions, inverse = np.unique(sessions, return_inverse=True)
            start = np.full(len(unique_sessions), np.inf)
            np.minimum.at(start, inverse, times)
            order = np.lexsort((times, sessions, start[inverse]))
        if order is not _IN_ORDER:
            sessions, items, times = sessions[order], items[order], times[order]

        boundaries = np.flatnonzero(np.diff(sessions)) + 1 if len(sessions) else np.zeros(0, dtype=np.int64)
        offsets = np.concatenate([[0], boundaries, [len(sessions)]]).astype(np.int64)
        lengths = np.diff(offsets)
        if len(lengths) and lengths.min() < 2:
            keep_session = lengths >= 2
            keep_event = np.repeat(keep_session, lengths)
            sessions, items, times = sessions[keep_event], items[keep_event], times[keep_event]
            offsets = np.concatenate([[0], np.cumsum(lengths[keep_session])]).astype(np.int64)
        session_ids = sessions[offsets[:-1]] if len(sessions) else np.zeros(0, dtype=np.int64)
        return cls(
            items=items.astype(np.int32),
            times=times,
            offsets=offsets,
            session_ids=session_ids.astype(np.int64),
            item_map=item_map,
            n_dropped_unknown=n_dropped,
        )

    @property
    def n_events(self) -> int:
        return len(self.items)

    @property
    def n_sessions(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_items(self) -> int:
        return self.item_map.n_items

    @property
    def n_pairs(self) -> int:
        """Number of (item, next item) training pairs: sum over sessions of (length - 1)."""
        return self.n_events - self.n_sessions

    @property
    def session_lengths(self) -> np.ndarray:
        return np.diff(self.offsets)  # (n_sessions,)

    @property
    def item_counts(self) -> np.ndarray:
        """Support of every item index in this data (events per item), (n_items,) int64."""
        return np.bincount(self.items, minlength=self.n_items).astype(np.int64)

    def session(self, s: int) -> np.ndarray:
        """Item indices of session ``s``."""
        return self.items[self.offsets[s] : self.offsets[s + 1]]

    def to_frame(self) -> pd.DataFrame:
        """Back to a ``SessionId``/``ItemId``/``Time`` frame (original ids), in this object's order."""
        return pd.DataFrame(
            {
                SESSION_KEY: np.repeat(self.session_ids, self.session_lengths),
                ITEM_KEY: self.item_map.ids[self.items],
                TIME_KEY: self.times,
            }
        )
