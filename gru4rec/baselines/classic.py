"""The baselines of the GRU4Rec paper (POP, S-POP, item-kNN, Markov), as next-item scorers for
:func:`gru4rec.evaluate.evaluate`.

Each is fitted on the training :class:`~gru4rec.session_data.SessionData` (item indices of its ``ItemMap``) and
implements the scorer protocol (``n_items``, ``start``, ``reset``, ``step``), so it is evaluated by exactly the same
code, tie mode and cut-offs as GRU4Rec. All are vectorised numpy (no scipy): co-occurrence and transition counts are
built as sorted (item, item) pair keys and stored row-compressed (CSR: ``offsets``, ``columns``, ``values``).

* :class:`Pop` — the most popular items of the training set, the same list for everyone.
* :class:`SessionPop` (S-POP) — the most popular items of the current session (how many times the session has
  clicked them so far), training popularity breaking the ties.
* :class:`ItemKNN` — items similar to the current item (Hidasi et al. 2016, section 4.1): the number of sessions in
  which both items occur, divided by ``(supp_i + lmbd) ** alpha * (supp_j + lmbd) ** (1 - alpha)`` where ``supp``
  is the number of sessions an item occurs in; ``alpha = 0.5`` is the cosine similarity of the items' session
  vectors, ``lmbd`` shrinks the similarity of rarely seen items ("regularization ... to avoid coincidental high
  similarities of rarely visited items"). Only the ``n_sims`` most similar items of each item are kept (the official
  ``baselines.py`` keeps 100, ``lmbd=20``, and counts events rather than sessions).
* :class:`Markov` — a first-order Markov chain: the items that followed the current item in training sessions,
  ranked by how often. With ``window > 1`` it becomes the "sequential rules" of Ludewig & Jannach (2018): an item
  ``gap`` steps after the current one (``gap <= window``) adds ``1 / gap``. A window longer than the longest
  training session gives the same rules as one gap shorter than it (no pair is further apart), so fitting loops
  over ``min(window, longest session - 1)`` gaps: any ``window`` fits in the memory and time of the data.

Parameters are checked by type when a baseline is made (a ``ValueError`` naming the parameter): integers are
integers (not booleans, not floats), numbers are finite, ``tie_breaker`` is true or false.

Items a baseline cannot rank (zero similarity, never followed the current item) all score 0 and tie with each other.
With ``tie_breaker=True`` (the default for ItemKNN and Markov) they score their training popularity instead, scaled
below the smallest non-zero rule value, so that part of the list falls back to POP rather than counting against the
model under the conservative tie mode; the rule values themselves are unchanged. Set it to False for the textbook
version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from gru4rec.session_data import ItemMap, SessionData


@dataclass(frozen=True, eq=False)
class SparseRows:
    """A row-compressed (CSR) ``(n_items, n_items)`` matrix: row ``i`` is ``columns/values[offsets[i]:offsets[i+1]]``.
    """

    offsets: np.ndarray  # (n_rows + 1,) int64
    columns: np.ndarray  # (nnz,) int32
    values: np.ndarray  # (nnz,) float64

    @classmethod
    def from_pairs(cls, rows: np.ndarray, columns: np.ndarray, weights: np.ndarray, n: int) -> SparseRows:
        """Sum the weights of duplicate (row, column) pairs; rows sorted, columns sorted within a row."""
        keys = rows.astype(np.int64) * n + columns.astype(np.int64)
        unique, inverse = np.unique(keys, return_inverse=True)
        values = np.bincount(inverse, weights=weights, minlength=len(unique)).astype(np.float64)
        row_of = unique // n
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(row_of, minlength=n), out=offsets[1:])
        return cls(offsets, (unique % n).astype(np.int32), values)

    @property
    def n_rows(self) -> int:
        return len(self.offsets) - 1

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.offsets[i], self.offsets[i + 1]
        return self.columns[start:end], self.values[start:end]

    def keep_top(self, n_per_row: int) -> SparseRows:
        """Keep the ``n_per_row`` largest values of each row (ties: lower column first)."""
        row_of = np.repeat(np.arange(self.n_rows), np.diff(self.offsets))
        order = np.lexsort((self.columns, -self.values, row_of))
        rank_in_row = np.arange(len(order)) - self.offsets[row_of[order]]
        keep = order[rank_in_row < n_per_row]
        keep.sort()  # back to row-major, column-sorted order
        counts = np.bincount(row_of[keep], minlength=self.n_rows)
        offsets = np.zeros(self.n_rows + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return SparseRows(offsets, self.columns[keep], self.values[keep])

    def dense_rows(self, items: np.ndarray, n_columns: int, base: Optional[np.ndarray] = None) -> np.ndarray:
        """``(len(items), n_columns)`` float64: the rows of ``items``, dense; ``base`` fills the other columns."""
        out = np.zeros((len(items), n_columns)) if base is None else np.tile(base, (len(items), 1))
        starts, ends = self.offsets[items], self.offsets[items + 1]
        lengths = ends - starts
        lane = np.repeat(np.arange(len(items)), lengths)
        within = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        index = np.repeat(starts, lengths) + within
        out[lane, self.columns[index]] = self.values[index]  # a row's columns are distinct: set, not add
        return out


def _check_int(name: str, value, low: int) -> int:
    """``value`` if it is an int (not a bool) ``>= low``; else a ValueError naming the parameter."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}: invalid value {value!r}; expected an integer >= {low}")
    return int(value)


