"""The widget playground of notebook 00: its logic as plain functions, and the ipywidgets UI that wraps them.

The functions do the work and are what the tests and papermill run:

- :class:`Controls` holds the values of the playground's controls; :func:`make_config` turns them into a
  :class:`gru4rec.config.Config` (the official RSC15 setting of Hidasi's code, with the controls applied);
  :func:`controls_for_loss` moves the controls that go with a loss (learning rate, momentum, ``bpreg``, final
  activation, dropouts) to the settings of :mod:`gru4rec.loss_settings`, as the loss control does in the UI;
- :func:`load_playground_data` loads a data preset once per kernel with its yardsticks: the baselines of
  :mod:`gru4rec.baselines` and the Bayes ceiling of the synthetic data (:meth:`PresetFiles.ceiling`);
- :func:`run_experiment` trains one model (:func:`gru4rec.train.train`), evaluates it on the test split
  (:func:`gru4rec.evaluate.evaluate`) and returns a plain record (Recall@K / MRR@K, losses, events/s, settings);
  :class:`LossCurve` turns the trainer's log records into the points of the live loss curve;
- :class:`RunHistory` keeps the records and compares them as a DataFrame; :func:`results_table` puts a run next to
  the baselines and the ceiling.

:class:`Playground` is the UI: controls, a Train button, a live plotly chart of the loss, the results table and the
history. Its Train button runs :meth:`Playground.train`, a thin wrapper over :func:`run_experiment`, in a background
thread.

Why a thread: the kernel stays free while a run trains, so other cells can run and, above all, a re-run of the
playground cell (a learner's "Run All", or an edited cell) takes effect at once. The run belongs to its runs folder
(:class:`LiveRun`, one at a time per folder), not to the widgets that started it: the new playground takes it over,
its curve and status line continue there (the status line says so), and its record joins the history that
:func:`kernel_history` keeps for the kernel. When the handler trained synchronously, a re-run waited in the kernel's
queue until the run ended, while the old widgets were already gone from the page and their updates ended up in
"Error setting state: Cannot read properties of undefined" in the browser's console (plotly's ``FigureWidget`` view
keeps listening to its model after it is removed; the chart is therefore a plain ``Output`` widget holding the
figure's plotly mime bundle, which takes updates without views silently). Widget messages leave the kernel from any
thread, and the browser test (tests/test_browser_playground.py, JupyterLab 4.6 / ipykernel 7.4 / ipywidgets 8.1 /
plotly 7.1, headless Chromium) sees the live trace grow while the run trains and re-runs the cell mid-run. Only the
thread of the run changes the figure and the history; the Train button of every playground over the folder is
disabled while it trains, and the chart is redrawn at most every :data:`DRAW_EVERY_S` seconds.
"""

from __future__ import annotations

import dataclasses
import html
import math
import os
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd

from gru4rec.config import LOSSES, Config
from gru4rec.divergence import DivergenceWatch
from gru4rec.loss_settings import LOSS_SETTINGS_SOURCE, loss_settings
from gru4rec.text import plural

PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "METHODS",
    "PLAYGROUND_PRESETS",
    "BASELINE_LABELS",
    "CUTOFFS",
    "Controls",
    "LOSS_CONTROLS",
    "controls_for_loss",
    "describe_loss_settings",
    "make_config",
    "describe_config",
    "PlaygroundData",
    "load_playground_data",
    "LossCurve",
    "log_every_for",
    "next_run_dir",
    "run_experiment",
    "RunHistory",
    "kernel_history",
    "results_table",
    "table_html",
    "LiveRun",
    "live_run",
    "Playground",
]

METHODS = ("BP", "BPTT")
PLAYGROUND_PRESETS = ("tiny", "small")  # medium takes minutes to generate and to train: a parameter, not a button
CUTOFFS = (1, 5, 10, 20)
K = 20
BASELINE_LABELS = {"pop": "POP", "spop": "S-POP", "itemknn": "item-kNN", "markov": "Markov", "sr": "SR",
                   "vsknn": "V-SKNN", "stan": "STAN"}
CEILING_LABEL = "ceiling (Bayes-optimal)"
CURVE_POINTS = 150  # about this many points on a run's loss curve
CHUNK_STEPS = 64  # steps per tf.function call; the live curve is updated after every chunk
DRAW_EVERY_S = 0.4  # the live loss curve is redrawn at most this often

LOSS_SHORT = {"cross-entropy": "XE", "bpr-max": "BPR-max", "top1-max": "TOP1-max", "bpr": "BPR", "top1": "TOP1"}


# ----------------------------------------------------------------------------------------------- controls -> Config
LOSS_CONTROLS: Mapping[str, str] = {
    "learning_rate": "learning_rate",
    "momentum": "momentum",
    "bpreg": "bpreg",
    "final_act": "final_act",
    "dropout_embed": "dropout_p_embed",
    "dropout": "dropout_p_hidden",
}
"""The controls that move with the loss (:func:`gru4rec.loss_settings.loss_settings`) -> their Config names."""


