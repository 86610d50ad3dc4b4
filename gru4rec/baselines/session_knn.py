"""Session-based kNN: SKNN, V-SKNN and STAN as rn5l/session-rec scores them, for a whole batch of prefixes at once.

All three share one recipe for the current session (the lane's prefix, the current event included):

1. **Candidates**: the training sessions that hold at least one item of the prefix; when there are more than
   ``sample_size`` of them, only the ``sample_size`` most recent (by their last event) are kept (session-rec's
   ``sampling='recent'``). One sparse product, ``prefix (batch, n_items) @ item→sessions``, finds them for every
   lane; the recency order of the index's rows makes the sample the last entries of each row.
2. **Similarity** of the prefix with each candidate (method-specific, below), and the ``k`` most similar
   candidates become the neighbours.
3. **Scores**: each neighbour adds a (method-specific) amount to each of its items; items of no neighbour score 0.
   The neighbours are added most similar first, as session-rec does, by one sparse product per step:
   ``(lanes × neighbour weights) @ (sessions × items)`` for SKNN and V-SKNN, ``(lanes × neighbours) @ (neighbours ×
   items)`` of STAN's per-(neighbour, item) terms. What V-SKNN's and STAN's terms need of the most recent shared item
   comes from :mod:`gru4rec.baselines.matching`.

The methods (parameter names and defaults as session-rec; defaults from its ``conf/example_next.yml``):

* :class:`SessionKNN` (``knn.sknn.ContextKNN``; ``k=100, sample_size=500, similarity='cosine'``): the prefix as a
  set; ``cosine`` is computed as session-rec writes it, ``|A∩B| / sqrt(|B|) * sqrt(|A|)`` (A the prefix, B the
  neighbour; operator precedence makes it the cosine times ``|A|``, a constant of the prefix, so the ranking is the
  cosine's); ``jaccard``, ``tanimoto`` (the same formula), ``binary`` ``2|A∩B| / (2|A∩B| + |A| + |B|)``; an item's
  score is the sum of its neighbours' similarities.
* :class:`VSKNN` (``knn.vsknn.VMContextKNN``; ``k=500, sample_size=5000, weighting='quadratic',
  weighting_score='div', idf_weighting=5``): the prefix as a vector, the item of the event at 1-based position
  ``i`` of ``L`` weighted ``position_weight(weighting, i, L)`` (an item seen twice keeps the weight of its last
  event); ``similarity='vec'``: the weights of the shared items summed, divided by the number of distinct prefix
  items. A neighbour's items gain ``sim * (1 + idf_weighting * idf(item)) * gap_weight(weighting_score, d)`` where
  ``d`` counts back from the prefix's last event to the most recent event whose item the neighbour holds (1 = the
  last event), and ``idf(item) = log(n_sessions / events of the item)`` (session-rec counts events, not sessions).
* :class:`STAN` (``knn.stan.STAN``, Garg et al., SIGIR 2019; ``k=500, sample_size=5000, lambda_spw=1.02,
  lambda_snh=5, lambda_inh=2.05``): prefix weights ``exp((i - L) / lambda_spw)``, the weighted cosine with the
  neighbour's distinct items, times ``exp(-(t - t_n) / (lambda_snh days))`` where ``t_n`` is the neighbour's last
  event and ``t`` the time the evaluator passes (session-rec's loop passes the time of the event being predicted).
  A neighbour's item at last position ``p`` in the neighbour gains ``sim * exp(-|p - p*| / lambda_inh)``, ``p*`` the
  neighbour's last position holding an item of the prefix.

SKNN and V-SKNN divide each score row by its maximum (``normalize``), as session-rec; STAN does not. Items of the
current session are scored like any other (``remind=True``, session-rec's default; ``remind=False`` leaves them out).

Where session-rec leaves an order to Python's set iteration (sessions with equal end times at the sample's edge,
candidates with equal similarity at the ``k``-th neighbour), the kit takes the more recent session. The departures
table of ``docs/baselines.md`` lists this and every other difference.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import scipy.sparse as sp

from gru4rec.baselines.classic import _Baseline
from gru4rec.baselines.decay import check_weighting, gap_weight, position_weight
from gru4rec.baselines.matching import BLOCK, encode, nearest_shared
from gru4rec.baselines.session_index import Prefixes, PrefixItems, SessionIndex, prefix_items
from gru4rec.session_data import SessionData

SECONDS_PER_DAY = 24 * 3600


class _SessionKNN(_Baseline):
    """The shared recipe (module docstring); subclasses give ``_similarity`` and ``_contributions``."""

    positive_only = True  # keep only candidates with similarity > 0 (SKNN, V-SKNN); STAN keeps all
    normalize = True

    def __init__(self, k: int, sample_size: int):
        if int(k) != k or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        if int(sample_size) != sample_size or sample_size < 0:
            raise ValueError(f"sample_size must be an integer >= 0 (0: every candidate), got {sample_size!r}")
        self.k, self.sample_size = int(k), int(sample_size)

    def fit(self, train: SessionData) -> _SessionKNN:
        self._fit_common(train)
        self.index = SessionIndex.from_sessions(train)
        return self

    def start(self, batch_size: int) -> Prefixes:
        batch_size = int(batch_size)
        # Reused at every step: the score rows returned (only the cells written at the last step are non-zero).
        self._out = np.zeros((batch_size, self.n_items))
        self._written = np.zeros(0, dtype=np.int64)
        return Prefixes.empty(batch_size)

    def reset(self, state: Prefixes, mask: np.ndarray) -> Prefixes:
        return state.reset(mask)

    def select(self, state: Prefixes, rows: np.ndarray) -> Prefixes:
        return state.select(rows)

    def step(self, state: Prefixes, items: np.ndarray, times: Optional[np.ndarray] = None):
        """Scores ``(batch, n_items)`` after each lane has seen ``items``; ``times`` (batch,) only for STAN.

        The returned array is a buffer that the next call overwrites (allowed by the scorer protocol)."""
        if getattr(self, "_out", None) is None or self._out.shape[0] < len(items):
            self.start(len(items))
        state = state.append(np.asarray(items))
        batch = len(items)
        prefix = prefix_items(state, self.n_items)
        lane, session, sim = self._neighbours(prefix, batch, times)
        scores = self._scores(prefix, batch, lane, session, sim)  # (batch, n_items) CSR, summed in neighbour order
        rows = np.repeat(np.arange(batch, dtype=np.int64), np.diff(scores.indptr))
        columns, values = scores.indices.astype(np.int64), scores.data
        if not getattr(self, "remind", True):
            outside = ~_in_prefix(prefix, rows, columns)
            rows, columns, values = rows[outside], columns[outside], values[outside]
        if self.normalize and len(values):  # each row divided by its maximum (rows is non-decreasing)
            starts = np.flatnonzero(np.diff(rows, prepend=-1))
            top = np.repeat(np.maximum.reduceat(values, starts), np.diff(np.append(starts, len(values))))
            values = np.divide(values, top, out=values.copy(), where=top > 0)
        cell = rows * self.n_items + columns
        flat = self._out.reshape(-1)
        flat[self._written] = 0.0
        flat[cell] = values
        self._written = cell
        return self._out[:batch], state

    # --- the recipe's parts -----------------------------------------------------------------------------------

    def _candidates(self, prefix: PrefixItems, batch: int, weights: Optional[np.ndarray] = None):
        """``(lane, session row, shared distinct items, summed prefix weights of the shared items)`` of every lane's
        sampled candidates, lane by lane, oldest session first. Without ``weights`` the last is None; with positive
        ``weights`` the third is None (one product finds the candidates then; only SKNN needs the counts)."""
        if weights is not None and weights.min(initial=1.0) > 0:
            # positive weights: the weighted product has every candidate (no sum is zero), one product is enough
            shared = prefix.matrix(weights, batch) @ self.index.sessions_of
            shared.sort_indices()
            summed, distinct = shared.data, None
        else:
            ones = prefix.matrix(np.ones(len(prefix.item)), batch)
            shared = ones @ self.index.sessions_of  # (batch, n_sessions): distinct prefix items each session holds
            shared.sort_indices()
            summed, distinct = None, shared.data
            if weights is not None:  # some weights <= 0: shifted to be positive, the shift taken off again
                shift = 1.0 - float(weights.min())
                product = prefix.matrix(weights + shift, batch) @ self.index.sessions_of
                product.sort_indices()
                if not (np.array_equal(product.indptr, shared.indptr)
                        and np.array_equal(product.indices, shared.indices)):  # fmt: skip
                    raise RuntimeError("weighted and plain candidate products differ in structure")
                summed = product.data - shift * shared.data
        counts = np.diff(shared.indptr)
        lane = np.repeat(np.arange(batch), counts)
        keep = None
        if self.sample_size and counts.max(initial=0) > self.sample_size:
            within = np.arange(len(lane)) - shared.indptr[lane]
            keep = within >= (counts - self.sample_size)[lane]  # the most recent sample_size of each row
        columns = shared.indices.astype(np.int64)
        if keep is not None:
            lane, columns = lane[keep], columns[keep]
            distinct = distinct[keep] if distinct is not None else None
            summed = summed[keep] if summed is not None else None
        return lane, columns, distinct, summed

    def _neighbours(self, prefix: PrefixItems, batch: int, times):
        lane, session, sim = self._similarity(prefix, batch, times)
        chosen = top_per_lane(lane, sim, self.k, batch, self.positive_only)
        lane, session, sim = lane[chosen], session[chosen], sim[chosen]
        # session-rec adds up its neighbours' contributions most similar first (equal similarity: more recent first);
        # the same order makes the same sums, to the last bit where the terms are computed alike
        order = np.lexsort((-session, -sim, lane))
        return lane[order], session[order], sim[order]

    def _weighted_sum(self, batch: int, lane: np.ndarray, session: np.ndarray, weight: np.ndarray) -> sp.csr_matrix:
        """``(batch, n_items)``: each lane's neighbours' weights summed over their items, in the order given (one
        sparse product, ``(batch, n_sessions) @ items_of``; ``lane`` grouped by lane)."""
        by_lane = sp.csr_matrix((weight, session, _indptr(lane, batch)), shape=(batch, self.index.n_sessions))
        return by_lane @ self.index.items_of


def _indptr(row: np.ndarray, n_rows: int) -> np.ndarray:
    """CSR row pointers of entries whose (non-decreasing) rows are ``row``."""
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=n_rows), out=indptr[1:])
    return indptr


def _by_lane(lane: np.ndarray, batch: int) -> sp.csr_matrix:
    """``(batch, n_neighbours)`` CSR of ones: row ``b`` holds lane ``b``'s neighbours in the order given, so a product
    with a ``(n_neighbours, n_items)`` matrix adds them up in that order (``lane`` grouped by lane)."""
    return sp.csr_matrix((np.ones(len(lane)), np.arange(len(lane)), _indptr(lane, batch)), shape=(batch, len(lane)))


def _in_prefix(prefix: PrefixItems, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Whether item ``columns[j]`` is in lane ``rows[j]``'s prefix (``prefix`` is sorted by (lane, item))."""
    keys = prefix.lane * prefix.n_items + prefix.item
    wanted = rows * prefix.n_items + columns
    if len(keys) == 0:
        return np.zeros(len(wanted), dtype=bool)
    at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return keys[at] == wanted


