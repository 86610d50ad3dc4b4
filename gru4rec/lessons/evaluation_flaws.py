"""What notebook 08 (evaluation flaws) computes: the same models measured honestly and with a flawed protocol.

Hidasi & Czapp, "Widespread flaws in offline evaluation of recommender systems" (RecSys 2023, arXiv 2307.14951),
name the flaws; Krichene & Rendle (KDD 2020) analyse sampled metrics. Each flaw here is a plain transformation of
the data or of the protocol, so that a learner can run it on the same models and watch whether the verdict moves:

* **sampled metrics** (:func:`sampled_sweep`): the target among ``N`` sampled negatives (:mod:`gru4rec.sampled_eval`);
* **leakage through time** (:func:`random_session_split`): test sessions drawn at random from the whole period, so
  training holds sessions later than the test ones, instead of the last day;
* **non-sequential data** (:func:`shuffle_within_sessions`): the order of the events inside every session shuffled
  in training and test;
* **over-eager preprocessing** (:func:`drop_long_sessions`, :func:`k_core_sessions`): test sessions filtered more
  aggressively than the RSC15 rules;
* the **optimistic count** of notebook 04 (``tie_mode="seed"``).

The verdict: :func:`model_order` ranks the models by a metric, :func:`compare` puts the honest and the flawed numbers
side by side with each model's place, and :func:`verdict` says whether the order changed and which pairs swapped.
Functions take plain data or scorers and return new objects (DataFrames, dicts); figures are in
:mod:`gru4rec.plots.evaluation_flaws`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from gru4rec.io import ITEM_KEY, SESSION_KEY, TIME_KEY
from gru4rec.session_data import SessionData

__all__ = [
    "CORE_MODELS",
    "OPTIONAL_MODELS",
    "MODEL_LABELS",
    "available_models",
    "FittedModels",
    "fit_models",
    "evaluate_models",
    "sampled_sweep",
    "model_order",
    "compare",
    "verdict",
    "verdict_sentence",
    "random_session_split",
    "shuffle_within_sessions",
    "drop_long_sessions",
    "k_core_filter",
    "k_core_sessions",
    "sweep_metrics",
    "sweep_verdicts",
    "flaw_record",
    "overview",
    "verdict_table",
]

CORE_MODELS = ("gru4rec", "pop", "itemknn", "markov")
"""GRU4Rec and the baselines every run of the notebook includes."""
OPTIONAL_MODELS = ("sr", "vsknn")
"""session-rec's sequential rules and vector session-kNN: included when :func:`gru4rec.baselines.make_baseline`
knows them (:func:`available_models`), reported as skipped otherwise."""
MODEL_LABELS = {
    "gru4rec": "GRU4Rec",
    "pop": "POP",
    "spop": "S-POP",
    "itemknn": "item-kNN",
    "markov": "Markov",
    "sr": "SR",
    "vsknn": "V-SKNN",
}


def available_models(requested: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(included, skipped)``: ``gru4rec`` and every requested baseline that ``make_baseline`` knows, in the order
    given, and the requested names it does not know (the notebook prints both)."""
    from gru4rec.baselines import BASELINES

    included, skipped = [], []
    for name in requested:
        (included if name == "gru4rec" or name in BASELINES else skipped).append(name)
    return included, skipped


@dataclass
class FittedModels:
    """Scorers fitted on one training set: ``scorers`` by name, ``fit_seconds`` by name, the training data."""

    train: SessionData
    scorers: dict = field(default_factory=dict)
    fit_seconds: dict = field(default_factory=dict)
    gru4rec_losses: list = field(default_factory=list)
    gru4rec_run: Optional[Path] = None  # the run folder GRU4Rec's model comes from (another one when reused)