@dataclass(frozen=True)
class Controls:
    """The values of the playground's controls (the notebook's parameters cell gives the first ones).

    ``method`` is ``"BP"`` (one update per mini-batch step, the 2016 paper) or ``"BPTT"`` (truncated
    back-propagation through time over windows of ``bptt_steps`` steps; ignored under BP). ``dropout`` is the drop
    probability of the hidden layer's output (``dropout_p_hidden``), ``dropout_embed`` that of the (shared) item
    embedding (``dropout_p_embed``). The defaults are the cross-entropy settings of
    :data:`gru4rec.loss_settings.LOSS_SETTINGS` (the official RSC15 parameter file); :func:`controls_for_loss`
    gives the starting values of another loss.
    """

    loss: str = "cross-entropy"
    layer_size: int = 100
    batch_size: int = 32
    n_sample: int = 2048
    sample_alpha: float = 0.5
    dropout: float = 0.4
    dropout_embed: float = 0.0
    learning_rate: float = 0.2
    momentum: float = 0.2
    bpreg: float = 0.0
    final_act: str = "softmax"
    method: str = "BP"
    bptt_steps: int = 4
    n_epochs: int = 3
    data_preset: str = "small"

    def replace(self, **changes: Any) -> Controls:
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def controls_for_loss(loss: str, base: Optional[Controls] = None, **changes: Any) -> Controls:
    """``base`` (default: :class:`Controls`) with ``loss`` and the learning rate, momentum, ``bpreg``, final
    activation and dropouts that make it learn (:func:`gru4rec.loss_settings.loss_settings`), then ``changes``
    (changes that are None are ignored, so a notebook parameter left at None keeps the loss's value)."""
    settings = loss_settings(loss)
    moved = {control: settings[name] for control, name in LOSS_CONTROLS.items()}
    return (base or Controls()).replace(loss=loss, **moved, **{k: v for k, v in changes.items() if v is not None})


_CONTROL_LABELS = {
    "learning_rate": "learning rate", "final_act": "final activation", "dropout_embed": "dropout (embed)",
    "dropout": "dropout (hidden)",
}  # fmt: skip


def describe_loss_settings(loss: str) -> str:
    """One line: the starting values of ``loss``'s controls and where they come from."""
    settings = loss_settings(loss)
    values = ", ".join(f"{_CONTROL_LABELS.get(control, control)} {settings[name]:g}"
                       if isinstance(settings[name], float) else f"{_CONTROL_LABELS.get(control, control)} "
                       f"{settings[name]}" for control, name in LOSS_CONTROLS.items())  # fmt: skip
    return f"{loss}: {values}; source: {LOSS_SETTINGS_SOURCE[loss]}"


def make_config(controls: Union[Controls, Mapping[str, Any]], **overrides: Any) -> Config:
    """The training Config for ``controls``: the official RSC15 setting (``Config.preset("official")``: Adagrad,
    shared embedding, ...), the loss's settings of :func:`gru4rec.loss_settings.loss_settings` (its ``logq``, which
    has no control), then the controls, then ``overrides`` (any Config field). Invalid values raise ValueError
    naming the control."""
    if isinstance(controls, Mapping):
        controls = Controls(**controls)
    if controls.loss not in LOSSES:
        raise ValueError(f"loss: invalid value {controls.loss!r}; allowed: {', '.join(LOSSES)}")
    if controls.method not in METHODS:
        raise ValueError(f"method: invalid value {controls.method!r}; allowed: BP, BPTT")
    if controls.method == "BPTT" and int(controls.bptt_steps) < 2:
        raise ValueError(f"bptt_steps: invalid value {controls.bptt_steps!r} for BPTT; allowed: an integer >= 2")
    values = {
        **loss_settings(controls.loss),
        "layers": (int(controls.layer_size),),
        "batch_size": int(controls.batch_size),
        "n_sample": int(controls.n_sample),
        "sample_alpha": float(controls.sample_alpha),
        "dropout_p_hidden": float(controls.dropout),
        "dropout_p_embed": float(controls.dropout_embed),
        "learning_rate": float(controls.learning_rate),
        "momentum": float(controls.momentum),
        "bpreg": float(controls.bpreg),
        "final_act": str(controls.final_act),
        "bptt_steps": 1 if controls.method == "BP" else int(controls.bptt_steps),
        "n_epochs": int(controls.n_epochs),
        "chunk_steps": CHUNK_STEPS,
        **overrides,
    }
    return Config.preset("official", **values)


def describe_config(config: Config) -> str:
    """A one-line summary of the settings the playground changes, for tables and legends."""
    layers = "/".join(str(n) for n in config.layers)
    method = "BP" if config.bptt_steps == 1 else f"BPTT({config.bptt_steps})"
    negatives = f"{config.n_sample} neg α={config.sample_alpha:g}" if config.n_sample else "in-batch neg"
    bpreg = f" · bpreg {config.bpreg:g}" if config.loss == "bpr-max" else ""
    return (
        f"{LOSS_SHORT.get(config.loss, config.loss)} ({config.final_activation}{bpreg}) · {layers} units · "
        f"batch {config.batch_size} · {negatives} · dropout {config.dropout_p_embed:g}/{config.dropout_p_hidden:g} · "
        f"lr {config.learning_rate:g} · momentum {config.momentum:g} · {method} · {config.n_epochs} ep"
    )


# ----------------------------------------------------------------------------------------------- data + yardsticks
@dataclass
class PlaygroundData:
    """A preset's training and test sessions with the yardsticks every run is compared against."""

    preset: str
    files: Any  # gru4rec.datasets.PresetFiles
    train: Any  # SessionData (train_full)
    test: Any  # SessionData (test, indexed with the training item map)
    baselines: dict  # {"pop": {"recall@20": ..., "mrr@20": ...}, ...}
    ceiling: Optional[dict]  # {"recall@20": ..., "mrr@20": ...} of the Bayes-optimal predictor, None if unknown
    seconds: float = 0.0

    def describe(self) -> str:
        return (
            f"{self.preset}: {self.train.n_events:,} training events in {self.train.n_sessions:,} sessions over "
            f"{self.train.n_items:,} items; {self.test.n_pairs:,} test predictions in {self.test.n_sessions:,} sessions"
        )


