"""Named data sets for the notebooks and the CLI: the embedded ``tiny`` preset and generated synthetic presets.

``ensure_preset("small")`` returns the paths of the four RSC15-style splits, generating them once (clicks →
RSC15 rules → splits → the ceiling) into ``DATA_DIR/generated/<preset>``; a ``.complete`` marker written last says
the folder is whole (an interrupted build is made again). The ``tiny`` preset is committed in
``data/tiny`` and never regenerated.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

from gru4rec import io as gio
from gru4rec import rsc15, synthetic
from gru4rec.session_data import ItemMap, SessionData

PathLike = Union[str, "os.PathLike[str]"]
CLICKS_NAME = "yoochoose-clicks.dat"
CEILING_CUTOFFS: tuple[int, ...] = (1, 5, 10, 20)
EMBEDDED_PRESET = "tiny"
COMPLETE_MARKER = ".complete"  # written last by ensure_preset: a generated preset without it is made again
DEFAULT_SEED = 42


@dataclass(frozen=True)
class PresetFiles:
    """Paths of a prepared data set (the four splits of the RSC15 rules and their stats)."""

    directory: Path

    @property
    def train_full(self) -> Path:
        return self.directory / rsc15.FILES["train_full"]

    @property
    def test(self) -> Path:
        return self.directory / rsc15.FILES["test"]

    @property
    def train_tr(self) -> Path:
        return self.directory / rsc15.FILES["train_tr"]

    @property
    def train_valid(self) -> Path:
        return self.directory / rsc15.FILES["train_valid"]

    @property
    def stats_path(self) -> Path:
        return self.directory / rsc15.STATS_FILE

    def stats(self) -> dict:
        return json.loads(self.stats_path.read_text(encoding="utf-8"))

    def ceiling(self, holdout: str = "test") -> dict:
        """Recall@K / MRR@K of the Bayes-optimal predictor on ``holdout`` (``test`` or ``train_valid``)."""
        stats = self.stats()
        if "ceiling" not in stats:
            raise KeyError(f"{self.stats_path}: no ceiling recorded (made with --no-ceiling?)")
        return stats["ceiling"][holdout]

    def load(self, train: str = "train_full", holdout: str = "test") -> tuple[SessionData, SessionData]:
        """Training and hold-out SessionData, the hold-out indexed with the training item map."""
        train_data = SessionData.from_frame(gio.read_sessions(getattr(self, train)))
        holdout_data = SessionData.from_frame(gio.read_sessions(getattr(self, holdout)), train_data.item_map)
        return train_data, holdout_data

    @property
    def marker_path(self) -> Path:
        return self.directory / COMPLETE_MARKER

    def exists(self) -> bool:
        return all(path.exists() for path in (self.train_full, self.test, self.train_tr, self.train_valid))

    def complete(self) -> bool:
        """A generated preset is complete only when :func:`ensure_preset` wrote its marker (last, after the
        ceiling); the embedded preset, committed whole, needs only its files."""
        if self.directory == preset_dir(EMBEDDED_PRESET, self.directory.parent):
            return self.exists() and self.stats_path.exists()
        return self.exists() and self.marker_path.exists()


def default_data_dir() -> Path:
    """``data/`` of the checkout the package is installed from."""
    return Path(__file__).resolve().parents[1] / "data"


def preset_dir(preset: str, data_dir: Optional[PathLike] = None, seed: int = DEFAULT_SEED) -> Path:
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    if preset == EMBEDDED_PRESET and seed == DEFAULT_SEED:
        return data_dir / EMBEDDED_PRESET
    suffix = "" if seed == DEFAULT_SEED else f"-seed{seed}"
    return data_dir / "generated" / f"{preset}{suffix}"


def compute_ceilings(
    process: synthetic.SyntheticProcess, directory: PathLike, cutoffs: Sequence[int] = CEILING_CUTOFFS
) -> dict:
    """Ceiling metrics on the test split (train_full items) and on train_valid (train_tr items)."""
    files = PresetFiles(Path(directory))
    result = {}
    for holdout, train in (("test", "train_full"), ("train_valid", "train_tr")):
        train_items = gio.read_sessions(getattr(files, train))["ItemId"].to_numpy()
        metrics = synthetic.ceiling(
            process, gio.read_sessions(getattr(files, holdout)), ItemMap.from_ids(train_items), cutoffs=cutoffs
        )
        keep = {k: v for k, v in metrics.items() if k.startswith(("recall@", "mrr@")) or k in ("n_events", "tie_mode")}
        result[holdout] = json.loads(json.dumps(keep, default=float))
    return result


def build_synthetic(
    preset: str,
    seed: int,
    out_dir: PathLike,
    prepare: bool = True,
    with_ceiling: bool = True,
    progress: Optional[Callable[[str], None]] = None,
) -> Optional[dict]:
    """Generate a preset's clicks into ``out_dir``, apply the RSC15 rules and record the ceiling; return the stats.

    ``prepare=False`` writes only the clicks, and refuses (``ValueError``, before writing anything) a folder that
    holds a prepared set (splits, ``rsc15_stats.json`` or the ``.complete`` marker): the set would no longer match
    the clicks while still claiming to be complete, and removing it could delete data the kit did not write.
    With ``prepare=True`` the completion markers are removed before the new clicks are written, so a kill before
    the new set is in place leaves an incomplete folder, never old splits marked complete next to new clicks."""
    say = progress or (lambda message: None)
    out_dir = Path(out_dir)
    prepared = [name for name in (*rsc15.FILES.values(), rsc15.STATS_FILE, COMPLETE_MARKER)
                if os.path.lexists(out_dir / name)]  # fmt: skip
    if prepared and not prepare:
        raise ValueError(
            f"{out_dir}: holds a prepared set ({', '.join(prepared)}) that new clicks would not match; --no-prepare "
            "would leave it stale: write the clicks into a new folder, or drop --no-prepare to prepare them over it"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for marker in (rsc15.STATS_FILE, COMPLETE_MARKER):  # the old set stops counting as complete from here on
        (out_dir / marker).unlink(missing_ok=True)
    start = time.perf_counter()
    say(f"[synth] generating preset {preset!r} with seed {seed}")
    synth = synthetic.generate(preset, seed)
    clicks_path = out_dir / CLICKS_NAME
    say(f"[synth] writing {len(synth.clicks):,} clicks to {clicks_path}")
    synth.write(clicks_path)
    if not prepare:
        return None
    extra = {"synthetic": {**synth.describe(), "params": synth.params}}
    process = synth.process
    del synth  # the prepared files are read back from disk; free the clicks of the big presets
    stats = rsc15.prepare(clicks_path, out_dir, progress=lambda m: say(f"[prepare] {m}"), extra_stats=extra)
    if with_ceiling:
        say("[synth] computing the ceiling (Bayes-optimal predictor) on the test and validation splits")
        stats = {**stats, **rsc15.update_stats(out_dir, ceiling=compute_ceilings(process, out_dir))}
    say(f"[synth] done in {time.perf_counter() - start:.1f} s")
    return stats


def _generator_version(files: PresetFiles) -> Optional[int]:
    """The generator version recorded in a prepared preset's stats (None if unknown)."""
    try:
        return files.stats().get("synthetic", {}).get("generator_version")
    except (OSError, ValueError):
        return None


def ensure_preset(
    preset: str = "small",
    data_dir: Optional[PathLike] = None,
    seed: int = DEFAULT_SEED,
    progress: Optional[Callable[[str], None]] = print,
) -> PresetFiles:
    """The prepared files of a synthetic preset, generated once if they are missing or from an older generator."""
    if preset not in synthetic.PRESETS:
        raise ValueError(f"unknown data preset {preset!r}; choose one of {', '.join(synthetic.PRESETS)}")
    files = PresetFiles(preset_dir(preset, data_dir, seed))
    if not files.complete() or _generator_version(files) != synthetic.GENERATOR_VERSION:
        files.marker_path.unlink(missing_ok=True)
        build_synthetic(preset, seed, files.directory, progress=progress)
        (files.directory / CLICKS_NAME).unlink(missing_ok=True)  # the splits are what the kit reads
        if files.directory != preset_dir(EMBEDDED_PRESET, files.directory.parent):
            with gio.atomic_write(files.marker_path) as handle:
                handle.write(json.dumps({"preset": preset, "seed": seed,
                                         "generator_version": synthetic.GENERATOR_VERSION}) + "\n")  # fmt: skip
    return files
