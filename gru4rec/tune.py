"""Hyperparameter search with Optuna, trials in-process, on the official codes' parameter-space format.

The space file is the one of the official ``paropt.py`` (``paramspaces/*.json`` of the official repositories): one
JSON object a line with ``name`` (a :class:`gru4rec.config.Config` field), ``dtype`` (``int``, ``float`` or
``categorical``), ``values`` (``[low, high]``, or the choices of a categorical), optional ``step`` and ``log``.
:func:`read_space` parses it with errors naming the file, line and key.

:func:`tune` runs a study whose every trial trains with :func:`gru4rec.train.train` in this process (the official
``paropt.py`` starts one ``run.py`` per trial) and reports the validation metric after every epoch, so that the
pruner can stop hopeless trials after an epoch. The sampler is a seeded TPE. The study lives in SQLite
(``DIR/study.db``): a killed search resumes where it stopped, the interrupted trial rerun with the same parameters,
and ``n_trials`` counts the finished trials of the whole study, not of this call. A resume is refused when the fixed
settings, the space, the metric or the fingerprints of the training or validation data differ from the study's (the
error names what differs), and one search at a time holds the folder (``DIR/.lock``, ``run_folder.RunLock``).
Every value of a categorical parameter is checked before trial 0. The best parameters are written
(atomically) as ``DIR/best_params.json``, a JSON object of Config overrides that ``gru4rec train --params`` reads.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

from gru4rec.config import FIELD_NAMES, Config
from gru4rec.io import atomic_write
from gru4rec.session_data import SessionData
from gru4rec.train import Callback, train

DTYPES = ("int", "float", "categorical")
METRICS = ("recall@20", "mrr@20")  # what gru4rec.train evaluates on the validation data after every epoch
STUDY_NAME = "gru4rec"
STUDY_FILE = "study.db"
BEST_PARAMS_FILE = "best_params.json"
BEST_TRIAL_FILE = "best_trial.json"
PARAMSPACES_DIR = Path(__file__).resolve().parent / "resources" / "paramspaces"
STANDARD_SPACES = {
    "cross-entropy": PARAMSPACES_DIR / "gru4rec_xe_standard_parspace.json",
    "bpr-max": PARAMSPACES_DIR / "gru4rec_bprmax_standard_parspace.json",
}
"""The official repositories' two standard spaces (``paramspaces/``), shipped with the kit (source: README there)."""


class SpaceError(ValueError):
    """A parameter-space file that cannot be used; the message names the file, the line and what was expected."""


@dataclass(frozen=True)
class Parameter:
    """One searched hyperparameter, as a line of an official space file."""

    name: str
    dtype: str
    values: tuple
    step: Optional[float] = None
    log: bool = False

    def suggest(self, trial: Any) -> Any:
        """The trial's value (``trial.suggest_int``, ``suggest_float`` or ``suggest_categorical``)."""
        if self.dtype == "int":
            step = 1 if self.step is None else int(self.step)
            return trial.suggest_int(self.name, int(self.values[0]), int(self.values[1]), step=step, log=self.log)
        if self.dtype == "float":
            return trial.suggest_float(
                self.name, float(self.values[0]), float(self.values[1]), step=self.step, log=self.log
            )
        return trial.suggest_categorical(self.name, list(self.values))


def tidy(params: Mapping[str, Any]) -> dict:
    """Floats rounded to 12 decimals: a stepped ``suggest_float`` gives e.g. 0.30000000000000004 for 0.3."""
    return {name: round(value, 12) if isinstance(value, float) else value for name, value in params.items()}