def top_per_lane(lane: np.ndarray, values: np.ndarray, k: int, batch: int, positive_only: bool) -> np.ndarray:
    """Indices (increasing) of the ``k`` largest ``values`` of each lane; ``lane`` is non-decreasing and, within a
    lane, later entries are more recent sessions, which win ties. ``positive_only`` drops values <= 0 first."""
    index = np.flatnonzero(values > 0) if positive_only else np.arange(len(values))
    counts = np.bincount(lane[index], minlength=batch)
    if counts.max(initial=0) <= k:
        return index
    big = (counts > k)[lane[index]]
    crowded = index[big]  # entries of the lanes with more than k candidates
    crowded_lanes = np.flatnonzero(counts > k)
    if len(crowded_lanes) * int(counts.max()) <= 4 * len(crowded) + (1 << 20):
        kept = _top_by_partition(lane[crowded], values[crowded], k, crowded_lanes, counts[crowded_lanes])
    else:  # lanes of very different sizes: a padded array would be mostly padding
        kept = _top_by_sort(lane[crowded], values[crowded], k)
    return np.sort(np.concatenate([index[~big], crowded[kept]]))


def _top_by_partition(lane, value, k, lanes, sizes) -> np.ndarray:
    """Positions of each lane's ``k`` largest ``value`` (ties: the later ones), from one partition of a (lanes ×
    largest lane) array; every lane has more than ``k`` entries."""
    row = np.searchsorted(lanes, lane)  # (c,) row of each entry among the lanes
    column = np.arange(len(lane)) - (np.cumsum(sizes) - sizes)[row]
    padded = np.full((len(lanes), int(sizes.max())), np.inf)
    padded[row, column] = -value
    kth = -np.partition(padded, k - 1, axis=1)[:, k - 1]  # (lanes,) k-th largest value of each
    above = np.flatnonzero(value > kth[row])
    ties = np.flatnonzero(value == kth[row])  # the k-th value's ties: the most recent ones fill the k places
    wanted = k - np.bincount(row[above], minlength=len(lanes))
    from_end = np.cumsum(np.bincount(row[ties], minlength=len(lanes)))[row[ties]] - 1 - np.arange(len(ties))
    return np.concatenate([above, ties[from_end < wanted[row[ties]]]])