def _check_number(name: str, value, low: float, high: float = np.inf) -> float:
    """``value`` as a float if it is a finite number in ``[low, high]``; else a ValueError naming the parameter."""
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if not number or not np.isfinite(value) or not low <= value <= high:
        allowed = f"a finite number >= {low:g}" if high == np.inf else f"a number in [{low:g}, {high:g}]"
        raise ValueError(f"{name}: invalid value {value!r}; expected {allowed}")
    return float(value)


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: invalid value {value!r}; expected true or false")
    return bool(value)


def _check_train(train: SessionData) -> None:
    if train.n_sessions == 0:
        raise ValueError("the training data has no session with two or more events")


class _Baseline:
    """Shared parts: the item map and training support, the protocol for stateless (last-item) scorers."""

    name = "baseline"
    item_map: ItemMap
    item_support: np.ndarray
    n_items: int

    def _fit_common(self, train: SessionData) -> None:
        _check_train(train)
        self.item_map = train.item_map
        self.n_items = train.n_items
        self.item_support = train.item_counts

    @property
    def _popularity(self) -> np.ndarray:
        """Training support mapped into [0, 1): ``supp / (supp + 1)`` (as the official POP)."""
        return self.item_support / (self.item_support + 1.0)

    def start(self, batch_size: int):
        return None

    def reset(self, state, mask: np.ndarray):
        return state

    def select(self, state, rows: np.ndarray):
        return state

    def params(self) -> dict:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


class Pop(_Baseline):
    """POP: training popularity; the same ranking at every step."""

    name = "pop"

    def fit(self, train: SessionData) -> Pop:
        self._fit_common(train)
        self._scores = self._popularity
        return self

    def step(self, state, items: np.ndarray):
        return np.broadcast_to(self._scores, (len(items), self.n_items)), state


class SessionPop(_Baseline):
    """S-POP: how many times the current session has clicked each item; training popularity breaks the ties.

    Score = (clicks of the item in the session so far) + supp / (supp + 1), so the session count decides and the
    popularity term (< 1) only orders items with the same count. State: one count row per lane.
    """

    name = "spop"

    def fit(self, train: SessionData) -> SessionPop:
        self._fit_common(train)
        return self

    def start(self, batch_size: int):
        return np.zeros((batch_size, self.n_items), dtype=np.float64)

    def reset(self, state, mask: np.ndarray):
        state[np.asarray(mask, dtype=bool)] = 0.0
        return state

    def select(self, state, rows: np.ndarray):
        return state[rows]

    def step(self, state, items: np.ndarray):
        state[np.arange(len(items)), items] += 1.0
        return state + self._popularity, state


def _tie_breaker_scale(values: np.ndarray) -> float:
    """A factor that keeps popularity (< 1) below the smallest non-zero rule value."""
    positive = values[values > 0]
    return float(positive.min()) * 0.5 if len(positive) else 1.0