def fit_models(
    names: Sequence[str],
    train_data: SessionData,
    config: Any = None,
    run_dir: Optional[Path] = None,
    on_model: Optional[Callable[[str, float], None]] = None,
    reuse: Sequence[Path] = (),
) -> FittedModels:
    """Fit every model of ``names`` on ``train_data``: GRU4Rec with ``config`` into ``run_dir`` (trained afresh:
    an existing run there is replaced), or read from the first folder of ``reuse`` that holds a finished run of
    ``config`` on ``train_data`` (``gru4rec.reuse``; ``gru4rec_run`` says which folder); the others with
    :func:`gru4rec.baselines.make_baseline` (their defaults).

    ``on_model(name, seconds)`` is called after each fit (progress in the notebook).
    """
    from gru4rec.baselines import make_baseline

    fitted = FittedModels(train=train_data)
    for name in names:
        start = time.perf_counter()
        if name == "gru4rec":
            if config is None or run_dir is None:
                raise ValueError("GRU4Rec needs a config and a run_dir")
            from gru4rec.evaluate import GRU4RecScorer
            from gru4rec.reuse import train_or_reuse

            result = train_or_reuse(config, train_data, run_dir, reuse=reuse, progress=False, replace=True)
            fitted.scorers[name] = GRU4RecScorer(result.model, train_data.item_map, train_data.item_counts)
            fitted.gru4rec_losses = list(result.epoch_losses)
            fitted.gru4rec_run = Path(result.run_dir)
        else:
            fitted.scorers[name] = make_baseline(name, train_data)
        fitted.fit_seconds[name] = time.perf_counter() - start
        if on_model is not None:
            on_model(name, fitted.fit_seconds[name])
    return fitted


def evaluate_models(
    scorers: Mapping[str, Any], data: SessionData, k: int = 20, tie_mode: str = "conservative", batch_size: int = 512
) -> dict:
    """``{model: {"recall@k", "mrr@k", "n_events"}}`` with the honest evaluator (full catalogue)."""
    from gru4rec.evaluate import evaluate

    out = {}
    for name, scorer in scorers.items():
        result = evaluate(scorer, data, cutoffs=(k,), tie_mode=tie_mode, batch_size=batch_size)
        out[name] = {f"recall@{k}": result[f"recall@{k}"], f"mrr@{k}": result[f"mrr@{k}"],
                     "n_events": result["n_events"]}  # fmt: skip
    return out


def sampled_sweep(
    scorers: Mapping[str, Any],
    data: SessionData,
    sizes: Sequence[int],
    sampling: str,
    item_support: np.ndarray,
    k: int = 20,
    seed: int = 0,
    tie_mode: str = "conservative",
    batch_size: int = 512,
) -> pd.DataFrame:
    """Recall@k and MRR@k of every model with the target among ``n`` sampled negatives, for each ``n`` of ``sizes``.

    One draw of ``max(sizes)`` negatives per prediction (seeded, the same for every model); a smaller ``n`` uses
    the first ``n`` of them (a sample of ``n`` itself, :func:`gru4rec.sampled_eval.draw_negatives`), and one
    scoring pass per model gives every ``n``. Returns rows ``model``, ``sampling``, ``n_negatives``, ``recall@k``,
    ``mrr@k``.
    """
    from gru4rec.sampled_eval import draw_negatives, metrics_from_ranks, sampled_ranks, targets_in_data_order

    sizes = sorted({int(n) for n in sizes})
    negatives = draw_negatives(
        targets_in_data_order(data), data.n_items, sizes[-1], sampling, item_support=item_support, seed=seed
    )
    rows = []
    for name, scorer in scorers.items():
        ranks = sampled_ranks(scorer, data, negatives, sizes=sizes, tie_mode=tie_mode, batch_size=batch_size)
        for n, row in zip(sizes, ranks):
            rows.append({"model": name, "sampling": sampling, "n_negatives": n,
                         **metrics_from_ranks(row, (k,), tie_mode)})  # fmt: skip
    return pd.DataFrame(rows, columns=["model", "sampling", "n_negatives", f"recall@{k}", f"mrr@{k}"])


