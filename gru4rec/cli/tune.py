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
    tune.add_argument("--method", default="gru4rec", metavar="NAME",
                      help="what to tune: gru4rec (default) or a baseline (sr, sknn, vsknn, stan, ...: each trial "
                      "fits it with the trial's parameters and scores it on --valid; --fixed holds its fixed "
                      "parameters; --preset, --params, --final-train are GRU4Rec's)")  # fmt: skip
    tune.add_argument("--space", metavar="SPACE",
                      help="the parameter space: a file with one JSON object a line (name, dtype int/float/"
                      "categorical, values, step, log: the official paramspaces/ format), or xe / bpr-max for the "
                      "official standard spaces shipped in gru4rec/resources/paramspaces/; required for gru4rec; a "
                      "baseline's default is session-rec's space for it, shipped there too")  # fmt: skip
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


def check_fixed_not_searched(fixed_text, space) -> None:
    """A ``--fixed`` setting that the space also searches would be overridden by every trial: refuse it (the seed's
    ``size``/``rnn_size``/``layer`` count as ``layers``)."""
    if not fixed_text:
        return
    from gru4rec.config import SEED_ALIASES
    from gru4rec.tune import parse_fixed

    searched = {p.name for p in space}
    for name in parse_fixed(fixed_text):
        target = "layers" if name in ("size", "rnn_size", "layer") else name
        if name in SEED_ALIASES and target != "layers":
            target = SEED_ALIASES[name].split()[0]
        if target in searched:
            raise CliError(f"--fixed {name}: the space also searches {target!r}, so every trial would override it; "
                           f"drop it from --fixed or from the space")


def run_tune(args: argparse.Namespace) -> int:
    from gru4rec.cli.train import _evaluate_test, _read, require_pairs
    from gru4rec.train import single_threaded_ops_on_cpu, train
    from gru4rec.tune import check_metric, read_space, space_path, tune

    if args.trials < 1:
        raise CliError(f"--trials must be >= 1; got {args.trials}")
    check_metric(args.metric)
    if args.method != "gru4rec":
        return run_tune_baseline(args)
    if args.space is None:
        raise CliError("--space: required to tune gru4rec (xe, bpr-max or a space file)")
    space = read_space(space_path(args.space))
    check_fixed_not_searched(args.fixed, space)
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


def run_tune_baseline(args: argparse.Namespace) -> int:
    """``gru4rec tune --method BASELINE``: its parameters searched on --valid (``gru4rec.tune_baselines``)."""
    from gru4rec.baselines import BASELINES

    if args.method not in BASELINES:
        raise CliError(f"--method {args.method!r}: choose gru4rec or a baseline: {', '.join(BASELINES)}")
    for flag, given in (("--params", args.params), ("--final-train", args.final_train)):
        if given:
            raise CliError(f"{flag}: only for --method gru4rec; a baseline's fixed parameters go in --fixed")
    from gru4rec.cli.evaluate import _check_baseline_params, _parse_params
    from gru4rec.cli.train import _read
    from gru4rec.tune_baselines import read_baseline_space, tune_baseline

    fixed = _parse_params([part for part in args.fixed.split(",") if part.strip()])
    _check_baseline_params(args.method, fixed)
    space = read_baseline_space(args.method, space_path_or_none(args.space))
    if args.test and not os.path.isfile(args.test):
        raise CliError(f"{args.test}: no such test file")
    train_data = _read(args.train, "training")
    valid = _read(args.valid, "validation", item_map=train_data.item_map)
    print(f"searching {', '.join(p.name for p in space)} of {args.method} on {train_data.n_events} training events; "
          f"{args.metric} on {valid.n_pairs} validation predictions")  # fmt: skip
    result = tune_baseline(args.method, train_data, valid, space, args.out, fixed=fixed, n_trials=args.trials,
                           metric=args.metric, seed=args.seed, n_startup_trials=args.startup_trials,
                           progress=not args.no_progress)  # fmt: skip
    print(f"{result.n_finished} trials finished ({result.n_run_now} now); best {result.metric} "
          f"{result.best_value:.4f} (trial {result.best_trial}): {json.dumps(result.best_params)}")
    out = Path(args.out)
    best = result.best_params.items()
    flags = " ".join(f"--param {k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in best)
    print(f"best parameters: {out / 'best_params.json'} (gru4rec baseline --method {args.method} {flags} ...)")
    if args.test:
        from gru4rec.baselines import make_baseline
        from gru4rec.evaluate import evaluate, format_table

        test = _read(args.test, "test", item_map=train_data.item_map)
        scored = evaluate(make_baseline(args.method, train_data, **result.best_params), test)
        print(f"the best parameters, fitted on {args.train}, on {args.test}:")
        print(format_table(scored))
    return 0


def space_path_or_none(space):
    from gru4rec.tune import space_path

    return None if space is None else space_path(space)
