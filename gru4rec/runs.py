"""Reading a run folder back: its configuration, item map and the model at a given epoch."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import tensorflow as tf

from gru4rec.config import Config
from gru4rec.model import GRU4RecModel
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
    """The epochs with a checkpoint in ``run_dir/checkpoints``, ascending."""
    folder = Path(run_dir) / "checkpoints"
    epochs = set()
    for path in folder.glob("epoch-*.index"):
        match = re.fullmatch(r"epoch-(\d+)\.index", path.name)
        if match:
            epochs.add(int(match.group(1)))
    return sorted(epochs)


def load_run(run_dir, epoch: Optional[int] = None) -> LoadedRun:
    """The model of ``run_dir`` after ``epoch`` epochs (default: the latest checkpoint)."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder: config.json is missing")
    meta: dict[str, Any] = json.loads(config_path.read_text())
    config = Config.from_dict(meta["config"])
    item_map = ItemMap.load(run_dir / "items.tsv")
    epochs = checkpoint_epochs(run_dir)
    if not epochs:
        raise FileNotFoundError(f"{run_dir}/checkpoints holds no checkpoint (was the first epoch finished?)")
    if epoch is None:
        epoch = epochs[-1]
    elif epoch not in epochs:
        raise ValueError(f"epoch: no checkpoint for epoch {epoch} in {run_dir}; available: {epochs}")
    model = GRU4RecModel(int(meta["n_items"]), config)
    status = tf.train.Checkpoint(model=model).restore(str(run_dir / "checkpoints" / f"epoch-{epoch}"))
    status.expect_partial().assert_existing_objects_matched()
    support_path = run_dir / "item_support.npy"
    support = np.load(support_path) if support_path.exists() else None
    return LoadedRun(config, item_map, model, int(epoch), run_dir, meta, support)
