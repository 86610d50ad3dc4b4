"""Reusing a training the course already did, instead of training the same configuration again.

A notebook that trains a configuration an earlier notebook trained too (notebook 04's GRU4Rec is notebook 03's BP
run; notebooks 07 and 08 train the official preset of notebook 06's last step) can name the earlier run folders.
:func:`train_or_reuse` reads the first one that holds **the same run**: the same ``Config`` (every hyperparameter,
``n_epochs`` and ``seed`` included; only ``log_every``, how often the loss is logged, may differ), the same training
data (``config.json``'s fingerprint: item ids, item counts, events) and a checkpoint of its last epoch. It returns
that run as a :class:`gru4rec.train.TrainResult` (the model as :func:`gru4rec.runs.load_run` reads it back, the
epoch records of its ``train.jsonl``), so the numbers are those of a real training of this configuration on this
machine. Otherwise it trains as :func:`gru4rec.train.train` does; either way the caller can say which
(:func:`reuse_note`). Nothing is written into a reused folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from gru4rec.config import Config
from gru4rec.run_folder import RunFolder, RunFolderError, data_fingerprint, fingerprint_differences
from gru4rec.session_data import SessionData

PathLike = Union[str, "Path"]

REUSE_IGNORED = ("log_every",)
"""Config fields that may differ between a run and its reuse: they change what is logged, not the weights."""


def reuse_problem(run_dir: PathLike, config: Config, data: SessionData) -> Optional[str]:
    """Why ``run_dir`` does not hold a finished run of ``config`` on ``data`` (None when it does): no run there, a
    configuration that differs (named), other training data, or no checkpoint of epoch ``config.n_epochs``."""
    folder = RunFolder(run_dir)
    if not folder.holds_run():
        return f"{folder.path}: no run there (config.json is missing)"
    try:
        meta = folder.read_meta()
        saved = folder.read_config(meta).to_dict()
    except (RunFolderError, OSError) as error:
        return str(error)
    wanted = config.to_dict()
    differ = [f"{name}: {saved.get(name)!r} (run) != {value!r} (wanted)" for name, value in wanted.items()
              if name not in REUSE_IGNORED and saved.get(name) != value]  # fmt: skip
    if differ:
        return f"{folder.path}: another configuration ({'; '.join(differ)})"
    if "data" not in meta:
        return f"{folder.config_path}: no training-data fingerprint to compare"
    differ = fingerprint_differences(meta["data"], data_fingerprint(data))
    if differ:
        return f"{folder.path}: other training data ({'; '.join(differ)})"
    if config.n_epochs not in folder.checkpoint_epochs():
        return f"{folder.checkpoints_dir}: no checkpoint of epoch {config.n_epochs} (not kept, or not finished)"
    return None


def epoch_records(run_dir: PathLike, n_epochs: int) -> list:
    """The epoch records of ``run_dir/train.jsonl`` for epochs ``0 .. n_epochs - 1`` (the last one of each epoch);
    :class:`RunFolderError` naming the file when one is missing."""
    path = RunFolder(run_dir).jsonl_path
    records: dict = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise RunFolderError(f"{path}:{number}: not a JSON record") from None
            if isinstance(record, dict) and record.get("kind") == "epoch":
                records[int(record["epoch"])] = record
    missing = [epoch for epoch in range(n_epochs) if epoch not in records]
    if missing:
        raise RunFolderError(f"{path}: no record of epoch(s) {missing}")
    return [records[epoch] for epoch in range(n_epochs)]


def load_result(run_dir: PathLike, config: Config, data: SessionData) -> Any:
    """The finished run in ``run_dir`` as a :class:`gru4rec.train.TrainResult` (checked with :func:`reuse_problem`;
    :class:`RunFolderError` with its reason otherwise). ``seconds`` and ``events_per_s`` are the run's own."""
    import tensorflow as tf

    from gru4rec.runs import load_run
    from gru4rec.train import TrainResult

    problem = reuse_problem(run_dir, config, data)
    if problem is not None:
        raise RunFolderError(problem)
    loaded = load_run(run_dir, epoch=config.n_epochs)
    history = epoch_records(run_dir, config.n_epochs)
    seconds = float(sum(record["seconds"] for record in history))
    events = float(sum(record["events"] for record in history))
    prefix = RunFolder(run_dir).checkpoint_prefix(config.n_epochs)
    updates = int(tf.train.load_variable(prefix, "optimizer/step/.ATTRIBUTES/VARIABLE_VALUE"))
    return TrainResult(
        run_dir=Path(run_dir), config=config, model=loaded.model, item_map=loaded.item_map,
        epochs_done=config.n_epochs, steps=int(sum(record["steps"] for record in history)), updates=updates,
        epoch_losses=[float(record["loss"]) for record in history], events_per_s=events / seconds if seconds else 0.0,
        seconds=seconds, history=history, device=str((loaded.meta.get("device") or {}).get("ran_on", "")),
    )  # fmt: skip


def train_or_reuse(
    config: Config,
    train_data: SessionData,
    run_dir: PathLike,
    reuse: Sequence[PathLike] = (),
    **train_kwargs: Any,
) -> Any:
    """The first folder of ``reuse`` that holds a finished run of ``config`` on ``train_data``
    (:func:`load_result`), else a new training into ``run_dir`` (:func:`gru4rec.train.train` with
    ``train_kwargs``). The result's ``run_dir`` says which."""
    from gru4rec.train import train

    for candidate in reuse:
        if reuse_problem(candidate, config, train_data) is None:
            return load_result(candidate, config, train_data)
    return train(config, train_data, run_dir, **train_kwargs)


def reuse_note(result: Any, run_dir: PathLike) -> str:
    """One line for a notebook: whether ``result`` was trained into ``run_dir`` or reused from another folder."""
    if Path(result.run_dir) == Path(run_dir):
        return f"trained into {run_dir}"
    return (f"reused {result.run_dir} (same configuration and training data; trained there in "
            f"{result.seconds:.0f} s), not trained again")  # fmt: skip