def _top_by_sort(lane, value, k) -> np.ndarray:
    """Positions of each lane's ``k`` largest ``value`` (ties: the later ones), from one sort."""
    order = np.lexsort((-np.arange(len(lane)), -value, lane))
    lanes = lane[order]
    rank = np.arange(len(order)) - np.searchsorted(lanes, lanes, side="left")
    return order[rank < k]


class SessionKNN(_SessionKNN):
    """SKNN (session-rec's ``knn.sknn.ContextKNN``): the prefix as a set of items.

    Args:
        k: neighbours (session-rec's example configuration: 100).
        sample_size: candidates kept, the most recent (500); 0 keeps all.
        similarity: ``cosine`` (as session-rec computes it), ``jaccard``, ``tanimoto`` or ``binary``.
        normalize: divide each score row by its maximum (ranks are the same either way).
    """

    name = "sknn"
    SIMILARITIES = ("cosine", "jaccard", "tanimoto", "binary")

    def __init__(self, k: int = 100, sample_size: int = 500, similarity: str = "cosine", normalize: bool = True):
        super().__init__(k, sample_size)
        if similarity not in self.SIMILARITIES:
            raise ValueError(f"similarity must be one of {', '.join(self.SIMILARITIES)}; got {similarity!r}")
        self.similarity, self.normalize = similarity, bool(normalize)

    def params(self) -> dict:
        return {"k": self.k, "sample_size": self.sample_size, "similarity": self.similarity,
                "normalize": self.normalize}  # fmt: skip

    def _similarity(self, prefix: PrefixItems, batch: int, times):
        lane, session, shared, _ = self._candidates(prefix, batch)
        neighbour = self.index.n_distinct[session]  # session-rec's ``first`` (la)
        current = np.bincount(prefix.lane, minlength=batch).astype(np.float64)[lane]  # ``second`` (lb)
        if self.similarity == "cosine":
            sim = shared / np.sqrt(neighbour) * np.sqrt(current)
        elif self.similarity in ("jaccard", "tanimoto"):
            sim = shared / (neighbour + current - shared)
        else:  # binary
            sim = (2 * shared) / ((2 * shared) + neighbour + current)
        return lane, session, sim

    def _scores(self, prefix, batch, lane, session, sim):
        return self._weighted_sum(batch, lane, session, sim)


