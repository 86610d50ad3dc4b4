"""Choose hyperparameter values on the validation split only, then read the test split once (not a test).

    python benchmarks/select_on_validation.py --param gru_variant --values reset_after reset_before \\
        --param weight_averaging --values 0 1 2 3 5 --data small --data data/movielens \\
        --seeds 42 43 44 --epochs 10 --also-epochs 3 --json select.json

Protocol, in this order:

1. **Selection, validation split only.** The candidates are every combination of the values of the ``--param``
   options (one ``--values`` list after each). For every data set (``--data``, at least two), every candidate and
   every seed (``--seeds``, at least three), the kit trains ``Config.preset(--config)`` with the candidate's values
   (and ``--set`` overrides) on ``train_tr`` for ``--epochs`` epochs and evaluates it on ``train_valid`` (all items,
   conservative ties). A candidate's score is the mean over the data sets of its mean Recall@20 over the seeds (each
   data set counts once, whatever its size); the highest score is selected, the first listed candidate on a tie. No
   test file is opened in this phase.
2. **The test split, once.** Only the selected candidate is then trained on ``train_full`` with the same seeds and
   evaluated on ``test`` of every data set.

``--also-epochs`` evaluates earlier epochs of the same runs as well (shown, never used to select).

``weight_averaging`` (eta of the weight average, ``gru4rec.averaging``) does not change the training, only the
weights evaluated: candidates that differ only in it share one training, which moves one average per eta beside
the model after every chunk, as ``train`` does, and evaluates each (eta 0: the last weights). That training is kept
in memory; its scores go to ``<run-dir>/<data>/train_tr/<other values>/seed<seed>.json`` with the configuration and
the training data's fingerprint, and are reused only when both match.

``--data`` is a synthetic preset name (``tiny``, ``small``, ...) or a folder holding the four GRU4Rec files of one data
set, one file each ending in ``_train_tr.txt``, ``_train_valid.txt``, ``_train_full.txt`` and ``_test.txt`` (e.g.
the output of ``gru4rec prepare movielens``). Runs go to ``--run-dir`` (default ``runs/select_<params>``), one folder
per (data set, split, candidate, seed); an existing run folder is reused only when it holds the requested
configuration and training data (``accuracy_report.check_kit_run``), else the script stops with a one-line error
(exit 2).
"""

from __future__ import annotations

import argparse
import itertools
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
METRICS = ("recall@20", "mrr@20", "recall@5", "mrr@5")
AVERAGING = "weight_averaging"


class ProtocolError(ValueError):
    """The request does not meet the protocol (too few seeds or data sets, a data folder without its four files)."""


@dataclass(frozen=True)
class DataSet:
    """One data set's four GRU4Rec files."""

    name: str
    files: dict  # split -> Path


@dataclass(frozen=True)
class Candidate:
    """One combination of values: ``setting`` maps each selected parameter to its value; ``label`` names it in rows
    and tables (the value itself when one parameter is selected)."""

    setting: dict
    label: object


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


def make_candidates(params: Sequence[tuple]) -> list:
    """Every combination of ``params`` (``[(name, [value, ...]), ...]``), the first parameter varying slowest."""
    names = [name for name, _ in params]
    candidates = []
    for values in itertools.product(*(vals for _, vals in params)):
        setting = dict(zip(names, values))
        label = values[0] if len(names) == 1 else " ".join(f"{n}={v}" for n, v in setting.items())
        candidates.append(Candidate(setting, label))
    return candidates


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


def _evaluate_model(model, train_data, holdout_data) -> dict:
    """Recall@K / MRR@K (K = 5, 20) of ``model`` on ``holdout_data`` (all items, conservative ties)."""
    from gru4rec.evaluate import GRU4RecScorer, evaluate

    scorer = GRU4RecScorer(model, item_map=train_data.item_map, item_support=train_data.item_counts)
    metrics = evaluate(scorer, holdout_data, cutoffs=(5, 20))
    return {key: metrics[key] for key in METRICS}


def _read_pair(train_path: Path, holdout_path: Path) -> tuple:
    """``(train SessionData, holdout SessionData on the training item map)``."""
    from gru4rec.io import read_sessions
    from gru4rec.session_data import SessionData

    train_data = SessionData.from_frame(read_sessions(train_path))
    return train_data, SessionData.from_frame(read_sessions(holdout_path), train_data.item_map)


