"""Train and evaluate the official GRU4Rec codes (TF and PyTorch) through their own ``run.py``, unchanged.

Nothing of the official code is in this repository: PATH is your clone of ``hidasib/GRU4Rec_Tensorflow_Official``
or ``hidasib/GRU4Rec_PyTorch_Official``. Each run is a child process::

    PYTHON PATH/run.py TRAIN -ps "loss=...,layers=100,...,n_epochs=E" -t TEST -m 20 -e conservative -d cpu|CPU

with the interpreter of an environment that has the official code's dependencies (``--official-python``; the TF
code needs ``tf_keras`` and ``joblib`` and runs with ``TF_USE_LEGACY_KERAS=1``, set here; the PyTorch code needs
``torch``). What the run printed is parsed: one ``EpochN --> loss: L (Ts) ...`` line per epoch and
``Recall@20: R MRR@20: M`` after the evaluation (``batch_eval``, conservative ties: rank = the number of items
scoring at least the target, as the kit's default). Used by ``benchmarks/accuracy_report.py``.

Each log ``X.log`` gets a record ``X.params.json`` beside it, written when the run starts: the code (its name and the
sha256 of the clone's top-level ``*.py`` files), the parameter string, the evaluation settings and the sha256 of the
training and test files. A log is reused only when its record matches the requested run (:func:`vouch`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from gru4rec.io import atomic_write
from gru4rec.run_folder import no_follow_opener

# The hyperparameters of the official GRU4Rec class, in its names (the parameter files of paramfiles/).
OFFICIAL_PARAM_NAMES = (
    "loss", "constrained_embedding", "embedding", "elu_param", "layers", "n_epochs", "batch_size",
    "dropout_p_embed", "dropout_p_hidden", "learning_rate", "momentum", "n_sample", "sample_alpha", "bpreg", "logq",
)  # fmt: skip
CODES = ("tf", "pytorch")
CODE_NAMES = {"tf": "official TF code", "pytorch": "official PyTorch code"}

_EPOCH_LINE = re.compile(r"^Epoch(\d+) --> loss: ([-+0-9.eEnaN]+)\s+\(([0-9.]+)s\)", re.MULTILINE)
_METRIC_LINE = re.compile(r"^Recall@(\d+): ([0-9.eE+-]+) MRR@\1: ([0-9.eE+-]+)", re.MULTILINE)
_TOTAL_LINE = re.compile(r"^Total training time: ([0-9.]+)s", re.MULTILINE)


@dataclass(frozen=True)
class OfficialResult:
    """What one official run printed: the loss and seconds of every epoch, Recall@K / MRR@K per cut-off."""

    epoch_losses: tuple
    epoch_seconds: tuple
    recall: dict = field(default_factory=dict)  # cut-off -> Recall@K
    mrr: dict = field(default_factory=dict)  # cut-off -> MRR@K
    train_seconds: Optional[float] = None

    @property
    def n_epochs(self) -> int:
        return len(self.epoch_losses)

    @property
    def mean_epoch_seconds(self) -> float:
        return sum(self.epoch_seconds) / len(self.epoch_seconds)


def parse_output(text: str, source: str = "official run") -> OfficialResult:
    """Parse the stdout of an official ``run.py`` (training + evaluation). Raises ValueError naming ``source`` and
    what is missing when the run printed no epoch line or no metric line (the run failed or was cut short)."""
    epochs = [(int(m.group(1)), float(m.group(2)), float(m.group(3))) for m in _EPOCH_LINE.finditer(text)]
    if not epochs:
        raise ValueError(f"{source}: no 'EpochN --> loss: L (Ts)' line in the output; the training did not run")
    if [e[0] for e in epochs] != list(range(1, len(epochs) + 1)):
        raise ValueError(f"{source}: epoch lines out of order: {[e[0] for e in epochs]}")
    metrics = {int(m.group(1)): (float(m.group(2)), float(m.group(3))) for m in _METRIC_LINE.finditer(text)}
    if not metrics:
        raise ValueError(f"{source}: no 'Recall@K: R MRR@K: M' line in the output; the evaluation did not run")
    total = _TOTAL_LINE.search(text)
    return OfficialResult(
        epoch_losses=tuple(e[1] for e in epochs),
        epoch_seconds=tuple(e[2] for e in epochs),
        recall={k: v[0] for k, v in metrics.items()},
        mrr={k: v[1] for k, v in metrics.items()},
        train_seconds=float(total.group(1)) if total else None,
    )


def parameter_string(params: dict) -> str:
    """``loss=cross-entropy,layers=100,...`` for ``run.py -ps`` from official-name ``params`` (layers as
    ``100/100``, booleans as ``True``/``False``, numbers in their shortest exact form)."""
    unknown = sorted(set(params) - set(OFFICIAL_PARAM_NAMES))
    if unknown:
        raise ValueError(f"not parameters of the official GRU4Rec: {unknown}; allowed: {OFFICIAL_PARAM_NAMES}")
    parts = []
    for name in OFFICIAL_PARAM_NAMES:
        if name not in params:
            continue
        value = params[name]
        if name == "layers":
            value = "/".join(str(int(n)) for n in (value if isinstance(value, (list, tuple)) else [value]))
        elif isinstance(value, bool):
            value = "True" if value else "False"
        elif isinstance(value, float):
            value = repr(value)
        parts.append(f"{name}={value}")
    return ",".join(parts)


def params_from_config(config, n_epochs: int) -> dict:
    """The official parameters of a kit ``Config`` (``gru4rec.config.Config``) for an ``n_epochs`` run."""
    values = config.to_dict()
    params = {name: values[name] for name in OFFICIAL_PARAM_NAMES if name in values}
    params["n_epochs"] = int(n_epochs)
    params["layers"] = list(config.layers)
    return params


def command(code: str, path, python: str, train_path, test_path, params: dict,
            cutoffs: Sequence[int] = (20,), threads: Optional[int] = None) -> tuple:
    """``(argv, env)`` of one official run: ``code`` ``tf`` or ``pytorch``, ``path`` the clone (with ``run.py``),
    ``python`` the interpreter of its environment. ``threads``: the size of the thread pools of its ops (PyTorch's
    and OpenMP's ``OMP_NUM_THREADS``, TensorFlow's ``TF_NUM_INTRAOP_THREADS``), or None for the library defaults."""
    if code not in CODES:
        raise ValueError(f"code: unknown value {code!r}; allowed: {', '.join(CODES)}")
    run_py = Path(path) / "run.py"
    if not run_py.is_file():
        raise ValueError(f"--official-{code}: {path} has no run.py (expected a clone of the official {code} code)")
    argv = [
        str(python), str(run_py.resolve()), str(Path(train_path).resolve()),
        "-ps", parameter_string(params),
        "-t", str(Path(test_path).resolve()),
        "-m", *[str(c) for c in cutoffs],
        "-e", "conservative",
        "-d", "CPU" if code == "tf" else "cpu",
    ]  # fmt: skip
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the official code's own environment, not the kit's
    env["PYTHONUNBUFFERED"] = "1"  # its log lines reach the log file as they are printed
    if code == "tf":
        env["TF_USE_LEGACY_KERAS"] = "1"
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads: expected an integer >= 1, got {threads}")
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), TF_NUM_INTRAOP_THREADS=str(threads))
    return argv, env


class StaleLogError(ValueError):
    """An official run's log cannot be vouched for: its record is missing or differs from the requested run."""