class VSKNN(_SessionKNN):
    """V-SKNN (session-rec's ``knn.vsknn.VMContextKNN``): the prefix as a position-weighted vector.

    Args:
        k: neighbours (500 in session-rec's example configuration).
        sample_size: candidates kept, the most recent (5000); 0 keeps all.
        weighting: weight of the prefix's events by position (``quadratic``; see ``decay.position_weight``).
        weighting_score: decay of a neighbour's contribution with how far back its match is (``div``).
        idf_weighting: ``w`` of the ``(1 + w * idf)`` factor on a candidate item's score (5; 0 turns it off).
        similarity: ``vec`` (session-rec's default) or ``cosine`` (the weighted cosine).
        remind: score the items of the current session too (session-rec's default True).
        normalize: divide each score row by its maximum.
    """

    name = "vsknn"

    def __init__(
        self,
        k: int = 500,
        sample_size: int = 5000,
        weighting: str = "quadratic",
        weighting_score: str = "div",
        idf_weighting: float = 5.0,
        similarity: str = "vec",
        remind: bool = True,
        normalize: bool = True,
    ):
        super().__init__(k, sample_size)
        self.weighting = check_weighting(weighting, "weighting")
        self.weighting_score = check_weighting(weighting_score, "weighting_score")
        if idf_weighting < 0:
            raise ValueError(f"idf_weighting must be >= 0, got {idf_weighting!r}")
        if similarity not in ("vec", "cosine"):
            raise ValueError(f"similarity must be 'vec' or 'cosine'; got {similarity!r}")
        self.idf_weighting, self.similarity = idf_weighting, similarity
        self.remind, self.normalize = bool(remind), bool(normalize)

    def params(self) -> dict:
        return {"k": self.k, "sample_size": self.sample_size, "weighting": self.weighting,
                "weighting_score": self.weighting_score, "idf_weighting": self.idf_weighting,
                "similarity": self.similarity, "remind": self.remind, "normalize": self.normalize}  # fmt: skip

    def fit(self, train: SessionData) -> VSKNN:
        super().fit(train)
        with np.errstate(divide="ignore"):
            self.idf = np.log(train.n_sessions / train.item_counts.astype(np.float64))  # events, as session-rec
        self._idf_factor = 1.0 + self.idf * self.idf_weighting  # (n_items,) a candidate item's score multiplier
        return self

    def _similarity(self, prefix: PrefixItems, batch: int, times):
        weights = position_weight(self.weighting, prefix.last_position, prefix.length[prefix.lane])
        lane, session, _, summed = self._candidates(prefix, batch, weights)
        n_current = np.bincount(prefix.lane, minlength=batch).astype(np.float64)
        if self.similarity == "vec":
            sim = summed / n_current[lane]
        else:
            squares = np.bincount(prefix.lane, weights=weights * weights, minlength=batch)
            sim = summed / (np.sqrt(squares[lane]) * np.sqrt(self.index.n_distinct[session]))
        return lane, session, sim

    def _scores(self, prefix, batch, lane, session, sim):
        latest = self._latest_match(prefix, batch, lane, session)  # (neighbours,) 1-based prefix position
        decay = gap_weight(self.weighting_score, prefix.length[lane] - latest + 1)
        scores = self._weighted_sum(batch, lane, session, sim * decay)
        if self.idf_weighting:
            # session-rec adds (sim + sim * idf * w) * decay per (neighbour, item): the same sum, factored, up to
            # rounding (which can order items whose scores agree to a few units in the last place differently)
            scores.data *= self._idf_factor[scores.indices]
        return scores

    def _latest_match(self, prefix: PrefixItems, batch: int, lane: np.ndarray, session: np.ndarray) -> np.ndarray:
        """The last prefix position (1-based) whose item each neighbour ``(lane, session)`` holds."""
        distance = prefix.length[prefix.lane] - prefix.last_position  # 0: the current event
        block = distance // BLOCK
        blocks = []
        for b in range(int(block.max(initial=0)) + 1):
            mask = block == b
            blocks.append(prefix.matrix_of(mask, encode(distance[mask], b), batch))
        nearest = nearest_shared(blocks, [self.index.sessions_of], lane, session)
        if len(nearest) and nearest.min() < 0:
            raise RuntimeError("a neighbour shares no item with its prefix")
        return prefix.length[lane] - nearest


