"""Baselines as next-item scorers for :func:`gru4rec.evaluate.evaluate` (the ``NextItemScorer`` protocol).

* :mod:`gru4rec.baselines.classic`: the GRU4Rec paper's POP, S-POP, item-kNN and first-order Markov.
* :mod:`gru4rec.baselines.rules`: SR, the sequential rules of rn5l/session-rec.
* :mod:`gru4rec.baselines.session_knn`: SKNN, V-SKNN and STAN as session-rec scores them, vectorised over lanes.

``make_baseline(name, train, **params)`` fits one by name; ``docs/baselines.md`` tells what each computes and where it
departs from session-rec.
"""

from __future__ import annotations

from gru4rec.baselines.classic import ItemKNN, Markov, Pop, SessionPop, SparseRows, _Baseline
from gru4rec.baselines.rules import SequentialRules
from gru4rec.baselines.session_knn import STAN, VSKNN, SessionKNN
from gru4rec.session_data import SessionData

BASELINES = {
    "pop": Pop,
    "spop": SessionPop,
    "itemknn": ItemKNN,
    "markov": Markov,
    "sr": SequentialRules,
    "sknn": SessionKNN,
    "vsknn": VSKNN,
    "stan": STAN,
}


def make_baseline(method: str, train: SessionData, **params) -> _Baseline:
    """A fitted baseline by name (one of :data:`BASELINES`); ``params`` go to its constructor."""
    try:
        cls = BASELINES[method]
    except KeyError:
        raise ValueError(f"unknown baseline {method!r}; choose one of {', '.join(BASELINES)}") from None
    return cls(**params).fit(train)


__all__ = ["BASELINES", "STAN", "VSKNN", "ItemKNN", "Markov", "Pop", "SequentialRules", "SessionKNN", "SessionPop",
           "SparseRows", "make_baseline"]
