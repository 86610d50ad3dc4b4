"""``gru4rec prepare rsc15`` and ``gru4rec synth``: the data sub-commands."""

from __future__ import annotations

import argparse
import json
import os
import time

from gru4rec.cli import CliError
from gru4rec.datasets import CEILING_CUTOFFS as CUTOFFS
from gru4rec.datasets import CLICKS_NAME

RSC15_HELP = f"""\
The RSC15 data set (YooChoose clicks) was published by the RecSys Challenge 2015; it cannot be downloaded by this
kit. Get the archive yoochoose-data.7z from the challenge's data page (RecSys Challenge 2015, also mirrored on
Kaggle as "RecSys Challenge 2015"), extract it, and pass the file {CLICKS_NAME} with --clicks, e.g.
  gru4rec prepare rsc15 --clicks data/rsc15/raw/{CLICKS_NAME} --out data/rsc15/prepared
Without the real data, `gru4rec synth --preset small --out DIR` makes a synthetic stand-in in the same format."""


MOVIELENS_HELP = """\
MovieLens is published by GroupLens (grouplens.org/datasets/movielens), whose terms do not allow the kit to ship
it. ML-100K's u.data, ML-1M's ratings.dat, or the ml-100k.inter file inside the RecBole wheel on PyPI
(recbole/dataset_example/ml-100k/ml-100k.inter) can be passed with --ratings, e.g.
  pip download recbole==1.2.1 --no-deps -d /tmp/recbole && unzip -o /tmp/recbole/recbole-1.2.1-py3-none-any.whl \\
      'recbole/dataset_example/ml-100k/*' -d /tmp/recbole
  gru4rec prepare movielens --out data/generated/ml-100k \\
      --ratings /tmp/recbole/recbole/dataset_example/ml-100k/ml-100k.inter"""