# ----------------------------------------------------------------------------------------------------------------
# The verdict


def model_order(metrics: Mapping[str, Mapping[str, float]], key: str) -> list:
    """Model names from best to worst by ``metrics[model][key]`` (equal values keep the order given)."""
    names = list(metrics)
    return sorted(names, key=lambda name: (-float(metrics[name][key]), names.index(name)))


def compare(
    honest: Mapping[str, Mapping[str, float]], flawed: Mapping[str, Mapping[str, float]], k: int = 20
) -> pd.DataFrame:
    """One row per model: the honest and the flawed Recall@k and MRR@k, the flawed / honest ratio of Recall@k, and
    the model's place (1 = best) by Recall@k under each protocol. Models in the order of ``honest``."""
    if set(honest) != set(flawed):
        raise ValueError(f"the same models must be measured both ways: {sorted(honest)} vs {sorted(flawed)}")
    recall, mrr = f"recall@{k}", f"mrr@{k}"
    honest_place = {name: i + 1 for i, name in enumerate(model_order(honest, recall))}
    flawed_place = {name: i + 1 for i, name in enumerate(model_order(flawed, recall))}
    rows = []
    for name in honest:
        h, f = honest[name], flawed[name]
        rows.append({
            "model": name,
            f"honest {recall}": float(h[recall]),
            f"flawed {recall}": float(f[recall]),
            "ratio": float(f[recall]) / float(h[recall]) if float(h[recall]) > 0 else float("nan"),
            f"honest {mrr}": float(h[mrr]),
            f"flawed {mrr}": float(f[mrr]),
            "honest place": honest_place[name],
            "flawed place": flawed_place[name],
        })  # fmt: skip
    return pd.DataFrame(rows)


def verdict(honest: Mapping[str, Mapping[str, float]], flawed: Mapping[str, Mapping[str, float]], key: str) -> dict:
    """Whether the flaw changes the order of the models by ``key``.

    Returns ``honest_order`` and ``flawed_order`` (best first; equal values keep the order given), ``swapped`` (the
    pairs ``[a, b]`` with a strictly ahead of b honestly and strictly behind it under the flaw), ``tied`` (pairs
    separated honestly that the flaw scores exactly equal, e.g. every model at Recall@20 = 1 with fewer than 20
    negatives) and ``order_changes`` (some pair swapped; a tie alone is not a change of order).
    """
    honest_order, flawed_order = model_order(honest, key), model_order(flawed, key)
    h = {m: float(honest[m][key]) for m in honest_order}
    f = {m: float(flawed[m][key]) for m in honest_order}
    pairs = list(combinations(honest_order, 2))  # a before b: h[a] >= h[b]
    swapped = [[a, b] for a, b in pairs if h[a] > h[b] and f[a] < f[b]]
    tied = [[a, b] for a, b in pairs if h[a] > h[b] and f[a] == f[b]]
    return {"key": key, "honest_order": honest_order, "flawed_order": flawed_order,
            "order_changes": bool(swapped), "swapped": swapped, "tied": tied}  # fmt: skip


def verdict_sentence(result: Mapping[str, Any], labels: Mapping[str, str] = MODEL_LABELS) -> str:
    """A sentence for the notebook, written from a :func:`verdict` (never staged: it reads the computed orders)."""
    name = lambda m: labels.get(m, m)  # noqa: E731
    honest = " > ".join(name(m) for m in result["honest_order"])
    tied = result.get("tied", [])
    ties = f" (tied by the flaw: {', '.join(f'{name(a)} = {name(b)}' for a, b in tied)})" if tied else ""
    if not result["order_changes"]:
        return f"the order of the models by {result['key']} does not change: {honest}{ties}"
    flawed = " > ".join(name(m) for m in result["flawed_order"])
    pairs = ", ".join(f"{name(a)} / {name(b)}" for a, b in result["swapped"])
    return f"the order by {result['key']} changes: honestly {honest}; with the flaw {flawed} (swapped: {pairs}){ties}"


