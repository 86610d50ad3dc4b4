"""What notebook 04 (evaluation) computes around :func:`gru4rec.evaluate.evaluate`: the same models counted with
different tie rules, Recall@K for every K, recall by position in the session, the oracle of a synthetic preset, and
one session's recommendations click by click.

Every function takes plain data or scorers and returns plain data (DataFrames, dicts); the figures are drawn by
:mod:`gru4rec.plots.evaluation`. The ranks come from the evaluator (``evaluate(..., return_ranks=True)``), so every
number here is counted by the same code as the headline metrics.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from gru4rec.session_data import ItemMap, SessionData

__all__ = [
    "TIE_MODE_LABELS",
    "tie_mode_table",
    "recall_curve",
    "recall_by_position",
    "preset_oracle",
    "session_walkthrough",
]

TIE_MODE_LABELS = {
    "seed": "seed: ties count as hits, rank < K",
    "standard": "standard: ties count as hits, rank ≤ K",
    "median": "median: ties split, rank ≤ K",
    "conservative": "conservative: ties count against, rank ≤ K",
}
"""How each tie mode of :mod:`gru4rec.evaluate` counts a prediction, for tables and legends."""


def tie_mode_table(
    scorers: Mapping[str, Any],
    data: SessionData,
    k: int = 20,
    modes: Sequence[str] = ("seed", "standard", "median", "conservative"),
    batch_size: int = 512,
) -> pd.DataFrame:
    """Recall@k and MRR@k of every scorer under every tie mode (one evaluation each, same data and cut-off).

    Returns one row per (model, mode): ``model``, ``tie_mode``, ``counting`` (a readable label), ``recall@k``,
    ``mrr@k`` and ``n_events``; models and modes in the order given.
    """
    from gru4rec.evaluate import evaluate

    rows = []
    for name, scorer in scorers.items():
        for mode in modes:
            result = evaluate(scorer, data, cutoffs=(k,), tie_mode=mode, batch_size=batch_size)
            rows.append(
                {
                    "model": name,
                    "tie_mode": mode,
                    "counting": TIE_MODE_LABELS.get(mode, mode),
                    f"recall@{k}": result[f"recall@{k}"],
                    f"mrr@{k}": result[f"mrr@{k}"],
                    "n_events": result["n_events"],
                }
            )
    return pd.DataFrame(rows)


def recall_curve(ranks: np.ndarray, ks: Sequence[int] = tuple(range(1, 51))) -> pd.DataFrame:
    """Recall@K and MRR@K for every K of ``ks`` from the ranks of the evaluator (rank ≤ K is a hit).

    Returns columns ``K``, ``recall``, ``mrr`` (NaN when there is no rank).
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    ks = np.asarray(list(ks), dtype=np.int64)
    if len(ranks) == 0:
        return pd.DataFrame({"K": ks, "recall": np.nan, "mrr": np.nan})
    hits = ranks[None, :] <= ks[:, None]
    return pd.DataFrame(
        {"K": ks, "recall": hits.mean(axis=1), "mrr": np.where(hits, 1.0 / ranks[None, :], 0.0).mean(axis=1)}
    )


def recall_by_position(
    ranks: np.ndarray, positions: np.ndarray, k: int = 20, max_position: int = 10
) -> pd.DataFrame:
    """Recall@k and MRR@k by how many clicks of the session the model had seen when it predicted.

    ``positions`` are the evaluator's (0 = the prediction made after the first click); the table's ``clicks_seen``
    is ``position + 1``, and every prediction after ``max_position`` or more clicks is pooled in the last row
    (``label`` ``"≥ max_position"``). Columns: ``clicks_seen``, ``label``, ``n`` (predictions), ``share`` (of all),
    ``recall@k``, ``mrr@k``.
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.int64)
    if ranks.shape != positions.shape:
        raise ValueError(f"ranks and positions must have the same shape, got {ranks.shape} and {positions.shape}")
    if max_position < 1:
        raise ValueError(f"max_position must be >= 1, got {max_position}")
    seen = np.minimum(positions + 1, max_position)
    hit = ranks <= k
    reciprocal = np.where(hit, 1.0 / np.maximum(ranks, 1.0), 0.0)
    rows = []
    for clicks in range(1, max_position + 1):
        mask = seen == clicks
        n = int(mask.sum())
        if n == 0:
            continue
        rows.append(
            {
                "clicks_seen": clicks,
                "label": f"≥ {clicks}" if clicks == max_position else str(clicks),
                "n": n,
                "share": n / len(ranks),
                f"recall@{k}": float(hit[mask].mean()),
                f"mrr@{k}": float(reciprocal[mask].mean()),
            }
        )
    return pd.DataFrame(rows, columns=["clicks_seen", "label", "n", "share", f"recall@{k}", f"mrr@{k}"])


def preset_oracle(preset: str, item_map: ItemMap, seed: int = 42):
    """The Bayes-optimal scorer (:class:`gru4rec.synthetic.OracleScorer`) of a synthetic preset, for ``item_map``.

    The generator draws the process (items, intents, transitions) first from ``numpy.random.default_rng(seed)`` and
    only then the sessions, so the process is rebuilt here without generating any click. Evaluated on the preset's
    test split with the training item map, it gives back the ceiling stored with the preset
    (``PresetFiles.ceiling()``), and its ranks give the ceiling at every K.
    """
    from gru4rec import synthetic

    if preset not in synthetic.PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(synthetic.PRESETS)}")
    process = synthetic.make_process(synthetic.PRESETS[preset], np.random.default_rng(seed))
    return synthetic.OracleScorer(process, item_map)


def session_walkthrough(
    recommender: Any,
    item_ids: Sequence[int],
    k: int = 5,
    session_id: Optional[Any] = "walkthrough",
) -> pd.DataFrame:
    """One session click by click, as a live system would see it (:meth:`gru4rec.recommend.Recommender.observe`).

    For every click but the last: ``click`` (1-based), ``clicked`` (its ItemId), ``next`` (the ItemId that really
    came next), ``rank_of_next`` (its place in the model's full ranking; ties, which trained models rarely have,
    are broken by ``tf.math.top_k``'s order) and ``top_k`` (the first ``k`` recommendations, best first).
    The session is ended afterwards so the recommender keeps no state.
    """
    items = [int(i) for i in item_ids]
    if len(items) < 2:
        raise ValueError("a walkthrough needs a session of at least two clicks")
    n_items = int(recommender.n_items)
    rows = []
    try:
        for position, (clicked, following) in enumerate(zip(items[:-1], items[1:]), start=1):
            ranked = recommender.observe(session_id, clicked, k=n_items)
            where = np.flatnonzero(ranked.item_ids == following)
            rows.append(
                {
                    "click": position,
                    "clicked": clicked,
                    "next": following,
                    "rank_of_next": int(where[0]) + 1 if len(where) else None,
                    f"top_{k}": [int(i) for i in ranked.item_ids[:k]],
                }
            )
    finally:
        recommender.end_session(session_id)
    return pd.DataFrame(rows)