def file_sha256(path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def code_sha256(path) -> str:
    """sha256 over the names and bytes of the top-level ``*.py`` files of an official clone (its code as it runs)."""
    digest = hashlib.sha256()
    for file in sorted(Path(path).glob("*.py")):
        digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def record_path(log_path) -> Path:
    """The record beside a log: ``official_tf_3ep.log`` -> ``official_tf_3ep.params.json``."""
    log_path = Path(log_path)
    return log_path.with_name(log_path.stem + ".params.json")


def run_record(code: str, path, train_path, test_path, params: dict, cutoffs: Sequence[int] = (20,)) -> dict:
    """What identifies one official run's result: the code, its parameters, the evaluation, the data files."""
    return {
        "code": code,
        "code_sha256": code_sha256(path),
        "params": parameter_string(params),
        "cutoffs": [int(c) for c in cutoffs],
        "eval": "conservative",
        "train_sha256": file_sha256(train_path),
        "test_sha256": file_sha256(test_path),
        "train": str(Path(train_path).resolve()),
        "test": str(Path(test_path).resolve()),
    }


_RECORD_WORDS = {
    "code": "code", "code_sha256": "the official code's files", "params": "parameters", "cutoffs": "cut-offs",
    "eval": "tie mode", "train_sha256": "training file's contents", "test_sha256": "test file's contents",
}  # fmt: skip


def vouch(log_path, expected: dict) -> None:
    """Raise :class:`StaleLogError` (one line) unless ``log_path``'s record matches ``expected``
    (:func:`run_record`; the files' paths may differ, their contents may not)."""
    path = record_path(log_path)
    if not path.is_file():
        raise StaleLogError(f"{log_path}: cannot reuse it: {path.name} (its parameters and data) is missing; "
                            f"remove the log or run without --reuse-official-logs")  # fmt: skip
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StaleLogError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(saved, dict):
        raise StaleLogError(f"{path}: expected a JSON object, found {type(saved).__name__}")
    diffs = []
    for key, words in _RECORD_WORDS.items():
        if saved.get(key) != expected[key]:
            diffs.append(f"{words} differ" if key.endswith("sha256") else
                         f"{words}: {saved.get(key)!r} (log) != {expected[key]!r} (now)")  # fmt: skip
    if diffs:
        raise StaleLogError(f"{log_path}: cannot reuse it, it is another run than the requested one: "
                            + "; ".join(diffs) + "; remove the log or run without --reuse-official-logs")


def start(code: str, path, python: str, train_path, test_path, params: dict, log_path,
          threads: Optional[int] = None) -> subprocess.Popen:
    """Start one official run in the background, its stdout and stderr going to ``log_path``; its record
    (:func:`run_record`) is written beside the log (an older record is removed before the log is started)."""
    argv, env = command(code, path, python, train_path, test_path, params, threads=threads)
    record = run_record(code, path, train_path, test_path, params)
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    record_path(log_path).unlink(missing_ok=True)
    with open(log_path, "w", encoding="utf-8", opener=no_follow_opener) as log:
        threads_note = "" if threads is None else f"OMP_NUM_THREADS={threads} TF_NUM_INTRAOP_THREADS={threads} "
        log.write("$ " + threads_note + " ".join(argv) + "\n")
        log.flush()
        with atomic_write(record_path(log_path)) as handle:
            handle.write(json.dumps(record, indent=2) + "\n")
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(log_path.parent))