def parse_parameter(obj: Any, where: str, names: Sequence[str] = FIELD_NAMES) -> Parameter:
    """A :class:`Parameter` from one decoded line; ``where`` (``file:line``) prefixes every error; ``names``: the
    hyperparameters it may name (default: the Config fields)."""
    if not isinstance(obj, dict):
        raise SpaceError(f"{where}: expected a JSON object with name, dtype, values; got {type(obj).__name__}")
    unknown = sorted(set(obj) - {"name", "dtype", "values", "step", "log"})
    if unknown:
        raise SpaceError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: name, dtype, values, step, log")
    for key in ("name", "dtype", "values"):
        if key not in obj:
            raise SpaceError(f"{where}: missing key {key!r}")
    name, dtype, values = obj["name"], obj["dtype"], obj["values"]
    if name not in names:
        raise SpaceError(f"{where}: name {name!r} is not a hyperparameter; known names: {', '.join(names)}")
    if dtype not in DTYPES:
        raise SpaceError(f"{where}: dtype {dtype!r} of {name!r}; allowed: {', '.join(DTYPES)}")
    if not isinstance(values, list) or not values:
        raise SpaceError(f"{where}: values of {name!r} must be a non-empty list")
    step, log = obj.get("step"), obj.get("log", False)
    if not isinstance(log, bool):
        raise SpaceError(f"{where}: log of {name!r} must be true or false, got {log!r}")
    if dtype == "categorical":
        if step is not None or log:
            raise SpaceError(f"{where}: step and log do not apply to the categorical {name!r}")
        return Parameter(name, dtype, tuple(values))
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
    if len(values) != 2 or not numbers or values[0] > values[1]:
        raise SpaceError(f"{where}: values of the {dtype} {name!r} must be [low, high] numbers with low <= high")
    if dtype == "int" and not all(float(v).is_integer() for v in values):
        raise SpaceError(f"{where}: values of the int {name!r} must be integers, got {values}")
    if step is not None:
        ok = isinstance(step, (int, float)) and not isinstance(step, bool) and step > 0
        if not ok or (dtype == "int" and not float(step).is_integer()):
            raise SpaceError(f"{where}: step of {name!r} must be a number > 0 (an integer for int), got {step!r}")
        if log:
            raise SpaceError(f"{where}: {name!r} has both step and log; Optuna takes one of them")
    if log and values[0] <= 0:
        raise SpaceError(f"{where}: log scale for {name!r} needs low > 0, got {values[0]}")
    return Parameter(name, dtype, tuple(values), step, log)


def read_space(path: Union[str, Path], names: Sequence[str] = FIELD_NAMES) -> list:
    """The parameters of an official space file (one JSON object a line; blank lines are skipped); ``names``: the
    hyperparameters it may name (default: the Config fields)."""
    path = Path(path)
    if not path.is_file():
        raise SpaceError(f"{path}: no such parameter-space file")
    space: list = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as error:
            raise SpaceError(f"{where}:{error.colno}: not a JSON object: {error.msg}") from None
        parameter = parse_parameter(obj, where, names)
        if any(p.name == parameter.name for p in space):
            raise SpaceError(f"{where}: {parameter.name!r} appears twice")
        space.append(parameter)
    if not space:
        raise SpaceError(f"{path}: no parameters (expected one JSON object a line)")
    return space


def check_space(space: Sequence[Parameter], base: Config) -> None:
    """Raise SpaceError when the corners of ``space`` (its lowest and highest values) do not give a valid Config, or
    when any value of a categorical parameter does not (each tried at both corners of the others): before trial 0,
    naming the parameter and the value."""
    for corner in (0, -1):
        values = {p.name: (p.values[corner] if p.dtype != "categorical" else p.values[0]) for p in space}
        try:
            base.with_overrides(**values)
        except ValueError as error:
            raise SpaceError(f"the space's {'lowest' if corner == 0 else 'highest'} values {values}: {error}") from None
        for p in space:
            if p.dtype != "categorical":
                continue
            for value in p.values:
                try:
                    base.with_overrides(**{**values, p.name: value})
                except ValueError as error:
                    raise SpaceError(f"the space's value {p.name}={value!r} (categorical): {error}") from None


def check_metric(metric: str) -> str:
    """``metric`` lower-cased if it is one the trials can report after every epoch; else a ValueError."""
    key = metric.lower()
    if key not in METRICS:
        raise ValueError(f"metric: unknown value {metric!r}; allowed: {', '.join(METRICS)} (on the validation data)")
    return key


def study_storage(out_dir: Union[str, Path]) -> str:
    """The SQLite URL of the study kept in ``out_dir``."""
    return f"sqlite:///{(Path(out_dir) / STUDY_FILE).resolve()}"


def load_study(out_dir: Union[str, Path], seed: int = 42, n_startup_trials: int = 5):
    """The study of ``out_dir`` (created if new): maximise, seeded TPE, median pruning after the first epoch."""
    import optuna

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    # the progress bar and the summary say what happened; a failing trial is reported by the caller as one line, so
    # Optuna's own report of it (a warning with the traceback) is not shown
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna.create_study(
        study_name=STUDY_NAME,
        storage=study_storage(out_dir),
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=0),
    )


