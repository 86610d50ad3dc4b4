"""Next-item evaluation that cannot flatter: full-catalogue ranks, explicit tie handling, rank <= K.

The protocol (Hidasi et al. 2016, section 4): for every event of every test session except the last, the scorer has
seen the session up to and including that event (its state starts from zero at the session's start) and scores
**every** item of the training catalogue; the true next item's rank among them decides the hit.

* ``recall@K``: share of predictions whose rank is ``<= K``.
* ``mrr@K``: mean of ``1 / rank`` over the predictions, where a rank ``> K`` counts 0.
* ``coverage@K``: share of the catalogue that appears in at least one top-K list (ties in the top-K list are broken
  arbitrarily: lower item index is not guaranteed).
* ``popularity@K`` (when the training support of the items is known): the mean, over predictions and the K items
  recommended, of the item's training support divided by the largest training support (1.0 = only the most popular
  item is recommended; the "popularity bias" measure of Ludewig & Jannach 2018, section 4.2).

Ties. A score equal to the target's is a tie. The rank of the target is

* ``conservative`` (the kit's default, and that of the official ``evaluation.batch_eval``; the official ``run.py``
  passes ``standard`` unless given ``-e conservative``): ``#(scores >= target)`` (the target itself included), i.e.
  every tie is ranked above the target;
* ``standard``: ``1 + #(scores > target)``: every tie is ranked below the target (ties are hits);
* ``median``: ``1 + #(scores > target) + (#ties - 1) / 2``: ties split evenly (ranks may be x.5).

``seed`` is not a tie mode but the seed's counting, kept only to show how much it flatters: the rank of ``standard``
(ties count as hits) and a hit when ``rank < K`` (not ``<=``), as in Songweiping/GRU4Rec_TensorFlow's
``evaluation.py``. A model whose scores saturate (many equal scores) looks far better under it than it is.

NaN is the worst score: a target whose score is NaN gets the worst rank (``n_items``), so a broken model can never
score a hit; NaN competitors compare false, so they count as ranked below the target, and they come last in the
top-K lists (coverage, recommendations). This holds on every path (exact counts, the top-``K + 1`` shortcut of
:func:`ranks_from_top`, the TensorFlow ranker). Infinite scores are ordered as numbers (``+inf`` first, ties as
above).

Unknown items. The test set must be indexed with the training ``ItemMap`` (``SessionData.from_frame(test_df,
train.item_map)``): events of items never seen in training are dropped there (they cannot be scored, and a model
cannot be asked to predict them), sessions left with fewer than two events are removed, and the result reports the
count as ``n_dropped_unknown``. This follows the official code, which inner-joins the test set with the training
item map. Note that it deletes the unknown event from the session, so the pair (item before, item after) becomes a
prediction; the alternative (splitting the session) is not what the published numbers use.

Session-parallel lanes. Evaluation runs ``min(batch_size, n_sessions)`` sessions side by side with
``batching.epoch_batches`` (the same lanes as training); lanes with no session left are masked, so a test set with
fewer sessions than the batch size works, and every (item, next item) pair is ranked exactly once. Sessions enter
the lanes longest first (:func:`longest_first`): the order changes no number, only how many idle lanes are scored
at the end. ``batch_size`` only changes speed, never the numbers.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

from gru4rec.batching import epoch_batches
from gru4rec.parallel import map_rows, matmul_rows
from gru4rec.session_data import SessionData

TIE_MODES = ("conservative", "standard", "median", "seed")
DEFAULT_CUTOFFS = (1, 5, 10, 20)


@runtime_checkable
class NextItemScorer(Protocol):
    """What the evaluator needs from a model: GRU4Rec, every baseline, the synthetic oracle.

    The evaluator drives ``batch`` lanes at once. ``state`` is whatever the scorer needs (a list of tensors, numpy
    arrays, ...); the evaluator never looks inside it.

    * ``n_items``: size of the catalogue; scores are over item indices ``0 .. n_items - 1`` of the training ItemMap.
    * ``start(batch_size)``: the state of ``batch_size`` lanes, every lane at the start of a session.
    * ``reset(state, mask)``: lanes where ``mask`` (``(batch,)`` bool) is True start a new session (zero the hidden
      state, forget the session's items); the other lanes keep their state.
    * ``step(state, items)``: each lane observes ``items`` (``(batch,)`` int32 item indices) and returns the scores
      of every item as its next item, ``(batch, n_items)`` (numpy array or ``tf.Tensor``; higher is better), and
      the new state. Lanes that are idle (masked by the evaluator) receive item 0; their scores are ignored.

    Optional parts:

    * ``select(state, rows)``: the state of the lanes ``rows`` (int array, increasing) only, as a smaller batch. With
      it the evaluator drops the lanes that have no session left (the tail of a test set, where one long session
      may keep a handful of lanes busy for many steps) instead of scoring idle lanes; without it every step scores
      the full batch. Same numbers either way.
    * ``item_map`` (checked against the test data) and ``item_support`` (training events per item index, used for
      ``popularity@K``).
    * ``needs_times = True``: ``step`` is called as ``step(state, items, times=...)`` with ``times`` ``(batch,)``
      float64, the time of the event being predicted (what rn5l/session-rec's loop passes to ``predict_next``; STAN
      decays its neighbours by it); 0 on idle lanes.

    ``step`` may return a buffer that it overwrites at the next call: the evaluator uses the scores before the next
    ``step``.
    """

    n_items: int

    def start(self, batch_size: int) -> Any: ...

    def reset(self, state: Any, mask: np.ndarray) -> Any: ...

    def step(self, state: Any, items: np.ndarray) -> tuple[Any, Any]: ...


# ----------------------------------------------------------------------------------------------------------------
# Ranks from scores


def _comparisons(tie_mode: str) -> tuple[bool, bool]:
    """Which counts a tie mode needs: (#scores > target, #scores >= target)."""
    if tie_mode == "conservative":
        return False, True
    if tie_mode in ("standard", "seed"):
        return True, False
    return True, True  # median


def ranks_from_counts(
    n_greater: Optional[np.ndarray], n_greater_equal: Optional[np.ndarray], tie_mode: str
) -> np.ndarray:
    """The 1-based rank of each target (float64) from ``#(scores > target)`` and ``#(scores >= target)``.

    ``n_greater_equal`` counts the target itself (so it is >= 1 unless the target score is NaN).
    """
    if tie_mode == "conservative":
        return n_greater_equal.astype(np.float64)
    if tie_mode in ("standard", "seed"):
        return n_greater.astype(np.float64) + 1.0
    if tie_mode == "median":
        n_ties = n_greater_equal - n_greater  # the target included
        return n_greater + 1.0 + (n_ties - 1) / 2.0
    raise ValueError(f"unknown tie_mode {tie_mode!r}; choose one of {', '.join(TIE_MODES)}")


def count_above(scores: np.ndarray, targets: np.ndarray, tie_mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Numpy, exact over all items: target scores ``(batch,)`` and ranks of ``targets`` in ``scores``
    ``(batch, n_items)``; a NaN target gets the worst rank, ``n_items`` (NaN is the worst score)."""
    target_scores = scores[np.arange(len(targets)), targets]
    column = target_scores[:, None]
    need_gt, need_ge = _comparisons(tie_mode)
    n_gt = np.count_nonzero(scores > column, axis=1) if need_gt else None
    n_ge = np.count_nonzero(scores >= column, axis=1) if need_ge else None
    ranks = ranks_from_counts(n_gt, n_ge, tie_mode)
    return target_scores, np.where(np.isnan(target_scores), float(scores.shape[1]), ranks)


def ranks_from_top(top_scores: np.ndarray, target_scores: np.ndarray, tie_mode: str) -> np.ndarray:
    """Ranks from the ``m`` best scores of each row (sorted or not): exact where the rank is ``< m``, else inf.

    If fewer than ``m`` of the top scores are ``>= target`` (``> target`` for ``standard``), every item outside the
    top list scores below the target (resp. not above it), so the count over the top list is the count over all
    items. Otherwise the rank is at least ``m``: with ``m = max(cutoffs) + 1`` that is a miss at every cut-off, and
    the full pass over the catalogue is not needed. Not for ``median`` (it needs the exact number of ties).

    NaN is the worst score: a NaN target is a miss (inf). A row whose top list holds a NaN cannot be ranked from it
    (which items it pushed out of the list is unknown): its rank is NaN, "count this row over every item" (the
    evaluator does, :func:`count_above`); NaN is never ``<= K``, so it can never be taken for a hit.
    """
    m = top_scores.shape[1]
    nan_target = np.isnan(target_scores)
    nan_in_top = np.isnan(top_scores).any(axis=1)
    if nan_target.any() or nan_in_top.any():
        ok = ~(nan_target | nan_in_top)
        ranks = np.where(nan_target, np.inf, np.nan)
        ranks[ok] = ranks_from_top(top_scores[ok], target_scores[ok], tie_mode)
        return ranks
    column = target_scores[:, None]
    if tie_mode == "conservative":
        count = np.count_nonzero(top_scores >= column, axis=1)
        return np.where(count < m, count.astype(np.float64), np.inf)
    if tie_mode in ("standard", "seed"):
        count = np.count_nonzero(top_scores > column, axis=1)
        return np.where(count < m, count + 1.0, np.inf)
    raise ValueError(f"ranks_from_top does not support tie_mode {tie_mode!r}")


def top_k_indices(scores: np.ndarray, k: int, block: int = 16) -> np.ndarray:
    """Indices of the ``k`` highest scores of every row, best first, ``(batch, k)``; exact up to ties.

    Block-max pruning: put item ``j`` in block ``j % n_blocks`` (strided blocks of ``block`` items, so the block maxima
    are an element-wise maximum of contiguous rows, fast in numpy) and keep only the ``k`` blocks with the highest
    maxima. Every item scoring above the k-th best score lies in one of them (a block ranked above it holds an item
    scoring higher, and fewer than k items do), so the k best scores of these ``k * block`` candidates are the k
    best scores of the row. Among equal scores the choice is arbitrary. About 5x faster than ``np.argpartition``
    over 37,500 items (blocks of 16 items: 20 ms for 1,024 x 37,500 scores, 24 ms with 32, 34 ms with 64).
    NaN is the worst score: it comes after every number (``np.fmax`` block maxima, NaN candidates as ``-inf``).
    """
    batch, n_items = scores.shape
    k = min(int(k), n_items)
    n_blocks = n_items // block
    row_base = (np.arange(batch, dtype=np.int64) * n_items)[:, None]
    flat = scores.reshape(-1)
    if n_blocks <= 2 * k:  # too few items for the pruning to pay
        candidates = np.broadcast_to(np.arange(n_items), (batch, n_items))
    else:
        head = n_blocks * block
        block_max = np.fmax.reduce(scores[:, :head].reshape(batch, block, n_blocks), axis=1)  # (batch, n_blocks)
        block_max = np.where(np.isnan(block_max), -np.inf, block_max)  # a block of NaN only: last
        # the k smallest of the negated maxima: numpy's introselect is slow when it must find the k largest among
        # many equal values (baseline scores: mostly exact zeros), 8x slower than this on 90% zeros
        best_blocks = np.argpartition(-block_max, k - 1, axis=1)[:, :k]  # (batch, k)
        candidates = (best_blocks[:, None, :] + n_blocks * np.arange(block)[None, :, None]).reshape(batch, -1)
        if head < n_items:  # the tail that does not fill a stride is always a candidate
            tail = np.broadcast_to(np.arange(head, n_items), (batch, n_items - head))
            candidates = np.concatenate([candidates, tail], axis=1)
    cand_scores = flat.take(candidates + row_base)
    cand_scores = np.where(np.isnan(cand_scores), -np.inf, cand_scores)  # NaN last (numpy would sort it first)
    n_cand = candidates.shape[1]
    if k < n_cand:
        pick = np.argpartition(-cand_scores, k - 1, axis=1)[:, :k]
        candidates = np.take_along_axis(candidates, pick, axis=1)
        cand_scores = np.take_along_axis(cand_scores, pick, axis=1)
    order = np.argsort(-cand_scores, axis=1, kind="stable")
    return np.take_along_axis(candidates, order, axis=1)


def rank_numpy(
    scores: np.ndarray, targets: np.ndarray, tie_mode: str, k: int, exact: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Target scores, ranks and the top-``k`` lists of a ``(batch, n_items)`` numpy score matrix.

    With ``exact=False`` (metrics only, tie modes other than ``median``) the ranks come from the top ``k + 1``
    scores (:func:`ranks_from_top`): ranks above ``k`` are reported as inf, which is a miss at every cut-off
    ``<= k``; this saves a full pass over the scores.

    A large matrix is ranked in row blocks on every core (:func:`gru4rec.parallel.map_rows`); every row's result
    depends on that row only, so the output is the same as on one thread.
    """
    if scores.size >= PARALLEL_RANK_MIN_SCORES:
        return _rank_rows_in_parallel(scores, targets, tie_mode, k, exact)
    return _rank_rows(scores, targets, tie_mode, k, exact)


def _rank_rows(scores: np.ndarray, targets: np.ndarray, tie_mode: str, k: int, exact: bool) -> tuple:
    """:func:`rank_numpy` on one thread."""
    n_items = scores.shape[1]
    if exact or tie_mode == "median" or k + 1 > n_items:
        target_scores, ranks = count_above(scores, targets, tie_mode)
        return target_scores, ranks, top_k_indices(scores, k)
    target_scores = scores[np.arange(len(targets)), targets]
    top = top_k_indices(scores, k + 1)
    top_scores = np.take_along_axis(scores, top, axis=1)
    ranks = ranks_from_top(top_scores, target_scores, tie_mode)
    odd = np.flatnonzero(np.isnan(ranks) | np.isinf(target_scores))
    if len(odd):  # NaN in the top list, or an infinite target: count those rows over every item (rare, exact)
        ranks[odd] = count_above(scores[odd], targets[odd], tie_mode)[1]
    return target_scores, ranks, top[:, :k]


# Ranking is row-wise numpy work that releases the GIL: a large matrix is split into row blocks ranked side by side
# (``gru4rec.parallel``). On the 2-core CPU, 1,024 x 37,500 scores take 13 ms on two threads instead of 25 ms.
PARALLEL_RANK_MIN_SCORES = 2_000_000


def _rank_rows_in_parallel(scores: np.ndarray, targets: np.ndarray, tie_mode: str, k: int, exact: bool) -> tuple:
    """:func:`_rank_rows` on row blocks at once; the results concatenated in row order."""
    parts = map_rows(lambda lo, hi: _rank_rows(scores[lo:hi], targets[lo:hi], tie_mode, k, exact), len(targets))
    return tuple(np.concatenate([part[i] for part in parts]) for i in range(3))


class _TFRanker:
    """The same counts and top-k in TensorFlow, inside one ``tf.function``: used when scores live on a GPU.

    On this kit's 2-core CPU numpy's ``count_nonzero`` is about 4x faster than TF's compare + reduce (measured:
    13 ms vs 54 ms for 512 x 37,500 scores), so CPU tensors are ranked with numpy (``.numpy()`` on a CPU tensor is
    a zero-copy view); on a GPU, copying the score matrix to the host would cost more than ranking it there.
    """

    def __init__(self, tie_mode: str, k: int):
        import tensorflow as tf

        need_gt, need_ge = _comparisons(tie_mode)

        @tf.function(reduce_retracing=True, autograph=False)
        def rank(scores, targets):
            target_scores = tf.gather(scores, targets[:, None], batch_dims=1)  # (batch, 1)
            none = tf.zeros(0, tf.int32)
            n_gt = tf.reduce_sum(tf.cast(scores > target_scores, tf.int32), axis=1) if need_gt else none
            n_ge = tf.reduce_sum(tf.cast(scores >= target_scores, tf.int32), axis=1) if need_ge else none
            worst_nan = tf.where(tf.math.is_nan(scores), tf.constant(-np.inf, scores.dtype), scores)  # NaN last
            top = tf.math.top_k(worst_nan, k=k).indices if k > 0 else tf.zeros((0, 0), tf.int32)
            return target_scores[:, 0], n_gt, n_ge, top

        self._rank = rank
        self._tf = tf
        self.tie_mode = tie_mode

    def __call__(self, scores, targets: np.ndarray):
        target_scores, n_gt, n_ge, top = self._rank(scores, self._tf.constant(targets, self._tf.int32))
        need_gt, need_ge = _comparisons(self.tie_mode)
        ranks = ranks_from_counts(n_gt.numpy() if need_gt else None, n_ge.numpy() if need_ge else None, self.tie_mode)
        target_scores = target_scores.numpy()
        ranks = np.where(np.isnan(target_scores), float(scores.shape[1]), ranks)  # NaN is the worst score
        return target_scores, ranks, top.numpy()


def _on_gpu(scores: Any) -> bool:
    device = getattr(scores, "device", "")
    return isinstance(device, str) and ("GPU" in device.upper())


# ----------------------------------------------------------------------------------------------------------------
# The evaluator


def _check_compatible(scorer: NextItemScorer, data: SessionData) -> None:
    if data.n_items != scorer.n_items:
        raise ValueError(
            f"the test data is indexed over {data.n_items} items but the scorer scores {scorer.n_items}: build the "
            "test SessionData with the training item map (SessionData.from_frame(test_df, train.item_map))"
        )
    item_map = getattr(scorer, "item_map", None)
    if item_map is not None and not np.array_equal(item_map.ids, data.item_map.ids):
        raise ValueError(
            "the test data's item map differs from the scorer's: build the test SessionData with the scorer's item "
            "map (SessionData.from_frame(test_df, scorer.item_map))"
        )


def _validate(cutoffs: Sequence[int], tie_mode: str, batch_size: int) -> tuple[int, ...]:
    if tie_mode not in TIE_MODES:
        raise ValueError(f"unknown tie_mode {tie_mode!r}; choose one of {', '.join(TIE_MODES)}")
    cutoffs = tuple(sorted({int(k) for k in cutoffs}))
    if not cutoffs or cutoffs[0] < 1:
        raise ValueError(f"cutoffs must be positive integers, got {list(cutoffs)}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    return cutoffs


def longest_first(data: SessionData) -> np.ndarray:
    """Session order for evaluation: longest first (stable), so the lanes finish together.

    Sessions are independent at evaluation time (the state starts from zero in each), so their order does not change
    any number; it changes the speed. In data order a long session that starts late keeps one lane busy while the
    others idle, and every step still scores the whole batch; longest-first ("LPT") scheduling leaves only short
    sessions for the end.
    """
    return np.argsort(-data.session_lengths, kind="stable")


def reorder_sessions(data: SessionData, order: np.ndarray) -> SessionData:
    """The same sessions in the order ``order`` (an index array over sessions)."""
    lengths = data.session_lengths[order]
    offsets = np.zeros(len(order) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    events = np.repeat(data.offsets[:-1][order] - offsets[:-1], lengths) + np.arange(offsets[-1])
    return SessionData(
        items=data.items[events],
        times=data.times[events],
        offsets=offsets,
        session_ids=data.session_ids[order],
        item_map=data.item_map,
        n_dropped_unknown=data.n_dropped_unknown,
    )


def lane_positions(resets: np.ndarray) -> np.ndarray:
    """``(steps, batch)`` position in its session of the item fed at each step (0 = the session's first item)."""
    steps = np.arange(resets.shape[0])[:, None]
    last_reset = np.maximum.accumulate(np.where(resets, steps, -1), axis=0)
    return steps - last_reset


def _target_times(data: SessionData, batches) -> np.ndarray:
    """``(steps, batch)`` float64: the time of the event each lane predicts at each step (0 where not valid)."""
    session = np.maximum(batches.session_index, 0)
    target_event = data.offsets[session] + lane_positions(batches.resets) + 1
    return np.where(batches.valid, data.times[np.minimum(target_event, data.n_events - 1)], 0.0)


def evaluate(
    scorer: NextItemScorer,
    data: SessionData,
    cutoffs: Sequence[int] = DEFAULT_CUTOFFS,
    tie_mode: str = "conservative",
    batch_size: int = 512,
    item_support: Optional[np.ndarray] = None,
    return_ranks: bool = False,
    ranker: str = "auto",
) -> dict:
    """Rank the true next item of every test event among all items; Recall@K, MRR@K, coverage@K for all cutoffs.

    Args:
        scorer: anything with ``n_items``, ``start``, ``reset``, ``step`` (see ``NextItemScorer``).
        data: the test sessions, indexed with the scorer's (training) item map.
        cutoffs: the K values; every metric is computed for each in the same pass.
        tie_mode: ``conservative`` (default), ``standard``, ``median``, or ``seed`` (see the module docstring).
        batch_size: number of sessions evaluated side by side (independent of training; speed only).
        item_support: training events per item index for ``popularity@K``; defaults to ``scorer.item_support``;
            without either, ``popularity@K`` is left out.
        return_ranks: also return per-prediction arrays, in data order (session by session):
            ``ranks`` (float64), ``positions`` (position in the session of the item the prediction was made after,
            0 = first) and ``session_index``.
        ranker: ``auto`` (TF on a GPU, numpy otherwise), ``numpy`` or ``tf``.

    Returns:
        A dict with ``recall@K``, ``mrr@K``, ``coverage@K`` (and ``popularity@K``) for each K, ``n_events`` (number
        of ranked predictions), ``n_sessions``, ``n_items``, ``n_dropped_unknown``, ``tie_mode``, ``cutoffs``,
        ``batch_size``, plus the per-prediction arrays when ``return_ranks``.
    """
    cutoffs = _validate(cutoffs, tie_mode, batch_size)
    if ranker not in ("auto", "numpy", "tf"):
        raise ValueError(f"ranker must be 'auto', 'numpy' or 'tf', got {ranker!r}")
    _check_compatible(scorer, data)
    n_items = data.n_items
    k_max = min(cutoffs[-1], n_items)
    if item_support is None:
        item_support = getattr(scorer, "item_support", None)
    popularity = None
    if item_support is not None:
        item_support = np.asarray(item_support, dtype=np.float64)
        if item_support.shape != (n_items,):
            raise ValueError(f"item_support must have shape ({n_items},), got {item_support.shape}")
        popularity = item_support / max(item_support.max(), 1.0)

    result: dict = {}
    n_pairs = data.n_pairs
    hits = np.zeros(len(cutoffs), dtype=np.int64)
    reciprocal = np.zeros(len(cutoffs), dtype=np.float64)
    pop_sum = np.zeros(len(cutoffs), dtype=np.float64)
    best_position = np.full(n_items, np.iinfo(np.int64).max, dtype=np.int64)  # best top-k slot of each item
    all_ranks = np.empty(n_pairs, dtype=np.float64) if return_ranks else None
    lanes = min(int(batch_size), max(data.n_sessions, 1))

    if data.n_sessions > 0:
        order = longest_first(data)
        ordered = reorder_sessions(data, order)
        batches = epoch_batches(ordered, lanes, shuffle=False)
        target_times = _target_times(ordered, batches) if getattr(scorer, "needs_times", False) else None
        if return_ranks:
            # index of each prediction in data order: first pair of its (original) session + position in it
            n_pairs_per_session = data.session_lengths - 1
            first_pair = np.cumsum(n_pairs_per_session) - n_pairs_per_session
            original = order[np.maximum(batches.session_index, 0)]
            pair_index = np.where(batches.valid, first_pair[original] + lane_positions(batches.resets), -1)
        tf_ranker = None
        state = scorer.start(lanes)
        cutoff_arr = np.asarray(cutoffs, dtype=np.float64)
        # lanes whose last session has ended are dropped (when the scorer can ``select``): see NextItemScorer
        can_select = callable(getattr(scorer, "select", None))
        steps_index = np.arange(batches.n_steps)[:, None]
        last_valid = np.where(batches.valid, steps_index, -1).max(axis=0)  # (lanes,) last busy step of each lane
        columns = np.arange(lanes)  # the lanes of ``batches`` the scorer's state rows hold, in order
        for t in range(batches.n_steps):
            if can_select:
                live = last_valid[columns] >= t
                if live.sum() < 0.75 * len(columns):
                    keep = np.flatnonzero(live)
                    state = scorer.select(state, keep)
                    columns = columns[keep]
            resets = batches.resets[t, columns]
            if resets.any():
                state = scorer.reset(state, resets)
            if target_times is None:
                scores, state = scorer.step(state, batches.inputs[t, columns])
            else:
                scores, state = scorer.step(state, batches.inputs[t, columns], times=target_times[t, columns])
            targets = batches.targets[t, columns]
            valid = batches.valid[t, columns]
            use_tf = ranker == "tf" or (ranker == "auto" and _on_gpu(scores))
            if use_tf:
                if tf_ranker is None:
                    tf_ranker = _TFRanker(tie_mode, k_max)
                target_scores, ranks, top = tf_ranker(scores, targets)
                if not valid.all():
                    target_scores, ranks, top = target_scores[valid], ranks[valid], top[valid]
            else:
                scores = np.asarray(scores)
                if not valid.all():
                    scores, targets = scores[valid], targets[valid]
                target_scores, ranks, top = rank_numpy(scores, targets, tie_mode, k_max, exact=return_ranks)
            ranks = np.where(np.isnan(target_scores), float(n_items), ranks)
            hit = ranks[:, None] < cutoff_arr if tie_mode == "seed" else ranks[:, None] <= cutoff_arr
            hits += hit.sum(axis=0)
            reciprocal += (hit / ranks[:, None]).sum(axis=0)
            for slot in range(top.shape[1]):
                column = top[:, slot]
                better = best_position[column] > slot
                best_position[column[better]] = slot
            if popularity is not None:
                pop_cum = np.cumsum(popularity[top].sum(axis=0))  # sum over predictions of the first j+1 slots
                pop_sum += np.asarray([pop_cum[min(k, k_max) - 1] / min(k, k_max) for k in cutoffs])
            if return_ranks:
                all_ranks[pair_index[t, columns][valid]] = ranks

    denominator = max(n_pairs, 1)
    for i, k in enumerate(cutoffs):
        result[f"recall@{k}"] = float(hits[i] / denominator) if n_pairs else math.nan
        result[f"mrr@{k}"] = float(reciprocal[i] / denominator) if n_pairs else math.nan
    for k in cutoffs:
        result[f"coverage@{k}"] = float(np.count_nonzero(best_position < k) / n_items) if n_pairs else math.nan
    if popularity is not None:
        for i, k in enumerate(cutoffs):
            result[f"popularity@{k}"] = float(pop_sum[i] / denominator) if n_pairs else math.nan
    result.update(
        n_events=int(n_pairs),
        n_sessions=int(data.n_sessions),
        n_items=int(n_items),
        n_dropped_unknown=int(data.n_dropped_unknown),
        tie_mode=tie_mode,
        cutoffs=list(cutoffs),
        batch_size=int(batch_size),
    )
    if return_ranks:
        result["ranks"] = all_ranks
        lengths = data.session_lengths - 1
        result["session_index"] = np.repeat(np.arange(data.n_sessions), lengths)
        first = np.cumsum(lengths) - lengths
        result["positions"] = np.arange(n_pairs) - np.repeat(first, lengths)
    return result


def metrics_only(result: dict) -> dict:
    """The JSON-friendly part of an ``evaluate`` result (drops the per-prediction arrays)."""
    return {key: value for key, value in result.items() if not isinstance(value, np.ndarray)}


def write_metrics(result: dict, path, **settings: Any) -> dict:
    """Write ``metrics_only(result)`` plus ``settings`` (e.g. the model or test path) as JSON, atomically.

    NaN (a test set without any prediction) is written as ``null``. Returns what was written.
    """
    import json

    from gru4rec.io import atomic_write

    payload = {**metrics_only(result), **settings}
    payload = {key: (None if isinstance(v, float) and math.isnan(v) else v) for key, v in payload.items()}
    with atomic_write(path) as handle:
        json.dump(payload, handle, indent=2)
        handle.write("\n")
    return payload


def format_table(result: dict) -> str:
    """The metrics as a small text table: one row per cut-off."""
    cutoffs = result["cutoffs"]
    columns = [name for name in ("recall", "mrr", "coverage", "popularity") if f"{name}@{cutoffs[0]}" in result]
    lines = ["K".rjust(4) + "".join(name.rjust(12) for name in columns)]
    for k in cutoffs:
        lines.append(str(k).rjust(4) + "".join(f"{result[f'{name}@{k}']:12.4f}" for name in columns))
    lines.append(
        f"{result['n_events']} predictions in {result['n_sessions']} sessions over {result['n_items']} items; "
        f"ties: {result['tie_mode']}; {result['n_dropped_unknown']} test events of unknown items dropped"
    )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# GRU4Rec as a scorer


class GRU4RecScorer:
    """A trained :class:`gru4rec.model.GRU4RecModel` behind the scorer protocol (inference: no dropout).

    State: the list of per-layer hidden states ``(batch, units)`` as tensors. Scores are the raw output scores
    ``hidden @ Wy.T + By`` (the final activation is monotone, so it does not change ranks).

    Two ways to compute the scores, chosen by ``output``:

    * ``"tf"``: GRU step and ``model.score_all`` in one ``tf.function``; ``step`` returns a ``tf.Tensor`` (use on a
      GPU: the evaluator then ranks on the device too);
    * ``"numpy"``: the GRU step in TF, the (batch, n_items) output product in numpy, with the bias folded into the
      product (``[h, 1] @ [Wy, By].T``) and written into a buffer that is reused at every step (so the returned
      array is only valid until the next ``step``), its rows split across the cores with single-threaded BLAS in
      each (:func:`gru4rec.parallel.matmul_rows`, which leaves no spinning BLAS threads behind to slow the ranking
      that follows). On the project's first 2-core CPU (AVX2) it was about twice as fast as TF's matmul + bias (56
      vs 110 ms for 512 x 100 x 37,500), and the numbers are the same up to float rounding. The output weights are
      copied at ``start`` (so every evaluation sees the current weights).
    * ``"auto"`` (default): ``tf`` when a GPU is visible, ``numpy`` otherwise.

    Args:
        model: the network.
        item_map: the training item map (checked against the test data); optional.
        item_support: training events per item index, for ``popularity@K``; optional.
        output: ``"auto"``, ``"tf"`` or ``"numpy"``.
    """

    def __init__(
        self,
        model,
        item_map: Optional[Any] = None,
        item_support: Optional[np.ndarray] = None,
        output: str = "auto",
    ):
        import tensorflow as tf

        if output not in ("auto", "tf", "numpy"):
            raise ValueError(f"output must be 'auto', 'tf' or 'numpy', got {output!r}")
        if output == "auto":
            output = "tf" if tf.config.list_logical_devices("GPU") else "numpy"
        self.model = model
        self.n_items = int(model.n_items)
        self.item_map = item_map
        self.item_support = item_support
        self.output = output

        @tf.function(reduce_retracing=True, autograph=False)
        def _step_scores(state, items):
            hidden, new_state = model.step(items, state, training=False)
            return model.score_all(hidden), new_state

        @tf.function(reduce_retracing=True, autograph=False)
        def _step_hidden(state, items):
            return model.step(items, state, training=False)

        @tf.function(reduce_retracing=True, autograph=False)
        def _reset(state, mask):
            keep = tf.cast(tf.logical_not(mask), state[0].dtype)[:, None]
            return [h * keep for h in state]

        self._tf = tf
        self._step_scores = _step_scores
        self._step_hidden = _step_hidden
        self._reset = _reset
        self._w1t: Optional[np.ndarray] = None  # (units + 1, n_items): [Wy, By].T, for output == "numpy"
        self._h1: Optional[np.ndarray] = None
        self._out: Optional[np.ndarray] = None

    def start(self, batch_size: int):
        batch_size = int(batch_size)
        if self.output == "numpy":
            wy = self.model.Wy.numpy()
            self._w1t = np.ascontiguousarray(np.vstack([wy.T, self.model.By.numpy()[None, :]]), dtype=np.float32)
            self._buffers(batch_size)
        return list(self.model.initial_state(batch_size))

    def _buffers(self, batch_size: int) -> None:
        self._h1 = np.ones((batch_size, self._w1t.shape[0]), dtype=np.float32)
        self._out = np.empty((batch_size, self.n_items), dtype=np.float32)

    def reset(self, state, mask: np.ndarray):
        return self._reset(state, self._tf.constant(np.asarray(mask, dtype=bool)))

    def select(self, state, rows: np.ndarray):
        rows = self._tf.constant(np.asarray(rows, dtype=np.int32))
        return [self._tf.gather(h, rows) for h in state]

    def step(self, state, items: np.ndarray):
        items = self._tf.constant(np.asarray(items, dtype=np.int32))
        if self.output == "tf":
            return self._step_scores(state, items)
        if self._w1t is None:
            raise RuntimeError("call start() before step()")
        hidden, state = self._step_hidden(state, items)
        batch = hidden.shape[0]
        if self._h1.shape[0] < batch:
            self._buffers(batch)
        # The first ``batch`` rows of the buffers: a smaller batch (lanes dropped by ``select``) reuses them, so no
        # new (batch, n_items) array is allocated and paged in.
        h1, out = self._h1[:batch], self._out[:batch]
        h1[:, :-1] = hidden.numpy()
        return matmul_rows(h1, self._w1t, out=out), state
