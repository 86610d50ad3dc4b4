"""What notebook 01 (data preparation) computes about a click log: counts, session lengths, item popularity and its
Zipf slope, the time split on a timeline, and the oracle's reading of one session.

Every function takes plain frames/arrays (``SessionId``, ``ItemId``, ``Time`` columns) and returns plain data; the
figures are drawn by :mod:`gru4rec.plots.data`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from gru4rec.io import ITEM_KEY, SESSION_KEY, TIME_KEY
from gru4rec.rsc15 import DAY

__all__ = [
    "counts",
    "session_lengths",
    "length_histogram",
    "item_counts",
    "ZipfFit",
    "zipf_fit",
    "top_share",
    "split_boundaries",
    "split_timeline",
    "sessions_starting_before",
    "oracle_trace",
]


def counts(frame: pd.DataFrame) -> dict:
    """``{"events", "sessions", "items"}`` of a SessionId/ItemId/Time frame, as plain ints."""
    return {
        "events": int(len(frame)),
        "sessions": int(frame[SESSION_KEY].nunique()),
        "items": int(frame[ITEM_KEY].nunique()),
    }


def session_lengths(frame: pd.DataFrame) -> np.ndarray:
    """Events per session, (n_sessions,) int64, in SessionId order."""
    if len(frame) == 0:
        return np.zeros(0, dtype=np.int64)
    _, lengths = np.unique(frame[SESSION_KEY].to_numpy(), return_counts=True)
    return lengths.astype(np.int64)


def length_histogram(lengths: np.ndarray, max_length: Optional[int] = None) -> pd.DataFrame:
    """Sessions per length: columns ``length`` (1 .. max) and ``sessions``; lengths above ``max_length`` are
    summed into the last row (``length == max_length``, flagged in ``clipped``)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(lengths) == 0:
        return pd.DataFrame({"length": np.zeros(0, np.int64), "sessions": np.zeros(0, np.int64), "clipped": []})
    top = int(lengths.max()) if max_length is None else int(max_length)
    if top < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    binned = np.bincount(np.minimum(lengths, top), minlength=top + 1)[1:]
    clipped = np.zeros(top, dtype=bool)
    clipped[-1] = bool((lengths > top).any())
    return pd.DataFrame({"length": np.arange(1, top + 1), "sessions": binned.astype(np.int64), "clipped": clipped})


def item_counts(frame: pd.DataFrame) -> np.ndarray:
    """Events per item, sorted from the most to the least popular item ((n_items,) int64): the rank-frequency list."""
    if len(frame) == 0:
        return np.zeros(0, dtype=np.int64)
    _, support = np.unique(frame[ITEM_KEY].to_numpy(), return_counts=True)
    return np.sort(support)[::-1].astype(np.int64)


@dataclass(frozen=True)
class ZipfFit:
    """``count ≈ exp(intercept) · rank^slope`` fitted by least squares on log count against log rank.

    ``slope`` is negative; ``-slope`` is the Zipf exponent. Only ranks ``1 .. n_fitted`` (the items with at least
    ``min_count`` events) enter the fit: the tail of items seen once or twice is a staircase of small integers that
    a straight line cannot follow.
    """

    slope: float
    intercept: float
    n_fitted: int
    min_count: int

    @property
    def exponent(self) -> float:
        return -self.slope

    def predict(self, ranks: np.ndarray) -> np.ndarray:
        return np.exp(self.intercept) * np.asarray(ranks, dtype=np.float64) ** self.slope


def zipf_fit(sorted_counts: np.ndarray, min_count: int = 5) -> ZipfFit:
    """Fit the Zipf line to a rank-frequency list (from :func:`item_counts`); needs two or more items with at least
    ``min_count`` events."""
    sorted_counts = np.asarray(sorted_counts, dtype=np.float64)
    if len(sorted_counts) > 1 and np.any(np.diff(sorted_counts) > 0):
        raise ValueError("zipf_fit expects counts sorted from the largest to the smallest (see item_counts)")
    n_fitted = int(np.count_nonzero(sorted_counts >= min_count))
    if n_fitted < 2:
        raise ValueError(f"zipf_fit needs at least two items with >= {min_count} events, found {n_fitted}")
    log_rank = np.log(np.arange(1, n_fitted + 1, dtype=np.float64))
    slope, intercept = np.polyfit(log_rank, np.log(sorted_counts[:n_fitted]), 1)
    return ZipfFit(float(slope), float(intercept), n_fitted, int(min_count))


