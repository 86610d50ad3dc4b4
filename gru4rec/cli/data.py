"""``gru4rec prepare rsc15`` and ``gru4rec synth``: the data sub-commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from gru4rec.cli import CliError

CLICKS_NAME = "yoochoose-clicks.dat"

RSC15_HELP = f"""\
The RSC15 data set (YooChoose clicks) was published by the RecSys Challenge 2015; it cannot be downloaded by this
kit. Get the archive yoochoose-data.7z from the challenge's data page (RecSys Challenge 2015, also mirrored on
Kaggle as "RecSys Challenge 2015"), extract it, and pass the file {CLICKS_NAME} with --clicks, e.g.
  gru4rec prepare rsc15 --clicks data/rsc15/raw/{CLICKS_NAME} --out data/rsc15/prepared
Without the real data, `gru4rec synth --preset small --out DIR` makes a synthetic stand-in in the same format."""

CUTOFFS = (1, 5, 10, 20)


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


def _print_summary(stats: dict, out_dir: str) -> None:
    for entry in stats["files"].values():
        _say(
            f"  {entry['file']:<24} {entry['events']:>10,} events {entry['sessions']:>9,} sessions "
            f"{entry['items']:>7,} items  (mean length {entry['mean_session_length']:.2f})"
        )
    seconds = stats.get("seconds", {}).get("total")
    suffix = f" in {seconds:.1f} s" if seconds is not None else ""
    _say(f"[prepare] wrote {out_dir}{suffix}")


def _plain(value):
    """JSON-safe copy of an evaluation result (numpy scalars / arrays to Python)."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def compute_ceilings(synth, out_dir: str) -> dict:
    """Ceiling metrics on the test split (train_full items) and on train_valid (train_tr items)."""
    from gru4rec import io as gio
    from gru4rec import rsc15
    from gru4rec.session_data import ItemMap
    from gru4rec.synthetic import ceiling

    result = {}
    for holdout, train in (("test", "train_full"), ("train_valid", "train_tr")):
        train_df = gio.read_sessions(os.path.join(out_dir, rsc15.FILES[train]))
        test_df = gio.read_sessions(os.path.join(out_dir, rsc15.FILES[holdout]))
        item_map = ItemMap.from_ids(train_df["ItemId"].to_numpy())
        metrics = ceiling(synth.process, test_df, item_map, cutoffs=CUTOFFS)
        keep = {k: v for k, v in metrics.items() if k.startswith(("recall@", "mrr@")) or k in ("n_events", "tie_mode")}
        result[holdout] = _plain(keep)
    return result


def run_synth(args: argparse.Namespace) -> int:
    from gru4rec import rsc15, synthetic

    out = args.out
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    _say(f"[synth] generating preset {args.preset!r} with seed {args.seed}")
    synth = synthetic.generate(args.preset, args.seed)
    clicks_path = os.path.join(out, CLICKS_NAME)
    _say(f"[synth] writing {len(synth.clicks):,} clicks to {clicks_path}")
    synth.write(clicks_path)
    _say(f"[synth] clicks written in {time.perf_counter() - start:.1f} s")
    if args.no_prepare:
        return 0
    extra = {"synthetic": {**synth.describe(), "params": synth.params}}
    del synth.clicks  # the prepared files are read back from disk; free the memory for the big presets
    stats = rsc15.prepare(clicks_path, out, progress=lambda m: _say(f"[prepare] {m}"), extra_stats=extra)
    _print_summary(stats, out)
    if args.no_ceiling:
        return 0
    try:
        import gru4rec.evaluate  # noqa: F401
    except ImportError as error:  # pragma: no cover - only before evaluate.py exists
        print(f"[synth] ceiling skipped: gru4rec.evaluate is not available ({error})", file=sys.stderr)
        return 0
    _say("[synth] computing the ceiling (Bayes-optimal predictor) on the test and validation splits")
    ceilings = compute_ceilings(synth, out)
    rsc15.update_stats(out, ceiling=ceilings)
    for holdout, metrics in ceilings.items():
        parts = "  ".join(f"R@{k} {metrics[f'recall@{k}']:.4f} MRR@{k} {metrics[f'mrr@{k}']:.4f}" for k in CUTOFFS)
        _say(f"  ceiling on {holdout}: {parts}")
    _say(f"[synth] done in {time.perf_counter() - start:.1f} s; stats in {os.path.join(out, rsc15.STATS_FILE)}")
    return 0


def read_stats(out_dir: str) -> dict:
    from gru4rec import rsc15

    with open(os.path.join(out_dir, rsc15.STATS_FILE), encoding="utf-8") as handle:
        return json.load(handle)