class STAN(_SessionKNN):
    """STAN (Garg et al., SIGIR 2019; session-rec's ``knn.stan.STAN``).

    Args:
        k: neighbours (500).
        sample_size: candidates kept, the most recent (5000); 0 keeps all.
        lambda_spw: position decay of the prefix's events (1.02 events).
        lambda_snh: recency decay of a neighbour session (5 days).
        lambda_inh: decay of a neighbour's items with their distance to its match (2.05 positions).
        remind: score the items of the current session too (True).

    ``needs_times``: the evaluator passes ``times`` (batch,) to :meth:`step`: the time of the event being predicted.
    """

    name = "stan"
    positive_only = False
    normalize = False
    needs_times = True

    def __init__(
        self,
        k: int = 500,
        sample_size: int = 5000,
        lambda_spw: float = 1.02,
        lambda_snh: float = 5.0,
        lambda_inh: float = 2.05,
        remind: bool = True,
    ):
        super().__init__(k, sample_size)
        for name, value in (("lambda_spw", lambda_spw), ("lambda_snh", lambda_snh), ("lambda_inh", lambda_inh)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        self.lambda_spw, self.lambda_snh, self.lambda_inh = lambda_spw, lambda_snh, lambda_inh
        self.remind = bool(remind)

    def params(self) -> dict:
        return {"k": self.k, "sample_size": self.sample_size, "lambda_spw": self.lambda_spw,
                "lambda_snh": self.lambda_snh, "lambda_inh": self.lambda_inh, "remind": self.remind}  # fmt: skip

    def fit(self, train: SessionData) -> STAN:
        super().fit(train)
        index = self.index
        # item -> sessions, cut into blocks by how far from its session's end each item's last event is (see
        # gru4rec.baselines.matching): what finds each neighbour's last position holding an item of the prefix
        rows = np.repeat(np.arange(index.n_sessions), np.diff(index.positions.indptr))
        distance = index.length[rows] - index.positions.data
        block = distance // BLOCK
        self._blocks = []
        for b in range(int(block.max(initial=0)) + 1):
            mask = block == b
            part = sp.csr_matrix((encode(distance[mask], b), (rows[mask], index.positions.indices[mask])),
                                 shape=index.positions.shape)  # fmt: skip
            self._blocks.append(part.T.tocsr())
        self._inh_weight = np.exp(-np.arange(int(index.length.max(initial=1)) + 1, dtype=np.float64) / self.lambda_inh)
        return self

    def _similarity(self, prefix: PrefixItems, batch: int, times):
        if times is None:
            raise ValueError("STAN needs the time of each prediction: step(state, items, times)")
        weights = np.exp((prefix.last_position - prefix.length[prefix.lane]) / self.lambda_spw)
        lane, session, _, summed = self._candidates(prefix, batch, weights)
        squares = np.bincount(prefix.lane, weights=weights * weights, minlength=batch)
        sim = summed / (np.sqrt(squares[lane]) * np.sqrt(self.index.n_distinct[session]))
        age = np.asarray(times, dtype=np.float64)[lane] - self.index.end_time[session]
        with np.errstate(over="ignore"):  # idle lanes get time 0; their scores are ignored
            decay = np.exp(-age / (self.lambda_snh * SECONDS_PER_DAY))
        return lane, session, sim * decay

    def _scores(self, prefix, batch, lane, session, sim):
        index = self.index
        anchor_distance = nearest_shared([prefix.matrix(np.ones(len(prefix.item)), batch)], self._blocks, lane, session)
        if len(anchor_distance) and anchor_distance.min() < 0:
            raise RuntimeError("a neighbour shares no item with its prefix")
        anchor = index.length[session] - anchor_distance  # (neighbours,) its last position holding a prefix item
        neighbours = index.positions[session]  # (neighbours, n_items) CSR: each neighbour's items, last positions
        counts = np.diff(neighbours.indptr)
        gap = neighbours.data - np.repeat(anchor.astype(neighbours.data.dtype), counts)
        np.abs(gap, out=gap)
        if len(gap) and gap.max() >= len(self._inh_weight):
            self._inh_weight = np.exp(-np.arange(int(gap.max()) + 1, dtype=np.float64) / self.lambda_inh)
        values = self._inh_weight[gap]  # exp(-|p - p*| / lambda_inh) * sim
        values *= np.repeat(sim, counts)
        neighbours = sp.csr_matrix((values, neighbours.indices, neighbours.indptr), shape=neighbours.shape)
        return _by_lane(lane, batch) @ neighbours