def top_share(sorted_counts: np.ndarray, fraction: float = 0.01) -> float:
    """Share of all events that fall on the most popular ``fraction`` of the items (at least one item)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    sorted_counts = np.asarray(sorted_counts, dtype=np.float64)
    total = sorted_counts.sum()
    if total == 0:
        return 0.0
    n_top = max(1, int(round(fraction * len(sorted_counts))))
    return float(sorted_counts[:n_top].sum() / total)


def split_boundaries(stats: Mapping) -> dict:
    """The two cut times of the RSC15 split (unix seconds), from a stats dict of :func:`gru4rec.rsc15.split`:
    ``test`` = ``tmax - 1 day`` (sessions whose LAST click is at or after it are the test set) and ``train_valid`` =
    ``tmax_train_full - 1 day`` (the same rule inside ``train_full``)."""
    return {
        "test": float(stats["tmax"]) - DAY,
        "train_valid": float(stats["tmax_train_full"]) - DAY,
    }


def split_timeline(splits: Mapping[str, pd.DataFrame], bin_seconds: float = 3600.0) -> pd.DataFrame:
    """Events per time bin and split: columns ``bin_start`` (UTC timestamps), ``split``, ``events``.

    ``splits`` maps a label (e.g. ``train_tr``, ``train_valid``, ``test``) to its frame. Bins are aligned to whole
    multiples of ``bin_seconds`` since the epoch and cover the span of all the splits; empty bins are kept (0).
    """
    if bin_seconds <= 0:
        raise ValueError(f"bin_seconds must be > 0, got {bin_seconds}")
    times = [frame[TIME_KEY].to_numpy(dtype=np.float64) for frame in splits.values()]
    non_empty = [t for t in times if len(t)]
    if not non_empty:
        return pd.DataFrame({"bin_start": pd.to_datetime([], utc=True), "split": [], "events": []})
    first = np.floor(min(t.min() for t in non_empty) / bin_seconds)
    last = np.floor(max(t.max() for t in non_empty) / bin_seconds)
    n_bins = int(last - first) + 1
    starts = pd.to_datetime((first + np.arange(n_bins)) * bin_seconds, unit="s", utc=True)
    parts = []
    for label, t in zip(splits, times):
        index = (np.floor(t / bin_seconds) - first).astype(np.int64)
        events = np.bincount(index, minlength=n_bins) if len(t) else np.zeros(n_bins, dtype=np.int64)
        parts.append(pd.DataFrame({"bin_start": starts, "split": label, "events": events.astype(np.int64)}))
    return pd.concat(parts, ignore_index=True)


def sessions_starting_before(frame: pd.DataFrame, boundary: float) -> int:
    """Sessions of ``frame`` whose first click is before ``boundary``: in a hold-out split these are the sessions
    that cross the cut (they belong to the hold-out because the rule looks at a session's LAST click)."""
    if len(frame) == 0:
        return 0
    first = frame.groupby(SESSION_KEY, sort=False)[TIME_KEY].min().to_numpy()
    return int(np.count_nonzero(first < boundary))


def oracle_trace(process, item_map, session_item_ids: Sequence[int], true_intent: Optional[int] = None) -> pd.DataFrame:
    """How the Bayes-optimal predictor (:class:`gru4rec.synthetic.OracleScorer`) reads one session, click by click.

    One row per click except the last: ``position`` (1-based), ``item`` (ItemId), ``next_item``, ``p_next`` (the
    oracle's probability ``P(next click | clicks so far)`` of the click that really came next), ``rank_next`` (its
    rank among the catalogue of ``item_map``, ties counted against it, as in the evaluation), ``top_intent`` and
    ``p_top_intent`` (the most probable intent after this click and its posterior probability), and with
    ``true_intent`` the posterior probability of the session's real intent (``p_true_intent``).
    """
    from gru4rec.synthetic import OracleScorer

    ids = np.asarray(session_item_ids, dtype=np.int64)
    if len(ids) < 2:
        raise ValueError("oracle_trace needs a session of at least two clicks")
    index = item_map.index_of(ids)
    if np.any(index < 0):
        raise ValueError("oracle_trace: every click of the session must be in item_map")
    oracle = OracleScorer(process, item_map)
    state = oracle.start(1)
    rows = []
    for t in range(len(ids) - 1):
        scores, state = oracle.step(state, index[t : t + 1])
        scores = scores[0]
        target = scores[index[t + 1]]
        posterior = np.exp(state["log_post"][0] - state["log_post"][0].max())
        posterior /= posterior.sum()
        top = int(np.argmax(posterior))
        row = {
            "position": t + 1,
            "item": int(ids[t]),
            "next_item": int(ids[t + 1]),
            "p_next": float(target),
            "rank_next": int(np.count_nonzero(scores >= target)),
            "top_intent": top,
            "p_top_intent": float(posterior[top]),
        }
        if true_intent is not None:
            row["p_true_intent"] = float(posterior[int(true_intent)])
        rows.append(row)
    return pd.DataFrame(rows)