def _train_and_evaluate(config, train_path: Path, holdout_path: Path, run_dir: Path, epochs: Sequence[int]) -> dict:
    """Train ``config`` on ``train_path`` into ``run_dir`` (or reuse / resume a matching run there) and evaluate the
    checkpoints of ``epochs`` on ``holdout_path``: ``{epoch: {metric: value}}``."""
    from gru4rec.runs import checkpoint_epochs, load_run
    from gru4rec.train import train

    train_data, holdout = _read_pair(train_path, holdout_path)
    check_kit_run(run_dir, config, train_data)
    done = checkpoint_epochs(run_dir) if (run_dir / "config.json").exists() else []
    if not done or done[-1] < config.n_epochs:
        train(config, train_data, run_dir, resume=bool(done), progress=False)
    return {epoch: _evaluate_model(load_run(run_dir, epoch=epoch).model, train_data, holdout) for epoch in epochs}


def _train_with_averages(config, etas: Sequence[float], train_path: Path, holdout_path: Path, record: Path,
                         epochs: Sequence[int]) -> dict:  # fmt: skip
    """One training of ``config`` (its own ``weight_averaging`` ignored) with one weight average per nonzero eta of
    ``etas`` moved after every chunk, as ``train`` moves its own; ``{eta: {epoch: metrics}}`` on ``holdout_path``
    (eta 0: the last weights). The scores are kept in ``record`` (JSON) and reused only for the same configuration,
    etas, epochs and training data."""
    from gru4rec.averaging import WeightAverage
    from gru4rec.io import atomic_write
    from gru4rec.run_folder import data_fingerprint
    from gru4rec.train import Trainer

    train_data, holdout = _read_pair(train_path, holdout_path)
    plain = config.with_overrides(weight_averaging=0.0)
    key = {"config": plain.to_dict(), "etas": [float(e) for e in etas], "epochs": list(epochs),
           "data": data_fingerprint(train_data)}  # fmt: skip
    if record.exists():
        saved = json.loads(record.read_text())
        diffs = [name for name in key if saved.get(name) != key[name]]
        if diffs:
            raise StaleRunError(f"{record}: cannot reuse it, it holds scores of another request ({', '.join(diffs)} "
                                f"differ); remove it or give another --run-dir")  # fmt: skip
        return {float(eta): {int(ep): m for ep, m in by_epoch.items()} for eta, by_epoch in saved["scores"].items()}
    trainer = Trainer(plain, train_data.n_items, train_data.item_counts, max_steps_per_epoch=train_data.n_pairs)
    averages = {float(eta): WeightAverage(trainer.model, eta) for eta in etas if eta > 0}

    def move_averages(*_):
        for average in averages.values():
            average.update()

    scores: dict = {float(eta): {} for eta in etas}
    for epoch in range(plain.n_epochs):
        out = trainer.run_epoch(train_data, epoch, move_averages)
        if "nan_step_in_epoch" in out:
            raise RuntimeError(f"loss is NaN in epoch {epoch + 1} of {record}")
        if epoch + 1 in epochs:
            for eta in scores:
                model = averages[eta].model if eta > 0 else trainer.model
                scores[eta][epoch + 1] = _evaluate_model(model, train_data, holdout)
    record.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(record) as handle:
        json.dump({**key, "scores": {str(eta): by_epoch for eta, by_epoch in scores.items()}}, handle, indent=1)
    return scores


def check_protocol(data_names: Sequence[str], seeds: Sequence[int], candidates: Sequence) -> None:
    """:class:`ProtocolError` unless there are at least :data:`MIN_DATA_SETS` distinct data sets,
    :data:`MIN_SEEDS` distinct seeds and two distinct candidates."""
    if len(seeds) < MIN_SEEDS or len(set(seeds)) != len(seeds):
        raise ProtocolError(f"--seeds: expected at least {MIN_SEEDS} distinct seeds, got {list(seeds)}")
    if len(set(data_names)) < MIN_DATA_SETS or len(set(data_names)) != len(data_names):
        raise ProtocolError(f"--data: expected at least {MIN_DATA_SETS} data sets with distinct names, "
                            f"got {list(data_names)}")  # fmt: skip
    if len(candidates) < 2 or len(set(map(str, candidates))) != len(candidates):
        raise ProtocolError(f"--values: expected at least two distinct values, got {list(candidates)}")