_DATA_CACHE: dict = {}


def _metrics(result: Mapping[str, Any]) -> dict:
    return {key: float(value) for key, value in result.items() if key.startswith(("recall@", "mrr@"))}


def load_playground_data(
    preset: str,
    data_dir: Optional[PathLike] = None,
    baselines: Sequence[str] = tuple(BASELINE_LABELS),
    progress: Optional[Callable[[str], None]] = print,
    cache: bool = True,
) -> PlaygroundData:
    """Load ``preset`` (generated once by :func:`gru4rec.datasets.ensure_preset`), fit and evaluate the baselines
    on its test split with the same evaluator as GRU4Rec (Recall@K / MRR@K for K in :data:`CUTOFFS`, ties counted
    against the model), and read its ceiling. Cached per (preset, data folder) for the kernel's lifetime."""
    from gru4rec.baselines import make_baseline
    from gru4rec.datasets import default_data_dir, ensure_preset
    from gru4rec.evaluate import evaluate

    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    key = (preset, str(folder.resolve()), tuple(baselines))
    if cache and key in _DATA_CACHE:
        return _DATA_CACHE[key]
    started = time.perf_counter()
    files = ensure_preset(preset, folder, progress=progress)
    train_data, test_data = files.load("train_full", "test")
    scores = {}
    for name in baselines:
        scores[name] = _metrics(evaluate(make_baseline(name, train_data), test_data, cutoffs=CUTOFFS))
    try:
        ceiling: Optional[dict] = _metrics(files.ceiling("test"))
    except (KeyError, FileNotFoundError):
        ceiling = None
    data = PlaygroundData(preset, files, train_data, test_data, scores, ceiling, time.perf_counter() - started)
    if cache:
        _DATA_CACHE[key] = data
    return data


# ----------------------------------------------------------------------------------------------- one run
def log_every_for(steps_per_epoch: int, n_epochs: int, points: int = CURVE_POINTS) -> int:
    """The trainer's ``log_every`` that gives about ``points`` points over a run (at least 1)."""
    return max(1, int(round(steps_per_epoch * n_epochs / max(points, 1))))


class LossCurve:
    """Points of the live loss curve from the trainer's records (:class:`gru4rec.train.Callback`).

    The trainer logs the running mean of the epoch's step losses every ``log_every`` steps (like the seed's log).
    A point here is the mean over the steps since the previous point of the same epoch, recovered from two running
    means: ``(m2 * n2 - m1 * n1) / (n2 - n1)``, with ``n`` the steps done in the epoch. Its x is the position in
    training in epochs, ``epoch + n / steps_per_epoch``.
    """

    def __init__(self, steps_per_epoch: int):
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        self.steps_per_epoch = int(steps_per_epoch)
        self.epoch: list[float] = []
        self.loss: list[float] = []
        self._base_step = 0  # global steps done before the current epoch
        self._current: Optional[int] = None
        self._prev_n = 0
        self._prev_sum = 0.0

    def add_log(self, record: Mapping[str, Any]) -> Optional[tuple[float, float]]:
        """Take one ``on_log`` record (``epoch``, ``step`` (global, from 1), ``loss`` (running mean)); return the
        new point or None when the record adds no steps."""
        epoch = int(record["epoch"])
        if epoch != self._current:
            self._current, self._prev_n, self._prev_sum = epoch, 0, 0.0
        n = int(record["step"]) - self._base_step
        total = float(record["loss"]) * n
        if n <= self._prev_n:
            return None
        mean = (total - self._prev_sum) / (n - self._prev_n)
        self._prev_n, self._prev_sum = n, total
        x = epoch + n / self.steps_per_epoch
        self.epoch.append(x)
        self.loss.append(mean)
        return x, mean

    def end_epoch(self, record: Mapping[str, Any]) -> None:
        """Take an ``on_epoch_end`` record (its ``steps`` moves the base of the next epoch's steps)."""
        self._base_step += int(record["steps"])
        self._current = None

    def as_dict(self) -> dict:
        return {"epoch": list(self.epoch), "loss": list(self.loss)}


def next_run_dir(runs_dir: PathLike, prefix: str = "run") -> Path:
    """The first free ``runs_dir/<prefix>-NNN`` (so re-running the notebook never reuses a run folder)."""
    runs_dir = Path(runs_dir)
    n = 1
    while (runs_dir / f"{prefix}-{n:03d}").exists():
        n += 1
    return runs_dir / f"{prefix}-{n:03d}"


