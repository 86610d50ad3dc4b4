"""Reading a run folder back: its configuration, item map and the model at a given epoch (via
``gru4rec.run_folder``, which owns the folder's layout and its checks)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf

from gru4rec.averaging import average_restore_target
from gru4rec.config import Config
from gru4rec.model import GRU4RecModel
from gru4rec.run_folder import RunFolder, RunFolderError
from gru4rec.session_data import ItemMap


@dataclass
class LoadedRun:
    config: Config
    item_map: ItemMap
    model: GRU4RecModel
    epoch: int  # epochs of training behind the weights (checkpoint number)
    run_dir: Path
    meta: dict  # the whole config.json (n_items, versions, device, ...)
    item_support: Optional[np.ndarray] = None  # training events per item index


def checkpoint_epochs(run_dir) -> list:
    """The epochs with a complete checkpoint in ``run_dir/checkpoints``, ascending."""
    return RunFolder(run_dir).checkpoint_epochs()


def load_run(run_dir, epoch: Optional[int] = None) -> LoadedRun:
    """The model of ``run_dir`` after ``epoch`` epochs (default: the latest checkpoint). A broken folder (config.json
    not an object, items.tsv or item_support.npy not matching config.json, a corrupt checkpoint or one of other
    shapes) raises :class:`gru4rec.run_folder.RunFolderError` naming the file."""
    folder = RunFolder(run_dir)
    meta = folder.read_meta()
    config = folder.read_config(meta)
    item_map = folder.read_item_map(meta)  # checked against config.json (n_items, item ids)
    n_items = int(meta["n_items"])
    epochs = folder.checkpoint_epochs()
    if not epochs:
        raise FileNotFoundError(f"{folder.checkpoints_dir} holds no checkpoint (was the first epoch finished?)")
    if epoch is None:
        epoch = epochs[-1]
    elif epoch not in epochs:
        raise ValueError(f"epoch: no checkpoint for epoch {epoch} in {folder.path}; available: {epochs}")
    try:
        model = GRU4RecModel(n_items, config)
    except (MemoryError, tf.errors.ResourceExhaustedError):
        raise RunFolderError(f"{folder.config_path}: not enough memory for a model of {n_items} items and layers "
                             f"{list(config.layers)}") from None  # fmt: skip
    # With weight averaging the run's model is the average (gru4rec.averaging), saved as the checkpoint's ``average``.
    target = average_restore_target(model) if config.weight_averaging > 0 else tf.train.Checkpoint(model=model)
    folder.restore(target, folder.checkpoint_prefix(epoch), partial=True)
    support = folder.read_support(meta)  # checked against config.json (length, item counts); None when missing
    return LoadedRun(config, item_map, model, int(epoch), folder.path, meta, support)