def finished_trials(study) -> list:
    """Trials that count towards ``n_trials``: completed and pruned ones (failed ones are rerun)."""
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def requeue_interrupted(study) -> int:
    """Mark trials left RUNNING by a killed search as failed and queue their parameters again; returns how many.

    One search owns its folder, so a RUNNING trial at start-up belongs to a process that is gone."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(dict(trial.params), skip_if_exists=False)
    return len(stale)


def check_same_study(
    study, base: Config, space: Sequence[Parameter], metric: str, train_data: Optional[SessionData] = None,
    valid_data: Optional[SessionData] = None,
) -> None:  # fmt: skip
    """Record what decides a trial's score (the fixed settings, the space, the metric, the fingerprints of the
    training and validation data) in a new study; on a resumed one, raise ValueError naming what differs from the
    recorded values (trials of two different searches, or scored on other splits, must not mix)."""
    from gru4rec.run_folder import data_fingerprint, fingerprint_differences

    current = {"base_config": base.to_dict(), "space": [dataclasses.asdict(p) for p in space], "metric": metric}
    if train_data is not None:
        current["train_data"] = data_fingerprint(train_data)
    if valid_data is not None:
        current["valid_data"] = data_fingerprint(valid_data)
    current = json.loads(json.dumps(current))  # tuples as lists, as stored
    recorded = study.user_attrs
    differs = [key for key, value in current.items() if key in recorded and recorded[key] != value]

    def describe(key: str) -> str:
        if key == "base_config":
            was = recorded[key]
            return f"{key}: " + ", ".join(f"{name}={was.get(name)!r} (study) != {value!r} (now)"
                                          for name, value in current[key].items() if was.get(name) != value)
        if key in ("train_data", "valid_data"):
            words = "training data (--train)" if key == "train_data" else "validation data (--valid)"
            return f"{words}: " + ", ".join(fingerprint_differences(recorded[key], current[key]) or ["differs"])
        return f"{key}: {recorded[key]!r} (study) != {current[key]!r} (now)"

    if differs:
        details = "; ".join(describe(key) for key in differs)
        raise ValueError(f"the study in this folder was made with other settings ({details}); use another --out")
    for key, value in current.items():
        if key not in recorded:
            study.set_user_attr(key, value)


@dataclass
class TuneResult:
    """What :func:`tune` leaves behind (all of it also in ``out_dir``)."""

    out_dir: Path
    metric: str
    best_value: float
    best_params: dict  # the searched parameters of the best trial
    best_config: Config  # the base configuration with them
    best_trial: int
    n_finished: int  # completed + pruned trials of the whole study
    n_pruned: int
    n_run_now: int  # trials run by this call
    study: Any = field(repr=False, default=None)


class _EpochReporter(Callback):
    """A :class:`gru4rec.train.Callback` that reports the validation metric to the trial after every epoch and
    stops the trial (``optuna.TrialPruned``) when the pruner says so."""

    def __init__(self, trial: Any, metric: str):
        self.trial = trial
        self.key = f"valid_{metric}"
        self.values: list = []

    def on_epoch_end(self, record: dict) -> None:
        import optuna

        value = float(record[self.key])
        self.values.append(value)
        self.trial.report(value, step=int(record["epochs_done"]))
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"{self.key} {value:.4f} after epoch {record['epochs_done']}")


def run_trial(trial: Any, space: Sequence[Parameter], base: Config, train_data: SessionData,
              valid_data: SessionData, metric: str, run_dir: Path) -> float:  # fmt: skip
    """Train one trial's configuration into ``run_dir`` (removed afterwards) and return its last epoch's metric."""
    params = tidy({p.name: p.suggest(trial) for p in space})
    config = base.with_overrides(**params)
    reporter = _EpochReporter(trial, metric)
    shutil.rmtree(run_dir, ignore_errors=True)
    try:
        train(config, train_data, run_dir, valid_data=valid_data, callbacks=[reporter], progress=False)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        gc.collect()
    trial.set_user_attr("per_epoch", reporter.values)
    return reporter.values[-1]


def write_best(out_dir: Path, study, base: Config, metric: str) -> tuple:
    """Write ``best_params.json`` (Config overrides: the whole best configuration) and ``best_trial.json``."""
    best = study.best_trial
    config = base.with_overrides(**tidy(best.params))
    with atomic_write(out_dir / BEST_PARAMS_FILE) as handle:
        handle.write(json.dumps(config.to_dict(), indent=2) + "\n")
    summary = {"metric": metric, "value": best.value, "trial": best.number, "params": tidy(best.params),
               "n_finished": len(finished_trials(study))}  # fmt: skip
    with atomic_write(out_dir / BEST_TRIAL_FILE) as handle:
        handle.write(json.dumps(summary, indent=2) + "\n")
    return config, best


def tune(
    train_data: SessionData,
    valid_data: SessionData,
    space: Sequence[Parameter],
    out_dir: Union[str, Path],
    base: Optional[Config] = None,
    n_trials: int = 30,
    metric: str = "mrr@20",
    seed: int = 42,
    n_startup_trials: int = 5,
    progress: bool = True,
) -> TuneResult:
    """Run (or resume) the study in ``out_dir`` until it has ``n_trials`` finished trials; see the module docstring.

    ``base`` (default ``Config.preset("official")``) holds the fixed settings, ``space`` the searched ones;
    ``valid_data`` must use the training item map. Trial run folders go to ``out_dir/trial_run`` and are removed
    after each trial. Returns the best trial and writes ``best_params.json`` / ``best_trial.json``.
    """
    metric = check_metric(metric)
    if n_trials < 1:
        raise ValueError(f"n_trials: must be >= 1, got {n_trials}")
    base = base or Config.preset("official")
    check_space(space, base)
    if valid_data.n_items != train_data.n_items:
        raise ValueError("valid_data must use the training item map (SessionData.from_frame(df, item_map=...))")
    if valid_data.n_pairs == 0:
        raise ValueError("valid_data: no (item, next item) pair of known items to score the trials on")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from gru4rec.run_folder import RunLock

    with RunLock(out_dir):  # one search per folder: a second one gets an error naming the holder
        return _tune_locked(train_data, valid_data, space, out_dir, base, n_trials, metric, seed, n_startup_trials,
                            progress)  # fmt: skip


def _tune_locked(train_data: SessionData, valid_data: SessionData, space: Sequence[Parameter], out_dir: Path,
                 base: Config, n_trials: int, metric: str, seed: int, n_startup_trials: int,
                 progress: bool) -> TuneResult:  # fmt: skip
    """:func:`tune` once its folder is locked."""
    study = load_study(out_dir, seed=seed, n_startup_trials=n_startup_trials)
    check_same_study(study, base, space, metric, train_data, valid_data)
    requeue_interrupted(study)
    done_before = len(finished_trials(study))
    left = max(n_trials - done_before, 0)
    bar = None
    if progress and left:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_trials, initial=done_before, desc=f"tune {metric}", unit="trial")

    def show_best(study, trial) -> None:
        if bar is None:
            return
        bar.n = len(finished_trials(study))
        completed = [t for t in study.get_trials(deepcopy=False) if t.value is not None]
        if completed:
            bar.set_postfix(best=f"{max(t.value for t in completed):.4f}", last=trial.state.name.lower())
        bar.refresh()

    def objective(trial) -> float:
        return run_trial(trial, space, base, train_data, valid_data, metric, out_dir / "trial_run")

    try:  # a failing trial (an error other than pruning) stops the search: its message is the user's to read
        study.optimize(objective, n_trials=left, callbacks=[show_best], catch=())
    finally:
        if bar is not None:
            bar.close()
    finished = finished_trials(study)
    if not any(t.value is not None and t.state.name == "COMPLETE" for t in finished):
        raise RuntimeError(f"{out_dir}: no trial completed; nothing to write")
    config, best = write_best(out_dir, study, base, metric)
    n_now = len(finished) - done_before
    n_pruned = sum(t.state.name == "PRUNED" for t in finished)
    return TuneResult(out_dir, metric, float(best.value), tidy(best.params), config, best.number, len(finished),
                      n_pruned, n_now, study)  # fmt: skip


def read_params(path: Union[str, Path]) -> dict:
    """The Config overrides of a ``--params`` file (a JSON object); errors name the file, line and column."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such parameter file")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text (byte {error.start}: {error.object[error.start:error.start + 1]!r}); "
                         "expected a JSON object of hyperparameters") from None  # fmt: skip
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{error.lineno}:{error.colno}: not valid JSON: {error.msg}") from None
    if not isinstance(values, dict):
        kind = type(values).__name__
        raise ValueError(f"{path}: expected a JSON object of hyperparameters (name: value), got a JSON {kind}")
    return values


def config_with_params(base: Config, params: Mapping[str, Any], source: str = "params") -> Config:
    """``base`` with the overrides of a parameter file; a bad name or value is reported with ``source``."""
    try:
        return base.with_overrides(**dict(params))
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None


def parse_fixed(text: str) -> dict:
    """The official ``-fp`` string ``name1=value1,name2=value2`` as a dict of strings (Config converts them)."""
    values: dict = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"fixed: {part!r} is not name=value (expected e.g. loss=bpr-max,n_epochs=3)")
        values[name.strip()] = value.strip()
    return values


def space_path(name_or_path: str) -> Path:
    """``xe`` / ``cross-entropy`` / ``bpr-max`` name a shipped standard space; anything else is a file path."""
    aliases = {"xe": "cross-entropy", "cross-entropy": "cross-entropy", "bpr-max": "bpr-max", "bprmax": "bpr-max"}
    if name_or_path in aliases:
        return STANDARD_SPACES[aliases[name_or_path]]
    return Path(name_or_path)