class ItemKNN(_Baseline):
    """Item-to-item similarity from session co-occurrence (the paper's Item-KNN); scores the current item's row.

    Args:
        n_sims: neighbours kept per item (100 in the official code).
        lmbd: regularisation added to the supports (20 in the official code).
        alpha: 0.5 gives the (regularised) cosine; other values weigh the two supports asymmetrically.
        tie_breaker: order the items outside the neighbourhood by popularity (see the module docstring).
    """

    name = "itemknn"

    def __init__(self, n_sims: int = 100, lmbd: float = 20.0, alpha: float = 0.5, tie_breaker: bool = True):
        self.n_sims = _check_int("n_sims", n_sims, 1)  # keep_top keeps at most a row's length: bounded by the data
        self.lmbd = _check_number("lmbd", lmbd, 0.0)
        self.alpha = _check_number("alpha", alpha, 0.0, 1.0)
        self.tie_breaker = _check_bool("tie_breaker", tie_breaker)

    def params(self) -> dict:
        return {"n_sims": self.n_sims, "lmbd": self.lmbd, "alpha": self.alpha, "tie_breaker": self.tie_breaker}

    def fit(self, train: SessionData, max_pairs_per_chunk: int = 20_000_000) -> ItemKNN:
        """Count, for every item pair, the sessions holding both; in chunks of sessions to bound memory."""
        self._fit_common(train)
        n = self.n_items
        # distinct items of each session: (session, item) pairs
        session_of_event = np.repeat(np.arange(train.n_sessions), train.session_lengths)
        keys = np.unique(session_of_event.astype(np.int64) * n + train.items)
        sess, item = keys // n, (keys % n).astype(np.int64)
        counts = np.bincount(sess, minlength=train.n_sessions)  # distinct items per session
        starts = np.zeros(train.n_sessions + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        self.session_support = np.bincount(item, minlength=n).astype(np.float64)

        pair_keys, pair_counts = [], []
        cost = counts.astype(np.int64) ** 2
        boundaries = _chunks(cost, max_pairs_per_chunk)
        for first, last in zip(boundaries[:-1], boundaries[1:]):
            rows = np.arange(starts[first], starts[last])  # (session, item) rows of these sessions
            m = counts[sess[rows]]
            left = np.repeat(rows, m)
            within = np.arange(len(left)) - np.repeat(np.cumsum(m) - m, m)
            right = np.repeat(starts[sess[rows]], m) + within
            a, b = item[left], item[right]
            off_diagonal = a != b
            chunk_keys, chunk_counts = np.unique(a[off_diagonal] * n + b[off_diagonal], return_counts=True)
            pair_keys.append(chunk_keys)
            pair_counts.append(chunk_counts)
        all_keys = np.concatenate(pair_keys) if pair_keys else np.zeros(0, np.int64)
        all_counts = np.concatenate(pair_counts) if pair_counts else np.zeros(0, np.int64)
        unique, inverse = np.unique(all_keys, return_inverse=True)
        cooc = np.bincount(inverse, weights=all_counts, minlength=len(unique))
        a, b = unique // n, unique % n
        support = self.session_support + self.lmbd
        sims = cooc / (support[a] ** self.alpha * support[b] ** (1.0 - self.alpha))
        self.similarity = SparseRows.from_pairs(a, b, sims, n).keep_top(self.n_sims)
        scale = _tie_breaker_scale(self.similarity.values)
        self._base = self._popularity * scale if self.tie_breaker else None
        return self

    def step(self, state, items: np.ndarray):
        return self.similarity.dense_rows(np.asarray(items), self.n_items, self._base), state


class Markov(_Baseline):
    """First-order Markov chain (``window=1``) or sequential rules (``window > 1``, weight ``1 / gap``).

    Scores of the current item's row: ``sum over training sessions and positions p of [item_p == current] *
    [item_{p+gap} == candidate] / gap`` for ``1 <= gap <= window``. The ranking of a row is the same as that of the
    transition probabilities P(next | current) (a row's normalisation does not change its order).
    """

    name = "markov"

    def __init__(self, window: int = 1, tie_breaker: bool = True):
        self.window = _check_int("window", window, 1)
        self.tie_breaker = _check_bool("tie_breaker", tie_breaker)

    def params(self) -> dict:
        return {"window": self.window, "tie_breaker": self.tie_breaker}

    def fit(self, train: SessionData) -> Markov:
        self._fit_common(train)
        session_of_event = np.repeat(np.arange(train.n_sessions), train.session_lengths)
        rows, columns, weights = [], [], []
        longest = int(train.session_lengths.max())
        for gap in range(1, min(self.window, longest - 1) + 1):  # no two events of a session are further apart
            same = session_of_event[gap:] == session_of_event[:-gap]
            rows.append(train.items[:-gap][same])
            columns.append(train.items[gap:][same])
            weights.append(np.full(int(same.sum()), 1.0 / gap))
        self.rules = SparseRows.from_pairs(np.concatenate(rows), np.concatenate(columns), np.concatenate(weights),
                                           self.n_items)
        scale = _tie_breaker_scale(self.rules.values)
        self._base = self._popularity * scale if self.tie_breaker else None
        return self

    def step(self, state, items: np.ndarray):
        return self.rules.dense_rows(np.asarray(items), self.n_items, self._base), state


def _chunks(cost: np.ndarray, budget: int) -> np.ndarray:
    """Boundaries splitting consecutive sessions into chunks of about ``budget`` total cost."""
    cumulative = np.cumsum(cost)
    if len(cost) == 0:
        return np.array([0, 0])
    cuts = np.searchsorted(cumulative, np.arange(budget, cumulative[-1], budget), side="right")
    return np.unique(np.concatenate([[0], cuts, [len(cost)]]))
