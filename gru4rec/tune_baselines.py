"""Hyperparameter search for a baseline (SR, SKNN, V-SKNN, STAN, ...) with the same Optuna harness as GRU4Rec.

A trial fits the baseline with the trial's parameters on the training data and scores it once on the validation data
(the kit's evaluator: all items, conservative ties); there is no epoch, so nothing is pruned. The study, its resume,
the seeded TPE sampler and the space format are :mod:`gru4rec.tune`'s; the space names the baseline's parameters
(session-rec's spaces for its methods are shipped: ``resources/paramspaces/{sr,sknn,vsknn,stan}_parspace.json``).
``DIR/best_params.json`` is a JSON object of the baseline's parameters (the fixed ones and the best trial's).
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

from gru4rec.baselines import BASELINES, make_baseline
from gru4rec.evaluate import evaluate
from gru4rec.io import atomic_write
from gru4rec.session_data import SessionData
from gru4rec.tune import (
    BEST_PARAMS_FILE,
    BEST_TRIAL_FILE,
    PARAMSPACES_DIR,
    Parameter,
    check_metric,
    check_same_study,
    finished_trials,
    load_study,
    read_space,
    requeue_interrupted,
    tidy,
)

BASELINE_SPACES = {method: PARAMSPACES_DIR / f"{method}_parspace.json" for method in ("sr", "sknn", "vsknn", "stan")}


def parameter_names(method: str) -> list[str]:
    """The constructor parameters of baseline ``method`` (what a space or ``--fixed`` may name)."""
    if method not in BASELINES:
        raise ValueError(f"unknown baseline {method!r}; choose one of {', '.join(BASELINES)}")
    signature = inspect.signature(BASELINES[method].__init__)
    return [name for name in signature.parameters if name != "self"]


def read_baseline_space(method: str, path: Optional[Union[str, Path]] = None) -> list:
    """The space of ``method``: ``path``, or the shipped session-rec space of the method."""
    if path is None:
        if method not in BASELINE_SPACES:
            raise ValueError(f"no space is shipped for baseline {method!r} (only {', '.join(BASELINE_SPACES)}); "
                             "give a space file")  # fmt: skip
        path = BASELINE_SPACES[method]
    return read_space(path, names=parameter_names(method))


@dataclass(frozen=True)
class BaselineBase:
    """The fixed settings of a baseline search (recorded in the study, so a resume with others is refused)."""

    method: str
    params: Mapping[str, Any]

    def to_dict(self) -> dict:
        return {"method": self.method, **dict(self.params)}


@dataclass
class BaselineTuneResult:
    out_dir: Path
    metric: str
    best_value: float
    best_params: dict  # fixed and searched parameters of the best trial
    best_trial: int
    n_finished: int
    n_run_now: int


def tune_baseline(
    method: str,
    train_data: SessionData,
    valid_data: SessionData,
    space: Sequence[Parameter],
    out_dir: Union[str, Path],
    fixed: Optional[Mapping[str, Any]] = None,
    n_trials: int = 30,
    metric: str = "mrr@20",
    seed: int = 42,
    n_startup_trials: int = 5,
    progress: bool = True,
) -> BaselineTuneResult:
    """Run (or resume) the study in ``out_dir`` until it has ``n_trials`` finished trials of ``method``."""
    metric = check_metric(metric)
    if n_trials < 1:
        raise ValueError(f"n_trials: must be >= 1, got {n_trials}")
    fixed = dict(fixed or {})
    names = parameter_names(method)
    unknown = [name for name in fixed if name not in names]
    if unknown:
        raise ValueError(f"fixed parameter(s) {', '.join(unknown)} not of baseline {method!r}; its: {', '.join(names)}")
    both = [p.name for p in space if p.name in fixed]
    if both:
        raise ValueError(f"{', '.join(both)}: both fixed and searched")
    BASELINES[method](**fixed)  # bad fixed values fail here, before the study is touched
    if valid_data.n_items != train_data.n_items:
        raise ValueError("valid_data must use the training item map (SessionData.from_frame(df, item_map=...))")
    out_dir = Path(out_dir)
    study = load_study(out_dir, seed=seed, n_startup_trials=n_startup_trials)
    check_same_study(study, BaselineBase(method, fixed), space, metric)
    requeue_interrupted(study)
    done_before = len(finished_trials(study))
    left = max(n_trials - done_before, 0)

    def objective(trial) -> float:
        params = {**fixed, **tidy({p.name: p.suggest(trial) for p in space})}
        result = evaluate(make_baseline(method, train_data, **params), valid_data, cutoffs=(20,))
        return float(result[metric])

    bar = None
    if progress and left:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_trials, initial=done_before, desc=f"tune {method} {metric}", unit="trial")

    def show(study, trial) -> None:
        if bar is not None:
            bar.n = len(finished_trials(study))
            bar.set_postfix(best=f"{study.best_value:.4f}")
            bar.refresh()

    try:
        study.optimize(objective, n_trials=left, callbacks=[show], catch=())
    finally:
        if bar is not None:
            bar.close()
    best = study.best_trial
    params = {**fixed, **tidy(best.params)}
    with atomic_write(out_dir / BEST_PARAMS_FILE) as handle:
        handle.write(json.dumps(params, indent=2) + "\n")
    finished = finished_trials(study)
    summary = {"method": method, "metric": metric, "value": best.value, "trial": best.number, "params": params,
               "n_finished": len(finished)}  # fmt: skip
    with atomic_write(out_dir / BEST_TRIAL_FILE) as handle:
        handle.write(json.dumps(summary, indent=2) + "\n")
    return BaselineTuneResult(out_dir, metric, float(best.value), params, best.number, len(finished),
                              len(finished) - done_before)  # fmt: skip
