"""Sampled metrics: the target ranked among N sampled negatives instead of the whole catalogue. A biased protocol.

Many papers and libraries (RecBole's ``uni100`` / ``pop100``, the sequential examples of microsoft/recommenders)
rank each test target against ``N`` sampled items only (often 100) and report Recall@K / NDCG@K / MRR@K over those
``N + 1`` candidates. Krichene & Rendle ("On sampled metrics for item recommendation", KDD 2020) show that such
metrics are not even consistent with the full-catalogue ones: they inflate every metric, compress the differences
between models, and can reverse their order. This module exists to *reproduce* such published numbers and to show
the bias (notebook 08); the honest protocol is :func:`gru4rec.evaluate.evaluate` (``gru4rec evaluate`` without
``--sampled``).

The protocol here:

* every prediction of the honest protocol (every event of every test session but the last, scorer state as in
  :mod:`gru4rec.evaluate`) is kept; only the competitors change;
* each prediction gets ``N`` negatives drawn **without replacement** from the training catalogue, the target
  excluded: ``uniform`` (every other item equally likely) or ``popularity`` (probability proportional to the item's
  training support, the "pop100" variant). Items with zero support are never drawn by ``popularity``;
* the draw is seeded and belongs to the prediction (its index in data order, session by session), so the same seed
  gives the same negatives whatever the batch size, and the same negatives for every model;
* the negatives are drawn with the Gumbel-top-k trick (the ``N`` largest ``log w + Gumbel`` keys, in decreasing key
  order), which is successive sampling without replacement: the first ``n`` negatives of a draw are themselves a
  draw of ``n``. A sweep over ``N`` therefore uses nested sets of negatives from one draw;
* the rank of the target among itself and its ``N`` negatives follows the tie modes of the honest evaluator
  (``conservative`` by default: a negative scoring exactly as the target is ranked above it; ``seed``: ties as hits
  and a hit when ``rank < K``). A NaN target score gets the worst rank, ``N + 1``.

Reported: ``recall@K`` and ``mrr@K`` over the ``N + 1`` candidates (coverage and popularity of the top-K list have
no meaning here and are left out), ``n_events`` etc. as in :func:`gru4rec.evaluate.evaluate`, and ``protocol``:
``{"sampled": N, "sampling": ..., "seed": ...}``.

Cost: one full scoring pass per evaluation (scores of every item are computed, then gathered at the negatives) plus
the draw, which touches ``n_predictions × n_items`` random keys (in row blocks).
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from gru4rec.batching import epoch_batches
from gru4rec.evaluate import (
    DEFAULT_CUTOFFS,
    NextItemScorer,
    _check_compatible,
    _comparisons,
    _validate,
    lane_positions,
    longest_first,
    ranks_from_counts,
    reorder_sessions,
)
from gru4rec.session_data import SessionData

SAMPLINGS = ("uniform", "popularity")
DRAW_BLOCK_CELLS = 8_000_000  # random keys drawn at once (rows x n_items): about 64 MB of float64
BIASED_WARNING = (
    "warning: sampled metrics (the target among {n} {sampling}-sampled negatives) are biased: they inflate every "
    "metric and can change the order of models (Krichene & Rendle, KDD 2020); the honest numbers: {honest}"
)


def targets_in_data_order(data: SessionData) -> np.ndarray:
    """The true next item of every prediction, session by session (every item but the first of its session).

    Returns ``(n_pairs,)`` int32 item indices.
    """
    keep = np.ones(data.n_events, dtype=bool)
    keep[data.offsets[:-1][data.session_lengths > 0]] = False
    return data.items[keep].astype(np.int32)


def _sampling_weights(sampling: str, n_items: int, item_support: Optional[np.ndarray]) -> np.ndarray:
    """Unnormalised sampling weights ``(n_items,)`` of the negatives."""
    if sampling not in SAMPLINGS:
        raise ValueError(f"unknown sampling {sampling!r}; choose one of {', '.join(SAMPLINGS)}")
    if sampling == "uniform":
        return np.ones(n_items, dtype=np.float64)
    if item_support is None:
        raise ValueError("popularity sampling needs the training support of the items (item_support)")
    weights = np.asarray(item_support, dtype=np.float64)
    if weights.shape != (n_items,):
        raise ValueError(f"item_support must have shape ({n_items},), got {weights.shape}")
    if (weights < 0).any() or not np.isfinite(weights).all():
        raise ValueError("item_support must be finite and non-negative")
    return weights


def draw_negatives(
    targets: np.ndarray,
    n_items: int,
    n_negatives: int,
    sampling: str = "uniform",
    item_support: Optional[np.ndarray] = None,
    seed: int = 0,
) -> np.ndarray:
    """``n_negatives`` distinct negatives for every target, the target excluded, ``(n_targets, n_negatives)`` int32.

    ``uniform``: every other item equally likely; ``popularity``: proportional to ``item_support`` (items with zero
    support are never drawn). Each row is a sample without replacement in the order of successive sampling (its
    first ``n`` columns are a sample of ``n``). Row ``i`` depends only on ``seed`` and the rows before it, drawn in
    fixed blocks, so the result does not depend on how the caller batches anything.
    """
    targets = np.asarray(targets, dtype=np.int64)
    n_negatives = int(n_negatives)
    if n_negatives < 1:
        raise ValueError(f"the number of sampled negatives must be >= 1, got {n_negatives}")
    weights = _sampling_weights(sampling, n_items, item_support)
    if len(targets) and (targets.min() < 0 or targets.max() >= n_items):
        raise ValueError(f"targets must be item indices in [0, {n_items})")
    # every row must have n_negatives drawable items besides its target
    drawable = np.count_nonzero(weights > 0) - (weights[targets] > 0 if len(targets) else 0)
    if len(targets) and np.min(drawable) < n_negatives:
        raise ValueError(
            f"cannot draw {n_negatives} distinct negatives: only {int(np.min(drawable))} other items can be drawn "
            f"({sampling} sampling over {n_items} items); use fewer negatives"
        )
    log_w = np.log(np.where(weights > 0, weights, 1.0))
    log_w[weights <= 0] = -np.inf
    rng = np.random.default_rng(seed)
    out = np.empty((len(targets), n_negatives), dtype=np.int32)
    block = max(1, DRAW_BLOCK_CELLS // max(n_items, 1))
    for lo in range(0, len(targets), block):
        hi = min(lo + block, len(targets))
        uniforms = rng.random((hi - lo, n_items))
        keys = log_w[None, :] - np.log(-np.log(uniforms))  # log w + Gumbel(0, 1)
        keys[np.arange(hi - lo), targets[lo:hi]] = -np.inf
        if n_negatives < n_items:
            top = np.argpartition(keys, n_items - n_negatives, axis=1)[:, n_items - n_negatives :]
        else:
            top = np.broadcast_to(np.arange(n_items), keys.shape)
        order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1, kind="stable")
        out[lo:hi] = np.take_along_axis(top, order, axis=1)[:, :n_negatives]
    return out


def _scored_steps(scorer: NextItemScorer, data: SessionData, batch_size: int) -> Iterator[tuple]:
    """The honest evaluator's lanes, step by step: ``(scores (rows, n_items), targets (rows,), pair_index (rows,))``
    for the valid lanes of each step; ``pair_index`` is the prediction's index in data order.

    A scorer with ``needs_times = True`` gets ``step(state, items, times=...)``: ``times`` ``(batch,)`` float64, the
    time of the event being predicted (0 on idle lanes), as the honest evaluator passes it.
    """
    if data.n_sessions == 0:
        return
    lanes = min(int(batch_size), data.n_sessions)
    order = longest_first(data)
    ordered = reorder_sessions(data, order)
    batches = epoch_batches(ordered, lanes, shuffle=False)
    positions = lane_positions(batches.resets)
    n_pairs_per_session = data.session_lengths - 1
    first_pair = np.cumsum(n_pairs_per_session) - n_pairs_per_session
    session = np.maximum(batches.session_index, 0)  # sessions of ``ordered``
    pair_index = np.where(batches.valid, first_pair[order[session]] + positions, -1)
    target_times = None
    if getattr(scorer, "needs_times", False):
        target_event = np.minimum(ordered.offsets[session] + positions + 1, ordered.n_events - 1)
        target_times = np.where(batches.valid, ordered.times[target_event], 0.0)  # (steps, lanes)
    state = scorer.start(lanes)
    for t in range(batches.n_steps):
        resets = batches.resets[t]
        if resets.any():
            state = scorer.reset(state, resets)
        if target_times is None:
            scores, state = scorer.step(state, batches.inputs[t])
        else:
            scores, state = scorer.step(state, batches.inputs[t], times=target_times[t])
        valid = batches.valid[t]
        if not valid.any():
            continue
        scores = np.asarray(scores)[valid]
        yield scores, batches.targets[t][valid], pair_index[t][valid]


def sampled_ranks(
    scorer: NextItemScorer,
    data: SessionData,
    negatives: np.ndarray,
    sizes: Optional[Sequence[int]] = None,
    tie_mode: str = "conservative",
    batch_size: int = 512,
) -> np.ndarray:
    """The rank of every target among itself and the first ``n`` of its negatives, for each ``n`` of ``sizes``.

    Args:
        scorer: a :class:`gru4rec.evaluate.NextItemScorer`.
        data: the test sessions, indexed with the scorer's item map.
        negatives: ``(n_pairs, N)`` item indices from :func:`draw_negatives`, rows in data order.
        sizes: numbers of negatives (each ``<= N``); default ``[N]``.
        tie_mode: as in :func:`gru4rec.evaluate.evaluate`.
        batch_size: sessions scored side by side (speed only).

    Returns:
        ``(len(sizes), n_pairs)`` float64 ranks in ``1 .. n + 1`` (``median`` may give x.5), in data order.
    """
    _validate((1,), tie_mode, batch_size)
    _check_compatible(scorer, data)
    negatives = np.asarray(negatives)
    if negatives.ndim != 2 or negatives.shape[0] != data.n_pairs:
        raise ValueError(f"negatives must have shape ({data.n_pairs}, N), got {negatives.shape}")
    sizes = [negatives.shape[1]] if sizes is None else [int(n) for n in sizes]
    if not sizes or min(sizes) < 1 or max(sizes) > negatives.shape[1]:
        raise ValueError(f"sizes must lie in 1 .. {negatives.shape[1]} (the negatives drawn), got {sizes}")
    need_gt, need_ge = _comparisons(tie_mode)
    columns = np.asarray(sizes) - 1
    ranks = np.empty((len(sizes), data.n_pairs), dtype=np.float64)
    for scores, targets, pair_index in _scored_steps(scorer, data, batch_size):
        rows = np.arange(len(targets))
        target_scores = scores[rows, targets][:, None]  # (rows, 1)
        competitor = np.take_along_axis(scores, negatives[pair_index].astype(np.int64), axis=1)  # (rows, N)
        # counts over the first n negatives, for every n at once; the target itself counts in >=
        n_gt = np.cumsum(competitor > target_scores, axis=1)[:, columns].T if need_gt else None
        n_ge = np.cumsum(competitor >= target_scores, axis=1)[:, columns].T + 1 if need_ge else None
        step_ranks = ranks_from_counts(n_gt, n_ge, tie_mode)  # (len(sizes), rows)
        worst = (np.asarray(sizes, dtype=np.float64) + 1.0)[:, None]
        ranks[:, pair_index] = np.where(np.isnan(target_scores[:, 0])[None, :], worst, step_ranks)
    return ranks


def metrics_from_ranks(ranks: np.ndarray, cutoffs: Sequence[int], tie_mode: str) -> dict:
    """``recall@K`` and ``mrr@K`` from ranks (a hit: ``rank <= K``; ``rank < K`` for the ``seed`` count)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    result = {}
    for k in cutoffs:
        hit = ranks < k if tie_mode == "seed" else ranks <= k
        result[f"recall@{k}"] = float(hit.mean()) if len(ranks) else math.nan
        result[f"mrr@{k}"] = float(np.where(hit, 1.0 / ranks, 0.0).mean()) if len(ranks) else math.nan
    return result