def register(subparsers: argparse._SubParsersAction) -> None:
    prepare = subparsers.add_parser(
        "prepare",
        help="preprocess a click log into the GRU4Rec TSV splits",
        description="Preprocess a click log into the GRU4Rec TSV splits.",
    )
    datasets = prepare.add_subparsers(dest="dataset", metavar="DATASET")
    datasets.required = True
    rsc15 = datasets.add_parser(
        "rsc15",
        help="the RSC15 rules of the original GRU4Rec (YooChoose clicks)",
        description="Apply the RSC15 preprocessing of the original GRU4Rec to yoochoose-clicks.dat and write "
        "rsc15_train_full.txt, rsc15_test.txt, rsc15_train_tr.txt, rsc15_train_valid.txt and rsc15_stats.json.",
        epilog=RSC15_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rsc15.add_argument("--clicks", required=True, metavar="PATH", help=f"the {CLICKS_NAME} file")
    rsc15.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    rsc15.set_defaults(func=run_prepare)
    movielens = datasets.add_parser(
        "movielens",
        help="MovieLens ratings cut into sessions (real data; not shipped with the kit)",
        description="Read MovieLens ratings (GroupLens u.data or ratings.dat, or a RecBole .inter file), cut each "
        "user's ratings into sessions at gaps longer than --session-gap, hold out the last --test-fraction of the "
        "sessions by time and write movielens_train_full.txt, movielens_test.txt, movielens_train_tr.txt, "
        "movielens_train_valid.txt and movielens_stats.json.",
        epilog=MOVIELENS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    movielens.add_argument("--ratings", required=True, metavar="PATH", help="the ratings file")
    movielens.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    movielens.add_argument("--session-gap", type=float, default=3600.0, metavar="SECONDS",
                           help="a pause longer than this starts a new session (default: 3600)")  # fmt: skip
    movielens.add_argument("--test-fraction", type=float, default=0.25, metavar="F",
                           help="share of the sessions, the latest, held out for testing (default: 0.25)")  # fmt: skip
    movielens.set_defaults(func=run_prepare_movielens)

    synth = subparsers.add_parser(
        "synth",
        help="generate synthetic yoochoose-format clicks (and prepare them, with the ceiling)",
        description="Generate seeded synthetic clicks in the yoochoose format, run the RSC15 preprocessing on them "
        "and report the ceiling: Recall@K / MRR@K of the Bayes-optimal predictor on the test split.",
    )
    from gru4rec.synthetic import PRESETS

    synth.add_argument("--preset", default="tiny", choices=list(PRESETS), help="size (default: tiny)")
    synth.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    synth.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    synth.add_argument(
        "--no-prepare", action="store_true", help=f"only write {CLICKS_NAME}; skip preprocessing and the ceiling"
    )
    synth.add_argument("--no-ceiling", action="store_true", help="prepare, but skip the ceiling")
    synth.set_defaults(func=run_synth)


def _say(message: str) -> None:
    print(message, flush=True)


def run_prepare(args: argparse.Namespace) -> int:
    from gru4rec import rsc15

    clicks = args.clicks
    if not os.path.exists(clicks):
        raise CliError(f"{clicks}: no such file. " + " ".join(RSC15_HELP.split()))
    if os.path.isdir(clicks):
        candidate = os.path.join(clicks, CLICKS_NAME)
        if not os.path.isfile(candidate):
            raise CliError(f"{clicks} is a folder without {CLICKS_NAME}. " + " ".join(RSC15_HELP.split()))
        clicks = candidate
    stats = rsc15.prepare(clicks, args.out, progress=lambda m: _say(f"[prepare] {m}"))
    _print_summary(stats, args.out)
    return 0


def run_prepare_movielens(args: argparse.Namespace) -> int:
    from gru4rec import movielens

    if os.path.isdir(args.ratings):
        raise CliError(f"{args.ratings}: is a folder, expected the ratings file (u.data, ratings.dat or a RecBole "
                       ".inter file)")  # fmt: skip
    if not os.path.isfile(args.ratings):
        raise CliError(f"{args.ratings}: no such file. " + " ".join(MOVIELENS_HELP.split()))
    if not args.session_gap > 0:
        raise CliError(f"--session-gap: expected a number of seconds > 0, got {args.session_gap}")
    if not 0 < args.test_fraction < 1:
        raise CliError(f"--test-fraction: expected a number in (0, 1), got {args.test_fraction}")
    start = time.perf_counter()
    stats = movielens.prepare(args.ratings, args.out, test_fraction=args.test_fraction,
                              session_gap=args.session_gap, progress=lambda m: _say(f"[prepare] {m}"))  # fmt: skip
    stats["seconds"] = {"total": time.perf_counter() - start}
    _say(f"[prepare] {stats['ratings']:,} ratings of {stats['users']:,} users in {stats['sessions']:,} sessions")
    _print_summary(stats, args.out)
    return 0


def _print_summary(stats: dict, out_dir: str) -> None:
    for entry in stats["files"].values():
        _say(
            f"  {entry['file']:<24} {entry['events']:>10,} events {entry['sessions']:>9,} sessions "
            f"{entry['items']:>7,} items  (mean length {entry['mean_session_length']:.2f})"
        )
    seconds = stats.get("seconds", {}).get("total")
    suffix = f" in {seconds:.1f} s" if seconds is not None else ""
    _say(f"[prepare] wrote {out_dir}{suffix}")


def run_synth(args: argparse.Namespace) -> int:
    from gru4rec.datasets import build_synthetic

    if args.seed < 0:
        raise CliError(f"--seed: must be an integer >= 0; got {args.seed}")
    start = time.perf_counter()
    stats = build_synthetic(
        args.preset, args.seed, args.out, prepare=not args.no_prepare, with_ceiling=not args.no_ceiling, progress=_say
    )
    if stats is None:
        return 0
    _print_summary(stats, args.out)
    for holdout, metrics in stats.get("ceiling", {}).items():
        parts = "  ".join(f"R@{k} {metrics[f'recall@{k}']:.4f} MRR@{k} {metrics[f'mrr@{k}']:.4f}" for k in CUTOFFS)
        _say(f"  ceiling on {holdout}: {parts}")
    _say(f"[synth] done in {time.perf_counter() - start:.1f} s; stats in {os.path.join(args.out, 'rsc15_stats.json')}")
    return 0


def read_stats(out_dir: str) -> dict:
    from gru4rec import rsc15

    with open(os.path.join(out_dir, rsc15.STATS_FILE), encoding="utf-8") as handle:
        return json.load(handle)