def _folder_name(setting: dict) -> str:
    return ",".join(f"{name}={value}" for name, value in setting.items()) or "base"


def _rows(data: str, split: str, label, seed: int, by_epoch: dict, final: int) -> tuple:
    """``(row of the final epoch, rows of the other epochs)``."""
    rows = [{"data": data, "split": split, "value": label, "seed": seed, "epoch": epoch, **metrics}
            for epoch, metrics in sorted(by_epoch.items())]  # fmt: skip
    return [r for r in rows if r["epoch"] == final][0], [r for r in rows if r["epoch"] != final]


def _validate(data: DataSet, base, candidates: Sequence[Candidate], seed: int, run_root: Path,
              epochs: Sequence[int]) -> dict:  # fmt: skip
    """``{candidate label: {epoch: metrics}}`` on ``train_valid`` for one data set and seed; candidates that differ
    only in ``weight_averaging`` share one training (:func:`_train_with_averages`)."""
    results = {}
    groups: dict = {}
    for cand in candidates:
        others = {k: v for k, v in cand.setting.items() if k != AVERAGING}
        groups.setdefault(json.dumps(others, sort_keys=True, default=str), []).append(cand)
    for members in groups.values():
        others = {k: v for k, v in members[0].setting.items() if k != AVERAGING}
        if AVERAGING in members[0].setting and len(members) > 1:
            config = base.with_overrides(**others, seed=seed)
            record = run_root / data.name / "train_tr" / _folder_name(others) / f"seed{seed}.json"
            etas = [m.setting[AVERAGING] for m in members]
            scores = _train_with_averages(config, etas, data.files["train_tr"], data.files["train_valid"], record,
                                          epochs)  # fmt: skip
            for member in members:
                results[member.label] = scores[float(member.setting[AVERAGING])]
            continue
        for member in members:
            config = base.with_overrides(**member.setting, seed=seed)
            run_dir = run_root / data.name / "train_tr" / _folder_name(member.setting) / f"seed{seed}"
            results[member.label] = _train_and_evaluate(config, data.files["train_tr"], data.files["train_valid"],
                                                        run_dir, epochs)  # fmt: skip
    return results


def run_protocol(data_sets: Sequence[DataSet], base, params: Sequence[tuple], seeds: Sequence[int], run_root: Path,
                 also_epochs: Sequence[int] = (), say=print) -> dict:  # fmt: skip
    """Phase 1 (validation) and phase 2 (test, the selected candidate only); returns every row and the selection."""
    candidates = make_candidates(params)
    check_protocol([d.name for d in data_sets], seeds, [c.label for c in candidates])
    for cand in candidates:  # validated before any training
        base.with_overrides(**cand.setting)
    final = base.n_epochs
    epochs = sorted({final, *(e for e in also_epochs if 0 < e < final)})
    validation, validation_other = [], []
    for data in data_sets:
        for seed in seeds:
            by_label = _validate(data, base, candidates, seed, run_root, epochs)
            for cand in candidates:
                row, others = _rows(data.name, "train_valid", cand.label, seed, by_label[cand.label], final)
                validation.append(row)
                validation_other += others
                say(f"validation  {data.name:<12} {cand.label!s:<40} seed {seed}: Recall@20 {row['recall@20']:.4f}"
                    f"  MRR@20 {row['mrr@20']:.4f}")  # fmt: skip
    labels = [c.label for c in candidates]
    selected, scores = select(validation, labels)
    chosen = candidates[labels.index(selected)]
    say(f"selected on the validation split: {selected} (mean Recall@20 over data sets and seeds: "
        + ", ".join(f"{v}: {s:.4f}" for v, s in scores.items()) + ")")
    test, test_other = [], []
    for data in data_sets:
        for seed in seeds:
            config = base.with_overrides(**chosen.setting, seed=seed)
            run_dir = run_root / data.name / "train_full" / _folder_name(chosen.setting) / f"seed{seed}"
            by_epoch = _train_and_evaluate(config, data.files["train_full"], data.files["test"], run_dir, epochs)
            row, others = _rows(data.name, "test", selected, seed, by_epoch, final)
            test.append(row)
            test_other += others
            say(f"test        {data.name:<12} {selected!s:<40} seed {seed}: Recall@20 {row['recall@20']:.4f}  "
                f"MRR@20 {row['mrr@20']:.4f}")  # fmt: skip
    return {"params": [name for name, _ in params], "param": " ".join(name for name, _ in params),
            "values": labels, "seeds": list(seeds), "epochs": final, "selected": selected,
            "selected_setting": chosen.setting, "validation_scores": {str(v): s for v, s in scores.items()},
            "validation": validation, "validation_other_epochs": validation_other,
            "test": test, "test_other_epochs": test_other}  # fmt: skip


