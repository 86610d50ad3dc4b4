"""What the session-based kNN baselines look up: the training sessions as sparse matrices, and the lanes' prefixes.

:class:`SessionIndex` holds the training sessions as a session × item matrix (distinct items, CSR) and its
transpose (item → sessions), with the rows ordered by recency: row ``r`` is the session with the ``r``-th earliest
last event (ties: data order). "The ``sample_size`` most recent sessions that share an item with the current
session" (session-rec's ``sampling='recent'``) is then the last ``sample_size`` entries of a sparse row.

:class:`Prefixes` is the scorers' state: the items each evaluation lane has seen in its current session, and
:func:`prefix_items` turns it into one (lane, item, last position) triple per distinct item of each prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from gru4rec.session_data import SessionData


@dataclass(frozen=True, eq=False)
class SessionIndex:
    """Training sessions in recency order (oldest first) as sparse matrices."""

    items_of: sp.csr_matrix  # (n_sessions, n_items) 1.0 per distinct item of a session, rows by recency
    sessions_of: sp.csr_matrix  # (n_items, n_sessions) the transpose: an item's sessions, oldest first
    last_position: np.ndarray  # (nnz,) float64: 1-based position of the item's last event in its session
    n_distinct: np.ndarray  # (n_sessions,) float64 distinct items of each session
    end_time: np.ndarray  # (n_sessions,) float64 time of each session's last event (non-decreasing)
    length: np.ndarray  # (n_sessions,) int64 events of each session (repeats included)
    positions: sp.csr_matrix  # (n_sessions, n_items) int32: ``items_of`` with the 1-based last position as value

    @classmethod
    def from_sessions(cls, train: SessionData) -> SessionIndex:
        n_sessions, n_items = train.n_sessions, train.n_items
        lengths = train.session_lengths
        end = train.times[train.offsets[1:] - 1]
        recency = np.lexsort((np.arange(n_sessions), end))  # oldest first; equal end times: data order
        row_of = np.empty(n_sessions, dtype=np.int64)
        row_of[recency] = np.arange(n_sessions)
        position = np.arange(train.n_events) - np.repeat(train.offsets[:-1], lengths) + 1  # 1-based
        keys = row_of[np.repeat(np.arange(n_sessions), lengths)] * n_items + train.items
        unique, last = np.unique(keys[::-1], return_index=True)  # the last event of each (session, item)
        rows, columns = unique // n_items, (unique % n_items).astype(np.int32)
        indptr = np.zeros(n_sessions + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_sessions), out=indptr[1:])
        items_of = sp.csr_matrix((np.ones(len(unique)), columns, indptr), shape=(n_sessions, n_items))
        last_position = position[::-1][last]
        return cls(
            items_of=items_of,
            sessions_of=items_of.T.tocsr(),
            last_position=last_position.astype(np.float64),
            n_distinct=np.diff(indptr).astype(np.float64),
            end_time=end[recency],
            length=lengths[recency].astype(np.int64),
            positions=sp.csr_matrix((last_position.astype(np.int32), columns, indptr), shape=(n_sessions, n_items)),
        )

    @property
    def n_sessions(self) -> int:
        return self.items_of.shape[0]


@dataclass(eq=False)
class Prefixes:
    """The scorers' state: ``history[b, :length[b]]`` are the items lane ``b`` has seen in its session."""

    history: np.ndarray  # (batch, capacity) int32
    length: np.ndarray  # (batch,) int64

    @classmethod
    def empty(cls, batch_size: int) -> Prefixes:
        return cls(np.zeros((batch_size, 16), dtype=np.int32), np.zeros(batch_size, dtype=np.int64))

    def reset(self, mask: np.ndarray) -> Prefixes:
        length = self.length.copy()
        length[np.asarray(mask, dtype=bool)] = 0
        return Prefixes(self.history, length)

    def select(self, rows: np.ndarray) -> Prefixes:
        return Prefixes(self.history[rows], self.length[rows])

    def append(self, items: np.ndarray) -> Prefixes:
        """The prefixes with ``items`` ((batch,) item indices) added (the history array grows when full)."""
        history = self.history
        if int(self.length.max(initial=0)) >= history.shape[1]:
            history = np.concatenate([history, np.zeros_like(history)], axis=1)
        history[np.arange(len(items)), self.length] = items
        return Prefixes(history, self.length + 1)


@dataclass(frozen=True, eq=False)
class PrefixItems:
    """One entry per distinct item of each lane's prefix, sorted by (lane, item)."""

    lane: np.ndarray  # (m,) int64
    item: np.ndarray  # (m,) int64
    last_position: np.ndarray  # (m,) int64 1-based position of the item's last event in the prefix
    length: np.ndarray  # (batch,) int64 events in each prefix (repeats included)
    n_items: int

    def matrix(self, values: np.ndarray, batch: int) -> sp.csr_matrix:
        """``(batch, n_items)`` CSR with ``values`` at the prefix items."""
        indptr = np.zeros(batch + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.lane, minlength=batch), out=indptr[1:])
        return sp.csr_matrix((values, self.item, indptr), shape=(batch, self.n_items))

    def matrix_of(self, mask: np.ndarray, values: np.ndarray, batch: int) -> sp.csr_matrix:
        """``(batch, n_items)`` CSR with ``values`` (one per True of ``mask``) at the prefix items where ``mask`` (m,)
        is True."""
        indptr = np.zeros(batch + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.lane[mask], minlength=batch), out=indptr[1:])
        return sp.csr_matrix((values, self.item[mask], indptr), shape=(batch, self.n_items))


def prefix_items(state: Prefixes, n_items: int) -> PrefixItems:
    """The distinct items of every lane's prefix with the position of their last event."""
    batch = len(state.length)
    width = int(state.length.max(initial=0))
    lane, position = np.nonzero(np.arange(width)[None, :] < state.length[:, None])  # row-major
    keys = lane * n_items + state.history[lane, position].astype(np.int64)
    unique, last = np.unique(keys[::-1], return_index=True)
    return PrefixItems(
        lane=unique // n_items,
        item=unique % n_items,
        last_position=position[::-1][last] + 1,
        length=state.length[:batch].copy(),
        n_items=n_items,
    )