def evaluate_sampled(
    scorer: NextItemScorer,
    data: SessionData,
    n_negatives: int = 100,
    sampling: str = "uniform",
    seed: int = 0,
    cutoffs: Sequence[int] = DEFAULT_CUTOFFS,
    tie_mode: str = "conservative",
    batch_size: int = 512,
    item_support: Optional[np.ndarray] = None,
) -> dict:
    """Recall@K and MRR@K with the target ranked among ``n_negatives`` sampled negatives (biased: module docstring).

    ``item_support`` (training events per item index) defaults to ``scorer.item_support``; it is needed for
    ``popularity`` sampling. Returns the keys of :func:`gru4rec.evaluate.evaluate` except coverage and popularity,
    plus ``protocol``: ``{"sampled": n_negatives, "sampling": sampling, "seed": seed}``.
    """
    cutoffs = _validate(cutoffs, tie_mode, batch_size)
    if item_support is None:
        item_support = getattr(scorer, "item_support", None)
    negatives = draw_negatives(
        targets_in_data_order(data), data.n_items, n_negatives, sampling, item_support=item_support, seed=seed
    )
    ranks = sampled_ranks(scorer, data, negatives, tie_mode=tie_mode, batch_size=batch_size)[0]
    result: dict[str, Any] = metrics_from_ranks(ranks, cutoffs, tie_mode)
    result.update(
        n_events=int(data.n_pairs),
        n_sessions=int(data.n_sessions),
        n_items=int(data.n_items),
        n_dropped_unknown=int(data.n_dropped_unknown),
        tie_mode=tie_mode,
        cutoffs=list(cutoffs),
        batch_size=int(batch_size),
        protocol={"sampled": int(n_negatives), "sampling": sampling, "seed": int(seed)},
    )
    return result


def biased_warning(n_negatives: int, sampling: str, honest_command: str) -> str:
    """The one-line warning printed by ``--sampled``: the protocol is biased, and the command for honest numbers."""
    return BIASED_WARNING.format(n=n_negatives, sampling=sampling, honest=honest_command)