# ----------------------------------------------------------------------------------------------------------------
# The flawed data


def _check_frame(frame: pd.DataFrame, what: str) -> None:
    missing = [c for c in (SESSION_KEY, ITEM_KEY, TIME_KEY) if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)}; expected SessionId, ItemId, Time")


def random_session_split(
    train_frame: pd.DataFrame, test_frame: pd.DataFrame, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The leaky split: as many test sessions as ``test_frame`` holds, drawn at random from all sessions of both.

    The time split (the RSC15 rules) tests on the sessions of the last day and trains on the earlier ones; here the
    test sessions come from the whole period, so most of them have training sessions *after* them (the model has
    seen the future of its test data). Returns new ``(train, test)`` frames (rows in their input order); index the
    test frame with the training item map as usual (unknown items dropped, short sessions removed).
    """
    _check_frame(train_frame, "train")
    _check_frame(test_frame, "test")
    both = pd.concat([train_frame, test_frame], ignore_index=True)
    sessions = both[SESSION_KEY].unique()
    n_test = test_frame[SESSION_KEY].nunique()
    if len(sessions) != train_frame[SESSION_KEY].nunique() + n_test:
        raise ValueError("a SessionId occurs in both the training and the test frame: split by session first")
    rng = np.random.default_rng(seed)
    test_ids = rng.choice(sessions, size=n_test, replace=False)
    is_test = both[SESSION_KEY].isin(test_ids).to_numpy()
    return both[~is_test].reset_index(drop=True), both[is_test].reset_index(drop=True)


def shuffle_within_sessions(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The same sessions with the order of their events shuffled: every session keeps its timestamps and its items,
    but the items are assigned to the timestamps in a random order (seeded). Returns a new frame."""
    _check_frame(frame, "frame")
    ordered = frame.sort_values([SESSION_KEY, TIME_KEY], kind="stable").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    keys = rng.random(len(ordered))
    # within each session, the items in the order of random keys; the timestamps stay where they were
    permuted = np.lexsort((keys, ordered[SESSION_KEY].to_numpy()))
    out = ordered.copy()
    out[ITEM_KEY] = ordered[ITEM_KEY].to_numpy()[permuted]
    return out


def drop_long_sessions(data: SessionData, max_length: int) -> SessionData:
    """The test sessions with at most ``max_length`` events (the others dropped whole), in their order."""
    from gru4rec.evaluate import reorder_sessions

    if max_length < 2:
        raise ValueError(f"max_length must be >= 2 (a session needs two events to be evaluated), got {max_length}")
    return reorder_sessions(data, np.flatnonzero(data.session_lengths <= max_length))


def k_core_filter(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """The k-core of the sessions-by-items data: repeatedly drop items with fewer than ``k`` events and sessions
    with fewer than ``k`` events until neither is left (rows in their input order)."""
    _check_frame(frame, "frame")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    out = frame
    while True:
        item_counts = out[ITEM_KEY].map(out[ITEM_KEY].value_counts())
        session_counts = out[SESSION_KEY].map(out[SESSION_KEY].value_counts())
        keep = ((item_counts >= k) & (session_counts >= k)).to_numpy()
        if keep.all():
            return out.reset_index(drop=True)
        out = out[keep]


def k_core_sessions(train_frame: pd.DataFrame, test_frame: pd.DataFrame, k: int, item_map) -> SessionData:
    """The test sessions that survive a k-core filter of the whole data (training and test together), indexed with
    the training ``item_map``: what a paper that k-core filters its data set evaluates on. The models are not
    refitted (they stay those of the original training data), so only the test set changes."""
    core = k_core_filter(pd.concat([train_frame, test_frame], ignore_index=True), k)
    test_core = core[core[SESSION_KEY].isin(test_frame[SESSION_KEY].unique())]
    return SessionData.from_frame(test_core, item_map)


# ----------------------------------------------------------------------------------------------------------------
# Records of the notebook


def sweep_metrics(sweep: pd.DataFrame, n_negatives: int, sampling: str, k: int = 20) -> dict:
    """``{model: {"recall@k", "mrr@k"}}`` at one point of a :func:`sampled_sweep` table (models in table order)."""
    part = sweep[(sweep["n_negatives"] == n_negatives) & (sweep["sampling"] == sampling)]
    if part.empty:
        raise ValueError(f"the sweep has no row with {n_negatives} {sampling}-sampled negatives")
    return {row["model"]: {f"recall@{k}": row[f"recall@{k}"], f"mrr@{k}": row[f"mrr@{k}"]}
            for row in part.to_dict("records")}  # fmt: skip


def sweep_verdicts(sweep: pd.DataFrame, honest: Mapping[str, Mapping[str, float]], k: int = 20) -> pd.DataFrame:
    """For every (sampling, N) of a sweep: the order of the models by sampled Recall@k, whether it differs from the
    honest order, the pairs swapped and the pairs it ties (:func:`verdict`). Columns ``sampling``, ``n_negatives``,
    ``order``, ``order_changes``, ``swapped``, ``tied``."""
    rows = []
    for (sampling, n), _ in sweep.groupby(["sampling", "n_negatives"], sort=False):
        flawed = sweep_metrics(sweep, n, sampling, k)
        result = verdict({m: honest[m] for m in flawed}, flawed, f"recall@{k}")
        rows.append({"sampling": sampling, "n_negatives": int(n), "order": result["flawed_order"],
                     "order_changes": result["order_changes"], "swapped": result["swapped"],
                     "tied": result["tied"]})  # fmt: skip
    return pd.DataFrame(rows, columns=["sampling", "n_negatives", "order", "order_changes", "swapped", "tied"])


def flaw_record(
    flaw: str, honest: Mapping[str, Mapping[str, float]], flawed: Mapping[str, Mapping[str, float]], k: int = 20
) -> dict:
    """One flaw, recorded: ``flaw``, ``k``, ``rows`` (:func:`compare`), and the verdicts by ``recall`` and ``mrr``."""
    return {
        "flaw": flaw,
        "k": k,
        "rows": compare(honest, flawed, k).to_dict("records"),
        "recall": verdict(honest, flawed, f"recall@{k}"),
        "mrr": verdict(honest, flawed, f"mrr@{k}"),
    }


def overview(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Every model under every flaw: ``flaw``, ``model``, ``honest``, ``flawed`` (Recall@k), ``ratio`` and
    ``order_changes`` (by Recall@k), from :func:`flaw_record` records."""
    rows = []
    for record in records:
        k = record["k"]
        for row in record["rows"]:
            rows.append({"flaw": record["flaw"], "model": row["model"], "honest": row[f"honest recall@{k}"],
                         "flawed": row[f"flawed recall@{k}"], "ratio": row["ratio"],
                         "order_changes": record["recall"]["order_changes"]})  # fmt: skip
    return pd.DataFrame(rows, columns=["flaw", "model", "honest", "flawed", "ratio", "order_changes"])


def verdict_table(records: Sequence[Mapping[str, Any]], labels: Mapping[str, str] = MODEL_LABELS) -> pd.DataFrame:
    """One row per flaw: whether the order of the models by Recall@k and by MRR@k changes, and the swapped pairs."""
    name = lambda m: labels.get(m, m)  # noqa: E731
    rows = []
    for record in records:
        rows.append({
            "flaw": record["flaw"],
            "order by Recall changes": record["recall"]["order_changes"],
            "swapped (Recall)": ", ".join(f"{name(a)} / {name(b)}" for a, b in record["recall"]["swapped"]) or "-",
            "order by MRR changes": record["mrr"]["order_changes"],
            "swapped (MRR)": ", ".join(f"{name(a)} / {name(b)}" for a, b in record["mrr"]["swapped"]) or "-",
        })  # fmt: skip
    return pd.DataFrame(rows)