def _mean_sd(values: list) -> str:
    sd = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):.4f}{sd}"


def _table(rows: Sequence[dict], labels: Sequence, split: str) -> None:
    print(f"| data set | candidate | epochs | Recall@20 ({split}) | MRR@20 ({split}) |")
    print("|---|---|---:|---:|---:|")
    for data in dict.fromkeys(r["data"] for r in rows):
        for label in labels:
            for epoch in sorted({r["epoch"] for r in rows}):
                picked = [r for r in rows if r["data"] == data and r["value"] == label and r["epoch"] == epoch]
                if picked:
                    print(f"| {data} | {label} | {epoch} | {_mean_sd([r['recall@20'] for r in picked])} "
                          f"| {_mean_sd([r['mrr@20'] for r in picked])} |")  # fmt: skip


def print_tables(result: dict) -> None:
    """Markdown: validation mean ± sd per (data set, candidate, epoch); the selected candidate's test mean ± sd."""
    _table(result["validation"] + result.get("validation_other_epochs", []), result["values"], "train_valid")
    print()
    selected = result["selected"] if len(result["params"]) > 1 else f"{result['param']}={result['selected']}"
    print(f"Selected {selected} (the mean over the data sets of the mean Recall@20 over "
          f"the seeds at {result['epochs']} epochs); test split, read once, seeds {result['seeds']}:")  # fmt: skip
    print()
    _table(result["test"] + result.get("test_other_epochs", []), [result["selected"]], "test")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--param", action="append", required=True,
                        help="a hyperparameter to choose, e.g. weight_averaging (repeat for a grid)")
    parser.add_argument("--values", nargs="+", action="append", required=True,
                        help="the candidate values of the --param before it")
    parser.add_argument("--data", action="append", required=True, metavar="PRESET|FOLDER",
                        help="a data set (repeat, at least two): a synthetic preset or a folder of four split files")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44], help="seeds (default 42 43 44)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of every run, the one selected on (default 3)")
    parser.add_argument("--also-epochs", type=int, nargs="*", default=[],
                        help="earlier epochs also evaluated and shown (never used to select)")
    parser.add_argument("--config", default="official", help="Config preset (default official)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="another override")
    parser.add_argument("--run-dir", default=None, help="folder of the runs (default runs/select_<params>)")
    parser.add_argument("--json", metavar="OUT", help="also write every row and the selection as JSON")
    args = parser.parse_args(argv)

    from gru4rec.config import Config

    started = time.perf_counter()
    try:  # bad input: one line, exit 2, before any training
        if len(args.param) != len(args.values):
            raise ProtocolError("--param and --values: expected one --values list after each --param")
        overrides = dict(pair.split("=", 1) for pair in args.set)
        base = Config.preset(args.config, n_epochs=args.epochs, **overrides)
        params = [(name, [base.with_overrides(**{name: v}).to_dict()[name] for v in values])
                  for name, values in zip(args.param, args.values)]  # fmt: skip
        check_protocol([Path(spec).name for spec in args.data], args.seeds,
                       [c.label for c in make_candidates(params)])  # fmt: skip
        data_sets = [resolve_data(spec) for spec in args.data]
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    run_root = Path(args.run_dir or f"runs/select_{'_'.join(args.param)}")
    try:
        result = run_protocol(data_sets, base, params, args.seeds, run_root, args.also_epochs)
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
