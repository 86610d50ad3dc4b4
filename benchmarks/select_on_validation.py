"""Choose one hyperparameter's value on the validation split only, then read the test split once (not a test).

    python benchmarks/select_on_validation.py --param weight_averaging --values 0 1 2 3 5 \\
        --data small --data data/movielens --seeds 42 43 44 --epochs 3 --json select.json

Protocol, in this order:

1. **Selection, validation split only.** For every data set (``--data``, at least two), every candidate value
   (``--values``) and every seed (``--seeds``, at least three), the kit trains ``Config.preset(--config)`` with
   ``--param=value`` (and ``--set`` overrides) on ``train_tr`` for ``--epochs`` epochs and evaluates it on
   ``train_valid`` (all items, conservative ties). A value's score is the mean over the data sets of its mean
   Recall@20 over the seeds (each data set counts once, whatever its size); the highest score is selected, the first
   listed value on a tie. No test file is opened in this phase.
2. **The test split, once.** Only the selected value is then trained on ``train_full`` with the same seeds and
   evaluated on ``test`` of every data set.

``--data`` is a synthetic preset name (``tiny``, ``small``, ...) or a folder holding the four GRU4Rec files of one data
set, one file each ending in ``_train_tr.txt``, ``_train_valid.txt``, ``_train_full.txt`` and ``_test.txt`` (e.g.
the output of ``gru4rec prepare movielens``). Runs go to ``--run-dir`` (default ``runs/select_<param>``), one folder
per (data set, split, value, seed); an existing run folder is reused only when it holds the requested configuration
and training data (``accuracy_report.check_kit_run``), else the script stops with a one-line error (exit 2).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy_report import StaleRunError, check_kit_run  # noqa: E402  (benchmarks/accuracy_report.py)

MIN_SEEDS = 3
MIN_DATA_SETS = 2
SPLITS = ("train_tr", "train_valid", "train_full", "test")


class ProtocolError(ValueError):
    """The request does not meet the protocol (too few seeds or data sets, a data folder without its four files)."""


@dataclass(frozen=True)
class DataSet:
    """One data set's four GRU4Rec files."""

    name: str
    files: dict  # split -> Path


def resolve_data(spec: str) -> DataSet:
    """A preset name or a folder with one ``*_<split>.txt`` file per split (:data:`SPLITS`)."""
    from gru4rec import synthetic

    if spec in synthetic.PRESETS:
        from gru4rec.datasets import ensure_preset

        preset = ensure_preset(spec, progress=None)
        return DataSet(spec, {split: getattr(preset, split) for split in SPLITS})
    folder = Path(spec)
    if not folder.is_dir():
        raise ProtocolError(f"--data {spec}: neither a synthetic preset ({', '.join(synthetic.PRESETS)}) nor a folder")
    files = {}
    for split in SPLITS:
        found = sorted(folder.glob(f"*_{split}.txt"))
        if len(found) != 1:
            raise ProtocolError(f"--data {spec}: expected one file ending in _{split}.txt, found {len(found)}")
        files[split] = found[0]
    return DataSet(folder.name, files)


def select(validation: Sequence[dict], values: Sequence, metric: str = "recall@20") -> tuple:
    """``(selected value, {value: score})``: a value's score is the mean over the data sets of its mean ``metric``
    over the seeds; the highest wins, the first of ``values`` on a tie."""
    scores = {}
    for value in values:
        per_data = {}
        for row in validation:
            if row["value"] == value:
                per_data.setdefault(row["data"], []).append(row[metric])
        if not per_data:
            raise ValueError(f"no validation result for value {value!r}")
        scores[value] = statistics.fmean(statistics.fmean(v) for v in per_data.values())
    best = max(values, key=lambda v: (scores[v], -list(values).index(v)))
    return best, scores


def _train_and_evaluate(config, train_path: Path, holdout_path: Path, run_dir: Path) -> dict:
    """Train ``config`` on ``train_path`` into ``run_dir`` (or reuse / resume a matching run there) and evaluate its
    last epoch on ``holdout_path``: Recall@20, MRR@20, Recall@5, MRR@5."""
    from gru4rec.evaluate import GRU4RecScorer, evaluate
    from gru4rec.io import read_sessions
    from gru4rec.runs import checkpoint_epochs, load_run
    from gru4rec.session_data import SessionData
    from gru4rec.train import train

    train_data = SessionData.from_frame(read_sessions(train_path))
    check_kit_run(run_dir, config, train_data)
    done = checkpoint_epochs(run_dir) if (run_dir / "config.json").exists() else []
    if not done or done[-1] < config.n_epochs:
        train(config, train_data, run_dir, resume=bool(done), progress=False)
    run = load_run(run_dir, epoch=config.n_epochs)
    holdout = SessionData.from_frame(read_sessions(holdout_path), train_data.item_map)
    metrics = evaluate(GRU4RecScorer(run.model, item_map=run.item_map, item_support=run.item_support), holdout,
                       cutoffs=(5, 20))  # fmt: skip
    return {key: metrics[key] for key in ("recall@20", "mrr@20", "recall@5", "mrr@5")}


def check_protocol(data_names: Sequence[str], seeds: Sequence[int], values: Sequence) -> None:
    """:class:`ProtocolError` unless there are at least :data:`MIN_DATA_SETS` distinct data sets,
    :data:`MIN_SEEDS` distinct seeds and two distinct values."""
    if len(seeds) < MIN_SEEDS or len(set(seeds)) != len(seeds):
        raise ProtocolError(f"--seeds: expected at least {MIN_SEEDS} distinct seeds, got {list(seeds)}")
    if len(set(data_names)) < MIN_DATA_SETS or len(set(data_names)) != len(data_names):
        raise ProtocolError(f"--data: expected at least {MIN_DATA_SETS} data sets with distinct names, "
                            f"got {list(data_names)}")  # fmt: skip
    if len(values) < 2 or len(set(map(str, values))) != len(values):
        raise ProtocolError(f"--values: expected at least two distinct values, got {list(values)}")