def finish(process: subprocess.Popen, log_path, source: str) -> OfficialResult:
    """Wait for a run started by :func:`start` and parse its log; a failed run raises RuntimeError with the log's
    last lines."""
    rc = process.wait()
    text = Path(log_path).read_text(encoding="utf-8", errors="replace")
    if rc != 0:
        tail = "\n".join(text.splitlines()[-15:])
        raise RuntimeError(f"{source} failed (exit {rc}); the end of {log_path}:\n{tail}")
    return parse_output(text, source=f"{source} ({log_path})")


def log_writers(log_path) -> list:
    """Process ids whose standard output is ``log_path`` (an official run still writing it; Linux ``/proc``)."""
    target = str(Path(log_path).resolve())
    pids = []
    for fd in Path("/proc").glob("[0-9]*/fd/1"):
        try:
            if os.readlink(fd) == target:
                pids.append(int(fd.parent.parent.name))
        except OSError:  # the process ended meanwhile, or is not ours to read
            continue
    return pids


def reusable(log_path, source: str) -> Optional[OfficialResult]:
    """The result in an existing log of a finished official run, or None (no log, or it is incomplete)."""
    path = Path(log_path)
    if not path.is_file():
        return None
    try:
        return parse_output(path.read_text(encoding="utf-8", errors="replace"), source=source)
    except ValueError:
        return None