def run_experiment(
    controls: Union[Controls, Mapping[str, Any]],
    data: PlaygroundData,
    runs_dir: PathLike,
    label: Optional[str] = None,
    on_point: Optional[Callable[[LossCurve, Mapping[str, Any]], None]] = None,
    on_epoch: Optional[Callable[[Mapping[str, Any]], None]] = None,
    **config_overrides: Any,
) -> dict:
    """Train GRU4Rec with ``controls`` on ``data.train`` into a new folder under ``runs_dir``, evaluate it on
    ``data.test`` and return the run's record (plain JSON types).

    ``on_point(curve, record)`` is called after each new point of the loss curve (``curve.epoch`` / ``curve.loss``
    hold all points so far; ``record`` is the trainer's log record plus ``divergence``: the warning of
    :class:`gru4rec.divergence.DivergenceWatch` once the loss has grown far above its start, else None),
    ``on_epoch(record)`` after each epoch (with ``divergence`` too). The returned record holds ``label``,
    ``preset``, ``summary``, ``controls``, ``config``, ``recall@K`` / ``mrr@K`` for K in :data:`CUTOFFS`,
    ``losses`` (mean training loss of each epoch), ``curve``, ``divergence``, ``events_per_s`` (training events per
    second, checkpointing excluded), ``train_seconds``, ``eval_seconds``, ``device`` and ``run_dir``.
    """
    from gru4rec.evaluate import GRU4RecScorer, evaluate
    from gru4rec.train import Callback, plan_epoch, train

    if isinstance(controls, Mapping):
        controls = Controls(**controls)
    if controls.data_preset != data.preset:
        raise ValueError(f"controls ask for preset {controls.data_preset!r} but the data given is {data.preset!r}")
    config = make_config(controls, **config_overrides)
    steps_per_epoch = plan_epoch(data.train, config, 0, config.chunk_steps).n_steps
    config = config.with_overrides(log_every=log_every_for(steps_per_epoch, config.n_epochs))
    run_dir = next_run_dir(runs_dir)
    label = label or run_dir.name.replace("-", " ")
    curve = LossCurve(steps_per_epoch)
    watch = DivergenceWatch(config.learning_rate)

    class _Hook(Callback):
        def on_log(self, record: dict) -> None:
            watch(record)
            if curve.add_log(record) is not None and on_point is not None:
                on_point(curve, {**record, "divergence": watch.message})

        def on_epoch_end(self, record: dict) -> None:
            watch(record)
            curve.end_epoch(record)
            if on_epoch is not None:
                on_epoch({**record, "divergence": watch.message})

    result = train(config, data.train, run_dir, callbacks=[_Hook()], progress=False)
    started = time.perf_counter()
    scorer = GRU4RecScorer(result.model, item_map=data.train.item_map, item_support=data.train.item_counts)
    metrics = _metrics(evaluate(scorer, data.test, cutoffs=CUTOFFS))
    eval_seconds = time.perf_counter() - started
    return {
        "label": label,
        "preset": data.preset,
        "summary": describe_config(config),
        "controls": controls.as_dict(),
        "config": config.to_dict(),
        **metrics,
        "losses": [float(x) for x in result.epoch_losses],
        "curve": curve.as_dict(),
        "divergence": watch.message,
        "steps_per_epoch": int(steps_per_epoch),
        "events_per_s": float(result.events_per_s),
        "train_seconds": float(result.seconds),
        "eval_seconds": float(eval_seconds),
        "device": result.device,
        "run_dir": str(run_dir),
    }


# ----------------------------------------------------------------------------------------------- comparing runs
@dataclass
class RunHistory:
    """The records of the runs made in this kernel, oldest first."""

    records: list = field(default_factory=list)

    def add(self, record: dict) -> dict:
        self.records.append(record)
        return record

    def __len__(self) -> int:
        return len(self.records)

    def next_label(self) -> str:
        return f"run {len(self.records) + 1}"

    def curves(self, last: int = 8) -> dict:
        """``{label: curve}`` of the last ``last`` runs (for :func:`gru4rec.plots.live.loss_curve_figure`)."""
        return {r["label"]: r["curve"] for r in self.records[-last:]}

    def to_frame(self, k: int = K) -> pd.DataFrame:
        """One row per run: data preset, settings, Recall@k, MRR@k, last epoch's loss, events/s, seconds."""
        rows = [
            {
                "run": r["label"],
                "data": r["preset"],
                "settings": r["summary"],
                f"Recall@{k}": r[f"recall@{k}"],
                f"MRR@{k}": r[f"mrr@{k}"],
                "final loss": r["losses"][-1] if r["losses"] else math.nan,
                "events/s": r["events_per_s"],
                "train s": r["train_seconds"],
            }
            for r in self.records
        ]
        columns = ["run", "data", "settings", f"Recall@{k}", f"MRR@{k}", "final loss", "events/s", "train s"]
        return pd.DataFrame(rows, columns=columns)


_HISTORIES: dict = {}


def kernel_history(key: PathLike) -> RunHistory:
    """The run history of ``key`` (the notebook's runs folder) for this kernel's lifetime: re-running the playground
    cell (also while a run trains) keeps the runs made so far instead of starting an empty history."""
    return _HISTORIES.setdefault(str(Path(key).resolve()), RunHistory())


def results_table(data: PlaygroundData, record: Optional[Mapping[str, Any]] = None, k: int = K) -> pd.DataFrame:
    """Recall@k and MRR@k of the run ``record`` (if any), the baselines and the ceiling on ``data``'s test split,
    with each model's share of the ceiling's Recall@k. Index: the model's name."""
    rows = []
    if record is not None:
        rows.append((f"GRU4Rec ({record['label']})", record[f"recall@{k}"], record[f"mrr@{k}"]))
    for name, metrics in data.baselines.items():
        rows.append((BASELINE_LABELS.get(name, name), metrics[f"recall@{k}"], metrics[f"mrr@{k}"]))
    if data.ceiling is not None:
        rows.append((CEILING_LABEL, data.ceiling[f"recall@{k}"], data.ceiling[f"mrr@{k}"]))
    frame = pd.DataFrame(rows, columns=["model", f"Recall@{k}", f"MRR@{k}"]).set_index("model")
    if data.ceiling is not None:
        frame[f"Recall@{k} / ceiling"] = frame[f"Recall@{k}"] / data.ceiling[f"recall@{k}"]
    return frame


