"""SR: the sequential rules of Ludewig & Jannach (UMUAI 2018), as rn5l/session-rec's ``SequentialRules`` scores them.

Training: for every event ``b`` of a training session and every earlier event ``a`` of the same session at most
``steps`` events back (``gap = pos(b) - pos(a)``), the rule ``item(a) -> item(b)`` gains ``weighting(gap)``
(:func:`gru4rec.baselines.decay.gap_weight`; ``quadratic``: 1/gap²). Then each item keeps only its ``pruning``
strongest rules (``pruning >= 1``: that many; ``0 < pruning < 1``: drop that fraction; 0: keep all).

Prediction: the scores of the next item are the rules of the session's **last** item only, divided by their
largest value (session-rec's ``series / series.max()``); every other item scores 0 (the many exact ties at zero
that the evaluator's tie modes decide).

As session-rec, on purpose:

* the weights of a rule are summed in the order session-rec's loop adds them (sessions by SessionId, the order of
  GRU4Rec files, events in time order, then gap 1, 2, ...), so the sums are bit-for-bit the same;
* pruning keeps, among rules of equal weight, the one seen first in the training data (``Counter.most_common``
  keeps insertion order among equals);
* ``pruning`` defaults to 20 (the class default; ``conf/example_next.yml`` sets only ``steps: 20`` and
  ``weighting: quadratic``).
"""

from __future__ import annotations

import numpy as np

from gru4rec.baselines.classic import SparseRows, _Baseline
from gru4rec.baselines.decay import check_weighting, gap_weight
from gru4rec.session_data import SessionData


class SequentialRules(_Baseline):
    """SR (session-rec's ``baselines.sr.SequentialRules``), scored for the session's last item.

    Args:
        steps: how many events back a rule may reach (session-rec's example configuration: 20).
        weighting: weight of a rule by its gap (``linear``, ``same``, ``div``, ``log``, ``quadratic``).
        pruning: rules kept per item (>= 1), or the fraction dropped (< 1), or 0 for all.
        normalize: divide each score row by its maximum, as session-rec (ranks are the same either way).
    """

    name = "sr"

    def __init__(self, steps: int = 20, weighting: str = "quadratic", pruning: float = 20.0, normalize: bool = True):
        if int(steps) != steps or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        if pruning < 0:
            raise ValueError(f"pruning must be >= 0, got {pruning!r}")
        self.steps = int(steps)
        self.weighting = check_weighting(weighting, "weighting")
        self.pruning = pruning
        self.normalize = bool(normalize)

    def params(self) -> dict:
        return {"steps": self.steps, "weighting": self.weighting, "pruning": self.pruning,
                "normalize": self.normalize}  # fmt: skip

    def fit(self, train: SessionData) -> SequentialRules:
        self._fit_common(train)
        n = self.n_items
        session_of_event = np.repeat(np.arange(train.n_sessions), train.session_lengths)
        after, before, gaps = [], [], []
        for gap in range(1, self.steps + 1):
            same = np.flatnonzero(session_of_event[gap:] == session_of_event[:-gap])  # events b with b - gap in it
            if len(same) == 0:
                break
            after.append(same + gap)
            before.append(same)
            gaps.append(np.full(len(same), gap, dtype=np.int64))
        if not after:
            self.rules = SparseRows(np.zeros(n + 1, dtype=np.int64), np.zeros(0, np.int32), np.zeros(0))
            return self
        after, before, gaps = np.concatenate(after), np.concatenate(before), np.concatenate(gaps)
        # session-rec's order of additions: sessions as its loop reads a GRU4Rec file (by SessionId), its events
        # in time order, then gap 1, 2, ...
        order = np.lexsort((gaps, after, train.session_ids[session_of_event[after]]))
        after, before, gaps = after[order], before[order], gaps[order]
        keys = train.items[before].astype(np.int64) * n + train.items[after]
        unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        values = np.bincount(inverse, weights=gap_weight(self.weighting, gaps), minlength=len(unique))
        rows, columns = unique // n, (unique % n).astype(np.int32)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n), out=offsets[1:])
        self.rules = _prune(SparseRows(offsets, columns, values), first, self.pruning)
        return self

    def step(self, state, items: np.ndarray):
        scores = self.rules.dense_rows(np.asarray(items), self.n_items)  # (batch, n_items)
        if self.normalize:
            top = scores.max(axis=1, keepdims=True)
            np.divide(scores, top, out=scores, where=top > 0)
        return scores, state


def _prune(rules: SparseRows, first_seen: np.ndarray, pruning: float) -> SparseRows:
    """Keep each row's strongest rules as session-rec's ``prune``: ties go to the rule seen first in training."""
    if pruning == 0:
        return rules
    counts = np.diff(rules.offsets)
    keep_n = np.full(rules.n_rows, int(pruning)) if pruning >= 1 else counts - (counts * pruning).astype(np.int64)
    row_of = np.repeat(np.arange(rules.n_rows), counts)
    order = np.lexsort((first_seen, -rules.values, row_of))
    rank_in_row = np.arange(len(order)) - rules.offsets[row_of[order]]
    keep = np.sort(order[rank_in_row < keep_n[row_of[order]]])
    offsets = np.zeros(rules.n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(row_of[keep], minlength=rules.n_rows), out=offsets[1:])
    return SparseRows(offsets, rules.columns[keep], rules.values[keep])