def run_protocol(data_sets: Sequence[DataSet], base, param: str, values: Sequence, seeds: Sequence[int],
                 run_root: Path, say=print) -> dict:  # fmt: skip
    """Phase 1 (validation) and phase 2 (test, the selected value only); returns every row and the selection."""
    check_protocol([d.name for d in data_sets], seeds, values)
    configs = {value: base.with_overrides(**{param: value}) for value in values}  # validated before any training
    validation = []
    for data in data_sets:
        for value in values:
            for seed in seeds:
                config = configs[value].with_overrides(seed=seed)
                run_dir = run_root / data.name / "train_tr" / f"{param}={value}" / f"seed{seed}"
                metrics = _train_and_evaluate(config, data.files["train_tr"], data.files["train_valid"], run_dir)
                row = {"data": data.name, "split": "train_valid", "value": value, "seed": seed, **metrics}
                say(f"validation  {data.name:<12} {param}={value!s:<8} seed {seed}: Recall@20 "
                    f"{metrics['recall@20']:.4f}  MRR@20 {metrics['mrr@20']:.4f}")  # fmt: skip
                validation.append(row)
    selected, scores = select(validation, values)
    say(f"selected on the validation split: {param}={selected} (mean Recall@20 over data sets and seeds: "
        + ", ".join(f"{v}: {s:.4f}" for v, s in scores.items()) + ")")
    test = []
    for data in data_sets:
        for seed in seeds:
            config = configs[selected].with_overrides(seed=seed)
            run_dir = run_root / data.name / "train_full" / f"{param}={selected}" / f"seed{seed}"
            metrics = _train_and_evaluate(config, data.files["train_full"], data.files["test"], run_dir)
            test.append({"data": data.name, "split": "test", "value": selected, "seed": seed, **metrics})
            say(f"test        {data.name:<12} {param}={selected!s:<8} seed {seed}: Recall@20 "
                f"{metrics['recall@20']:.4f}  MRR@20 {metrics['mrr@20']:.4f}")  # fmt: skip
    return {"param": param, "values": list(values), "seeds": list(seeds), "selected": selected,
            "validation_scores": {str(v): s for v, s in scores.items()},
            "validation": validation, "test": test}  # fmt: skip


def _mean_sd(values: list) -> str:
    sd = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):.4f}{sd}"


def print_tables(result: dict) -> None:
    """Markdown: validation mean ± sd per (data set, value); the selected value's test mean ± sd per data set."""
    param = result["param"]
    print(f"| data set | {param} | Recall@20 (train_valid) | MRR@20 (train_valid) |")
    print("|---|---:|---:|---:|")
    for data in dict.fromkeys(r["data"] for r in result["validation"]):
        for value in result["values"]:
            rows = [r for r in result["validation"] if r["data"] == data and r["value"] == value]
            print(f"| {data} | {value} | {_mean_sd([r['recall@20'] for r in rows])} "
                  f"| {_mean_sd([r['mrr@20'] for r in rows])} |")  # fmt: skip
    print()
    print(f"Selected {param}={result['selected']}; test split, read once, seeds {result['seeds']}:")
    print()
    print(f"| data set | {param} | Recall@20 (test) | MRR@20 (test) |")
    print("|---|---:|---:|---:|")
    for data in dict.fromkeys(r["data"] for r in result["test"]):
        rows = [r for r in result["test"] if r["data"] == data]
        print(f"| {data} | {result['selected']} | {_mean_sd([r['recall@20'] for r in rows])} "
              f"| {_mean_sd([r['mrr@20'] for r in rows])} |")  # fmt: skip


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--param", required=True, help="the hyperparameter to choose, e.g. weight_averaging")
    parser.add_argument("--values", nargs="+", required=True, help="its candidate values (at least two)")
    parser.add_argument("--data", action="append", required=True, metavar="PRESET|FOLDER",
                        help="a data set (repeat, at least two): a synthetic preset or a folder of four split files")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44], help="seeds (default 42 43 44)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of every run (default 3)")
    parser.add_argument("--config", default="official", help="Config preset (default official)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="another override")
    parser.add_argument("--run-dir", default=None, help="folder of the runs (default runs/select_<param>)")
    parser.add_argument("--json", metavar="OUT", help="also write every row and the selection as JSON")
    args = parser.parse_args(argv)

    from gru4rec.config import Config

    started = time.perf_counter()
    try:  # bad input: one line, exit 2, before any training
        overrides = dict(pair.split("=", 1) for pair in args.set)
        base = Config.preset(args.config, n_epochs=args.epochs, **overrides)
        values = [base.with_overrides(**{args.param: v}).to_dict()[args.param] for v in args.values]
        check_protocol([Path(spec).name for spec in args.data], args.seeds, values)
        data_sets = [resolve_data(spec) for spec in args.data]
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        result = run_protocol(data_sets, base, args.param, values, args.seeds,
                              Path(args.run_dir or f"runs/select_{args.param}"))  # fmt: skip
    except (ProtocolError, StaleRunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print()
    print(f"config {args.config} {overrides or ''}, {args.epochs} epochs; {(time.perf_counter() - started) / 60:.0f} "
          f"min in all")  # fmt: skip
    print()
    print_tables(result)
    if args.json:
        from gru4rec.io import atomic_write

        with atomic_write(args.json) as handle:
            json.dump({**result, "config": base.to_dict(), "data": {d.name: {s: str(p) for s, p in d.files.items()}
                                                                    for d in data_sets}}, handle, indent=2)  # fmt: skip
            handle.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
