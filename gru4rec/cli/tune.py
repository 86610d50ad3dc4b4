"""``gru4rec tune``: hyperparameter search with Optuna on the official parameter-space format (``gru4rec.tune``)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from gru4rec.cli import CliError


def register(subparsers: argparse._SubParsersAction) -> None:
    tune = subparsers.add_parser(
        "tune",
        help="search hyperparameters with Optuna (the official parameter-space format), resumable",
        description="Search hyperparameters with Optuna: every trial trains on --train in this process and is scored "
        "on --valid after every epoch (hopeless trials are pruned after an epoch); seeded TPE sampler; the study is "
        "kept in DIR/study.db, so running the same command again resumes it until it has --trials finished trials. "
        "Writes DIR/best_params.json (a JSON object of hyperparameters that `gru4rec train --params` reads) and "
        "DIR/best_trial.json; with --test, trains the best configuration again and evaluates it on the test split "
        "(DIR/best_run/metrics.json).",
    )
    tune.add_argument("--train", required=True, metavar="PATH", help="training sessions of the trials (GRU4Rec TSV)")
    tune.add_argument("--valid", required=True, metavar="PATH", help="validation sessions the trials are scored on")
    tune.add_argument("--space", required=True, metavar="SPACE",
                      help="the parameter space: a file with one JSON object a line (name, dtype int/float/"
                      "categorical, values, step, log: the official paramspaces/ format), or xe / bpr-max for the "
                      "official standard spaces shipped in gru4rec/resources/paramspaces/")  # fmt: skip
    tune.add_argument("--trials", type=int, default=30, metavar="N", help="finished trials the study should have (30)")
    tune.add_argument("--metric", default="mrr@20", help="what to maximise on --valid: mrr@20 (default) or recall@20")
    tune.add_argument("--out", required=True, metavar="DIR", help="the study folder (created; reused to resume)")
    tune.add_argument("--test", metavar="PATH", help="test sessions: evaluate the best configuration on them")
    tune.add_argument("--final-train", "--final_train", dest="final_train", metavar="PATH",
                      help="with --test: train the best configuration on this file (default: --train)")  # fmt: skip
    fixed = tune.add_argument_group("fixed settings (not searched)")
    fixed.add_argument("--preset", default="official", choices=("official", "seed"),
                       help="starting values (default: official)")  # fmt: skip
    fixed.add_argument("--params", metavar="FILE", help="a JSON object of hyperparameters on top of the preset")
    fixed.add_argument("--fixed", default="", metavar="NAME=VALUE,...",
                       help="hyperparameters on top of --params, as the official paropt.py's -fp string, "
                       "e.g. loss=bpr-max,n_epochs=3")  # fmt: skip
    fixed.add_argument("--seed", type=int, default=42, help="seed of the TPE sampler (default 42)")
    fixed.add_argument("--startup-trials", "--startup_trials", dest="startup_trials", type=int, default=5,
                       metavar="N", help="random trials before TPE, and trials before pruning starts (5)")  # fmt: skip
    fixed.add_argument("--no-progress", action="store_true", help="no progress bar")
    tune.set_defaults(func=run_tune)


def base_config(args: argparse.Namespace):
    """The fixed settings: ``--preset``, then ``--params``, then ``--fixed``."""
    from gru4rec.config import Config
    from gru4rec.tune import config_with_params, parse_fixed, read_params

    config = Config.preset(args.preset)
    if args.params:
        config = config_with_params(config, read_params(args.params), source=args.params)
    if args.fixed:
        config = config_with_params(config, parse_fixed(args.fixed), source="--fixed")
    return config


def run_tune(args: argparse.Namespace) -> int:
    from gru4rec.cli.train import _evaluate_test, _read, require_pairs
    from gru4rec.train import single_threaded_ops_on_cpu, train
    from gru4rec.tune import check_metric, read_space, space_path, tune

    if args.trials < 1:
        raise CliError(f"--trials must be >= 1; got {args.trials}")
    check_metric(args.metric)
    space = read_space(space_path(args.space))
    base = base_config(args)
    if args.test and not os.path.isfile(args.test):
        raise CliError(f"{args.test}: no such test file")
    single_threaded_ops_on_cpu(base)  # before TensorFlow's runtime starts (see gru4rec.train)
    train_data = _read(args.train, "training")
    valid = _read(args.valid, "validation", item_map=train_data.item_map)
    require_pairs(valid, args.valid, "validation")
    final = _read(args.final_train, "training") if args.test and args.final_train else train_data
    if args.test:  # read and checked before the search, not after it
        require_pairs(_read(args.test, "test", item_map=final.item_map), args.test, "test")
    print(f"searching {', '.join(p.name for p in space)} on {train_data.n_events} training events; "
          f"{args.metric} on {valid.n_pairs} validation predictions")  # fmt: skip
    result = tune(train_data, valid, space, args.out, base=base, n_trials=args.trials, metric=args.metric,
                  seed=args.seed, n_startup_trials=args.startup_trials, progress=not args.no_progress)  # fmt: skip
    print(f"{result.n_finished} trials finished ({result.n_run_now} now, {result.n_pruned} pruned in all); best "
          f"{result.metric} {result.best_value:.4f} (trial {result.best_trial}): {json.dumps(result.best_params)}")
    out = Path(args.out)
    print(f"best parameters: {out / 'best_params.json'} (gru4rec train --params {out / 'best_params.json'} ...)")
    if args.test:
        run_dir = out / "best_run"
        shutil.rmtree(run_dir, ignore_errors=True)
        trained = train(result.best_config, final, run_dir, progress=not args.no_progress)
        print(f"the best configuration, trained on {args.final_train or args.train}, on {args.test}:")
        _evaluate_test(run_dir, trained.model, final, args.test)
    return 0