def _cell(column: str, value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            return "—"
        return f"{value:,.0f}" if column in ("events/s", "train s") else f"{value:.4f}"
    return html.escape(str(value))


def table_html(frame: pd.DataFrame, css_class: str = "gru4rec-table", index: bool = True) -> str:
    """A small HTML table for an HTML widget or ``display(HTML(...))``: 4 decimals (whole numbers for events/s and
    seconds), numbers right-aligned and never wrapped; only a ``settings`` column may wrap."""
    style = (
        f"<style>.{css_class} {{border-collapse: collapse; font-size: 13px}} "
        f".{css_class} th, .{css_class} td {{padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: right; "
        f"white-space: nowrap}} .{css_class} .label {{text-align: left}} "
        f".{css_class} .wrap {{white-space: normal; text-align: left; min-width: 260px}}</style>"
    )

    def css(column: str) -> str:
        if column == "settings":
            return ' class="wrap"'
        return ' class="label"' if column in ("run", "data", "model") else ""

    columns = [str(c) for c in frame.columns]
    head = ([f'<th class="label">{html.escape(str(frame.index.name or ""))}</th>'] if index else []) + [
        f"<th{css(c)}>{html.escape(c)}</th>" for c in columns
    ]
    rows = []
    for label, values in zip(frame.index, frame.itertuples(index=False)):
        cells = [f'<th class="label">{html.escape(str(label))}</th>'] if index else []
        cells += [f"<td{css(c)}>{_cell(c, v)}</td>" for c, v in zip(columns, values)]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    table = f'<table class="{css_class}"><thead><tr>{"".join(head)}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    return f'<div style="overflow-x: auto">{style}{table}</div>'


# ----------------------------------------------------------------------------------------------- the UI
_SIZE_OPTIONS = (16, 32, 50, 64, 100, 128, 200, 256, 512)
LABEL_WIDTH_PX = 130  # the controls' labels: "dropout (hidden)", the longest, needs ~115 px at JupyterLab's 13 px font
CONTROL_WIDTH_PX = 320  # a control with its label
_BATCH_OPTIONS = (16, 32, 50, 64, 128, 256, 512)
_SAMPLE_OPTIONS = (0, 128, 512, 1024, 2048, 4096)
_FINAL_ACT_OPTIONS = ("softmax", "linear", "tanh", "relu", "elu-0.5", "elu-1", "leaky-0.01")


def _options(values: Sequence, current: Any) -> list:
    return sorted(set(values) | {current})


class LiveRun:
    """A run of the playground training in a background thread, and the playground that shows it.

    A run belongs to its runs folder, not to the widgets that started it: re-running the playground cell while it
    trains builds a new :class:`Playground` over the same folder, which takes the run over (:meth:`attach`): the
    run's curve, status line and, at the end, its results go to the new widgets, and the old ones get no more
    updates (their views are gone from the page). Every update goes through :attr:`view` under :attr:`lock`.
    """

    def __init__(self, key: str, label: str, controls: Controls, origin: Playground):
        self.key = key
        self.label = label
        self.controls = controls
        self.origin = origin
        self.view: Playground = origin
        self.lock = threading.RLock()
        self.thread: Optional[threading.Thread] = None
        self.curve: tuple = ((), ())
        self.status: tuple = ("", None)  # the last status line: (html message, warning)
        self.record: Optional[dict] = None
        self.error: Optional[BaseException] = None
        self.done = threading.Event()
        self.note = ""  # said after every status message once another playground took the run over

    def say(self, message: str, warning: Optional[str] = None, error: bool = False) -> None:
        """Show ``message`` in the status line of the view, with the note of a take-over (:meth:`attach`)."""
        with self.lock:
            self.status = (message, warning)
            self.view._say(message + self.note, warning=warning, error=error)

    def draw(self, epochs: Sequence[float], losses: Sequence[float], force: bool = False) -> None:
        with self.lock:
            self.curve = (list(epochs), list(losses))
            self.view._draw(epochs, losses, force=force)

    def attach(self, view: Playground) -> None:
        """Show this run in ``view`` from now on (the cell was re-run); the previous view gets no more updates."""
        with self.lock:
            previous, self.view = self.view, view
            previous._live_index = None
            view.data.update({k: v for k, v in previous.data.items() if k not in view.data})
            view._set_busy(True)
            view._start_curve(self.label)
            view._draw(*self.curve, force=True)
            self.note = (f"<br><i>The playground cell was re-run while <b>{html.escape(self.label)}</b> trained: the "
                         "run goes on here and joins the history.</i>")  # fmt: skip
            self.say(*self.status)

    def histories(self) -> list:
        """The histories the finished run goes to: the one of the playground that started it and, if another, the
        one of the playground that shows it."""
        with self.lock:
            views = [self.origin.history, self.view.history]
        return [h for i, h in enumerate(views) if all(h is not other for other in views[:i])]


_LIVE_RUNS: dict = {}


def live_run(runs_dir: PathLike) -> Optional[LiveRun]:
    """The run training in the background for ``runs_dir`` in this kernel, None when none is."""
    run = _LIVE_RUNS.get(str(Path(runs_dir).resolve()))
    return run if run is not None and not run.done.is_set() else None


class Playground:
    """The ipywidgets playground: controls, a Train button, the live loss curve, the results and the history.

    Args:
        controls: the first values of the controls (the notebook's parameters).
        runs_dir: where run folders go (``OUTPUT_DIR/runs/00_playground``).
        data_dir: the data folder of the presets (``DATA_DIR``).
        history: the run history to add to (shared with the notebook's other cells).
        data: an already loaded :class:`PlaygroundData` (its baselines fill the table before the first run).
        presets: the data presets offered.

    ``widget`` is the whole UI (display it). The Train button calls :meth:`start`, which trains in a background
    thread (:meth:`wait` joins it); :meth:`train` does the same work in the calling thread and returns the record.
    A playground built over a runs folder whose run is still training takes that run over (:class:`LiveRun`).
    Every part has a CSS class ``gru4rec-<name>`` (``gru4rec-train``, ``gru4rec-loss-curve``, ``gru4rec-results``,
    ``gru4rec-history``, ``gru4rec-status``, and one per control: ``gru4rec-layer_size``, ...) for the browser test.
    """

    def __init__(
        self,
        controls: Controls,
        runs_dir: PathLike,
        data_dir: Optional[PathLike] = None,
        history: Optional[RunHistory] = None,
        data: Optional[PlaygroundData] = None,
        presets: Sequence[str] = PLAYGROUND_PRESETS,
    ):
        import ipywidgets as w

        from gru4rec.plots.live import loss_curve_figure

        self.runs_dir = Path(runs_dir)
        self.data_dir = data_dir
        self.history = history if history is not None else RunHistory()
        self.data = {data.preset: data} if data is not None else {}
        self.busy = False
        self.run: Optional[LiveRun] = None
        self._last_draw = 0.0
        self._live_index: Optional[int] = None

        label_style = {"description_width": f"{LABEL_WIDTH_PX}px"}
        c = controls
        self.controls_widgets: dict[str, Any] = {
            "loss": w.Dropdown(options=list(LOSSES), value=c.loss, description="loss"),
            "layer_size": w.Dropdown(options=_options(_SIZE_OPTIONS, c.layer_size), value=c.layer_size,
                                     description="GRU units"),
            "dropout": w.FloatSlider(value=c.dropout, min=0.0, max=0.8, step=0.05, description="dropout (hidden)",
                                     tooltip="drop probability of the GRU's output"),
            "final_act": w.Dropdown(options=_options(_FINAL_ACT_OPTIONS, c.final_act), value=c.final_act,
                                    description="final activation"),
            "bpreg": w.FloatSlider(value=c.bpreg, min=0.0, max=3.0, step=0.05, description="bpreg",
                                   tooltip="BPR-max score regularisation"),
            "dropout_embed": w.FloatSlider(value=c.dropout_embed, min=0.0, max=0.8, step=0.05,
                                           description="dropout (embed)", tooltip="drop probability of the embedding"),
            "learning_rate": w.FloatLogSlider(value=c.learning_rate, base=10, min=-3, max=0, step=0.05,
                                              description="learning rate", readout_format=".3g"),
            "momentum": w.FloatSlider(value=c.momentum, min=0.0, max=0.95, step=0.05, description="momentum"),
            "batch_size": w.Dropdown(options=_options(_BATCH_OPTIONS, c.batch_size), value=c.batch_size,
                                     description="batch size"),
            "n_sample": w.Dropdown(options=_options(_SAMPLE_OPTIONS, c.n_sample), value=c.n_sample,
                                   description="extra negatives"),
            "sample_alpha": w.FloatSlider(value=c.sample_alpha, min=0.0, max=1.0, step=0.05,
                                          description="sample_alpha"),
            "method": w.ToggleButtons(options=list(METHODS), value=c.method, style={"button_width": "80px"},
                                      tooltips=["one update per step", "one update per window of steps"]),
            "bptt_steps": w.IntSlider(value=max(int(c.bptt_steps), 2), min=2, max=32, description="BPTT window"),
            "n_epochs": w.IntSlider(value=c.n_epochs, min=1, max=20, description="epochs"),
            "data_preset": w.Dropdown(options=_options(presets, c.data_preset), value=c.data_preset,
                                      description="data"),
        }  # fmt: skip
        for name, control in self.controls_widgets.items():
            control.layout = w.Layout(width="190px" if name == "method" else f"{CONTROL_WIDTH_PX}px")
            if name != "method":
                control.style = label_style
            if hasattr(control, "continuous_update"):
                control.continuous_update = False
            control.add_class(f"gru4rec-{name}")
        self.controls_widgets["bptt_steps"].disabled = c.method == "BP"
        self.controls_widgets["bpreg"].disabled = c.loss != "bpr-max"
        self._setting_controls = False
        self.loss_note = w.HTML(value=self._loss_note(c.loss), layout=w.Layout(width="300px"))
        self.loss_note.add_class("gru4rec-loss-note")
        self.controls_widgets["loss"].observe(self._on_loss, names="value")
        self.controls_widgets["method"].observe(self._on_method, names="value")
        self.controls_widgets["data_preset"].observe(self._on_preset, names="value")

        self.train_button = w.Button(description="Train", button_style="primary", icon="play",
                                     tooltip="train GRU4Rec with these settings, then evaluate it")  # fmt: skip
        self.train_button.add_class("gru4rec-train")
        self.train_button.on_click(self._on_click)
        self.status = w.HTML(value="Choose settings and press <b>Train</b>.")
        self.status.add_class("gru4rec-status")
        self.figure = loss_curve_figure(self.history.curves())
        self.chart = w.Output(layout=w.Layout(min_height=f"{self.figure.layout.height + 10}px"))
        self.results = w.HTML()
        self.results.add_class("gru4rec-results")
        self.history_html = w.HTML()
        self.history_html.add_class("gru4rec-history")
        self.output = w.Output(layout=w.Layout(max_height="160px", overflow="auto"))
        self.output.add_class("gru4rec-output")

        cw = self.controls_widgets
        method_label = w.HTML("<div style='text-align: right; padding-right: 8px'>method</div>",
                              layout=w.Layout(width=f"{LABEL_WIDTH_PX}px"))  # fmt: skip
        columns = w.HBox([
            w.VBox([w.HTML("<b>Model and loss</b>"), cw["loss"], self.loss_note, cw["final_act"], cw["bpreg"],
                    cw["layer_size"], cw["dropout_embed"], cw["dropout"]]),
            w.VBox([w.HTML("<b>Mini-batches and negatives</b>"), cw["batch_size"], cw["n_sample"], cw["sample_alpha"],
                    w.HTML("<b>Optimiser</b> (Adagrad)"), cw["learning_rate"], cw["momentum"]]),
            w.VBox([w.HTML("<b>Training</b>"), w.HBox([method_label, cw["method"]]), cw["bptt_steps"], cw["n_epochs"],
                    cw["data_preset"]]),
        ])  # fmt: skip
        curve_box = w.Box([self.chart])
        curve_box.add_class("gru4rec-loss-curve")
        self.widget = w.VBox([
            columns,
            w.HBox([self.train_button, self.status]),
            curve_box,
            w.HTML(f"<b>Results on the test split</b> (Recall@{K} / MRR@{K}, ties counted against the model)"),
            self.results,
            w.HTML("<b>History of runs</b>"),
            self.history_html,
            self.output,
        ])  # fmt: skip
        self.widget.add_class("gru4rec-playground")
        self._show_figure()
        self._refresh_tables()
        if len(self.history):
            self._say(f"Choose settings and press <b>Train</b>. The history keeps the {len(self.history)} run(s) "
                      "made so far in this kernel.")  # fmt: skip
        running = live_run(self.runs_dir)
        if running is not None:
            self.run = running
            running.attach(self)

    # ------------------------------------------------------------------ reading and setting the controls
    def controls(self) -> Controls:
        """The current values of the controls."""
        return Controls(**{name: widget.value for name, widget in self.controls_widgets.items()})

    def set_controls(self, controls: Controls) -> None:
        """Show ``controls`` in the widgets (as given: a loss set here does not move the other controls)."""
        self._setting_controls = True
        try:
            for name, value in controls.as_dict().items():
                widget = self.controls_widgets[name]
                options = getattr(widget, "options", None)
                if options is not None and value not in options:
                    widget.options = _options(options, value)
                widget.value = value
        finally:
            self._setting_controls = False
        self.controls_widgets["bpreg"].disabled = controls.loss != "bpr-max"
        self.loss_note.value = self._loss_note(controls.loss)

    @staticmethod
    def _loss_note(loss: str) -> str:
        return f"<small>starting values: {html.escape(LOSS_SETTINGS_SOURCE[loss])}</small>"

    def _on_loss(self, change: Mapping[str, Any]) -> None:
        """A new loss moves the learning rate, momentum, bpreg, final activation and dropouts to its settings."""
        if self._setting_controls:
            return
        loss = change["new"]
        self.set_controls(controls_for_loss(loss, base=self.controls().replace(loss=change["old"])))
        self._say(f"Settings for <b>{html.escape(loss)}</b>: {html.escape(describe_loss_settings(loss))}")

    def _on_method(self, change: Mapping[str, Any]) -> None:
        self.controls_widgets["bptt_steps"].disabled = change["new"] == "BP"

    def _on_preset(self, change: Mapping[str, Any]) -> None:
        self._refresh_tables()

    # ------------------------------------------------------------------ display
    def _ipython_display_(self) -> None:  # pragma: no cover - needs a front end
        from IPython.display import display

        display(self.widget)

    def _say(self, message: str, error: bool = False, warning: Optional[str] = None) -> None:
        """Show ``message`` in the status line; ``warning`` (plain text, e.g. the divergence warning) after it."""
        color = "#b00020" if error else "inherit"
        extra = f" <span style='color:#b35900'><b>⚠ {html.escape(warning)}</b></span>" if warning else ""
        self.status.value = f"<span style='color:{color}'>{message}</span>{extra}"

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.train_button.disabled = busy

    def _refresh_tables(self, record: Optional[Mapping[str, Any]] = None) -> None:
        preset = self.controls_widgets["data_preset"].value
        if record is None:
            record = next((r for r in reversed(self.history.records) if r["preset"] == preset), None)
        data = self.data.get(preset)
        if data is None:
            self.results.value = f"<i>Baselines and ceiling of {html.escape(preset)}: computed at the first run.</i>"
        else:
            self.results.value = table_html(results_table(data, record), "gru4rec-results-table")
        if len(self.history):
            self.history_html.value = table_html(self.history.to_frame(), "gru4rec-history-table", index=False)
        else:
            self.history_html.value = "<i>No runs yet.</i>"

    def _show_figure(self) -> None:
        """Send :attr:`figure` to the browser as the only output of :attr:`chart`: the plotly mime bundle in a plain
        ``Output`` widget. (Not a ``FigureWidget``: plotly's front-end view of one keeps listening to its model after
        the view is removed, so updating the figure after the cell's output was cleared, a re-run of the cell while
        a run trains, logs "Error setting state: Cannot read properties of undefined" in the browser. An ``Output``
        widget without views takes updates silently.)"""
        import plotly.io as pio

        bundle = pio.renderers["plotly_mimetype"].to_mimebundle(self.figure.to_dict())
        self.chart.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)

    def _start_curve(self, label: str) -> None:
        from gru4rec.plots.live import loss_curve_figure

        self.figure = loss_curve_figure(self.history.curves(), live=label)
        self._live_index = len(self.figure.data) - 1
        self._show_figure()

    def _draw(self, epochs: Sequence[float], losses: Sequence[float], force: bool = False) -> None:
        """Redraw the live trace with these points, at most every :data:`DRAW_EVERY_S` seconds unless ``force``."""
        from gru4rec.plots.live import set_points

        now = time.perf_counter()
        if self._live_index is None or (not force and now - self._last_draw < DRAW_EVERY_S):
            return
        set_points(self.figure, self._live_index, epochs, losses)
        self._show_figure()
        self._last_draw = now

    # ------------------------------------------------------------------ the Train button
    def _on_click(self, _button: Any = None) -> None:
        self.start()

    def _begin(self) -> Optional[LiveRun]:
        """Claim this playground and its runs folder for a new run (None when a run is already training)."""
        key = str(self.runs_dir.resolve())
        if self.busy or live_run(self.runs_dir) is not None:
            return None
        self._set_busy(True)
        self.run = LiveRun(key, self.history.next_label(), self.controls(), self)
        _LIVE_RUNS[key] = self.run
        return self.run

    def start(self) -> Optional[threading.Thread]:
        """What the Train button does: train and evaluate with the current controls in a background thread, so the
        kernel stays free for other cells (and for a re-run of this one, which takes the run over). The thread, or
        None when a run is already training."""
        run = self._begin()
        if run is None:
            return None
        run.thread = threading.Thread(target=self._run, args=(run,), name=f"gru4rec playground {run.label}",
                                      daemon=True)  # fmt: skip
        run.thread.start()
        return run.thread

    def wait(self, timeout: Optional[float] = None) -> Optional[dict]:
        """Wait for the run started by :meth:`start` (or taken over) to end; its record (None: failed or running)."""
        run = self.run
        if run is None:
            return None
        run.done.wait(timeout)
        return run.record

    def train(self) -> Optional[dict]:
        """Train and evaluate with the current controls in this thread (what the Train button does in the
        background); the record, or None when the run failed (the reason is shown in the status line and the
        traceback below the UI) or a run is already training."""
        run = self._begin()
        return None if run is None else self._run(run)

    def _run(self, run: LiveRun) -> Optional[dict]:
        """The work of a run, every update through ``run`` (whose view can change while it trains)."""
        controls, label = run.controls, run.label
        try:
            data = self._data_for(run)
            make_config(controls)  # fail on bad settings before the figure changes
            with run.lock:
                run.view._start_curve(label)
            run.say(f"Training <b>{label}</b> on {data.preset} ({plural(controls.n_epochs, 'epoch')}) ...")

            def on_point(curve: LossCurve, record: Mapping[str, Any]) -> None:
                run.draw(curve.epoch, curve.loss)
                run.say(f"Training <b>{label}</b>: epoch {curve.epoch[-1]:.2f} of {controls.n_epochs}, "
                        f"loss {curve.loss[-1]:.4g}", warning=record["divergence"])  # fmt: skip

            def on_epoch(record: Mapping[str, Any]) -> None:
                last = record["epochs_done"] == controls.n_epochs
                run.say(
                    f"Training <b>{label}</b>: epoch {record['epochs_done']} of {controls.n_epochs} done "
                    f"(mean loss {record['loss']:.4g}, {record['events_per_s']:,.0f} events/s)"
                    + ("; evaluating on the test split ..." if last else ""), warning=record["divergence"],
                )  # fmt: skip

            record = run_experiment(controls, data, self.runs_dir, label=label, on_point=on_point, on_epoch=on_epoch)
            run.draw(record["curve"]["epoch"], record["curve"]["loss"], force=True)
            with run.lock:
                for history in run.histories():
                    history.add(record)
                run.view._refresh_tables(record)
            run.say(
                f"<b>{label}</b> done: Recall@{K} {record[f'recall@{K}']:.4f}, MRR@{K} {record[f'mrr@{K}']:.4f} "
                f"({record['events_per_s']:,.0f} training events/s, {record['train_seconds']:.1f} s)",
                warning=record["divergence"],
            )
            run.record = record
            return record
        except Exception as error:  # noqa: BLE001 - shown to the learner, the kernel keeps running
            run.error = error
            with run.lock:
                run.view.output.append_stderr(traceback.format_exc())
                run.say(f"{label} failed: {html.escape(str(error))}", error=True)
            return None
        finally:
            with run.lock:
                for view in {id(v): v for v in (run.origin, run.view)}.values():
                    view._set_busy(False)
                if _LIVE_RUNS.get(run.key) is run:
                    del _LIVE_RUNS[run.key]
                run.done.set()

    def _data_for(self, run: LiveRun) -> PlaygroundData:
        """The data of the run's preset, loaded (and its baselines evaluated) the first time."""
        preset = run.controls.data_preset
        with run.lock:
            data = run.view.data.get(preset) or self.data.get(preset)
        if data is None:
            run.say(f"Loading <b>{html.escape(preset)}</b> and evaluating the baselines ...")

            def progress(message: str) -> None:
                with run.lock:
                    run.view.output.append_stdout(f"{message}\n")

            data = load_playground_data(preset, self.data_dir, progress=progress)
        with run.lock:
            for view in (self, run.view):
                view.data[data.preset] = data
            run.view._refresh_tables()
        return data
