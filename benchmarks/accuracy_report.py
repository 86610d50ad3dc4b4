"""Accuracy report: GRU4Rec vs the paper's baselines vs the ceiling on a synthetic preset (not a test).

    python benchmarks/accuracy_report.py --preset small --epochs 3 10        # ~300k training events, 20k items
    python benchmarks/accuracy_report.py --preset tiny --json report.json    # seconds

Trains GRU4Rec with the official RSC15 configuration (``Config.preset("official")``: cross-entropy, shared embedding,
100 units, batch 32, 2048 extra negatives, logq 1, Adagrad + momentum) on the preset's ``train_full``
split, evaluates the checkpoints of the requested epochs on ``test`` (all items, conservative ties), evaluates POP,
S-POP, item-kNN and Markov on the same split, and prints them next to the ceiling: the Recall@K / MRR@K of the
Bayes-optimal predictor of the generating process (recorded with the preset by ``gru4rec synth``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

CUTOFFS = (5, 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small", help="synthetic data preset (default: small)")
    parser.add_argument("--epochs", type=int, nargs="+", default=[3, 10], help="epochs to report (default: 3 10)")
    parser.add_argument("--run-dir", default=None, help="training run folder (default: runs/accuracy_<preset>); "
                        "an existing run is resumed / reused")
    parser.add_argument("--config", default="official", help="Config preset for GRU4Rec (default: official)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a hyperparameter (repeatable), e.g. --set n_sample=512")
    parser.add_argument("--json", metavar="OUT", help="also write the table as JSON")
    args = parser.parse_args()

    from gru4rec.baselines import BASELINES, make_baseline
    from gru4rec.config import Config
    from gru4rec.datasets import ensure_preset
    from gru4rec.evaluate import GRU4RecScorer, evaluate
    from gru4rec.runs import checkpoint_epochs, load_run
    from gru4rec.train import train

    files = ensure_preset(args.preset)
    train_data, test_data = files.load()
    print(f"preset {args.preset}: {train_data.n_events:,} training events, {train_data.n_items:,} items; "
          f"{test_data.n_pairs:,} test predictions", flush=True)

    overrides = dict(pair.split("=", 1) for pair in args.set)
    config = Config.preset(args.config, n_epochs=max(args.epochs), **overrides)
    run_dir = Path(args.run_dir or f"runs/accuracy_{args.preset}")
    done = checkpoint_epochs(run_dir) if (run_dir / "config.json").exists() else []
    rows = []
    train_seconds = None
    if not done or done[-1] < max(args.epochs):
        start = time.perf_counter()
        result = train(config, train_data, run_dir, resume=bool(done), progress=False)
        train_seconds = time.perf_counter() - start
        print(f"trained {result.epochs_done} epochs in {train_seconds:.0f} s "
              f"({result.events_per_s:,.0f} events/s)", flush=True)

    def row(name: str, metrics: dict, seconds: float) -> dict:
        out = {"method": name, **{f"{m}@{k}": metrics[f"{m}@{k}"] for k in CUTOFFS for m in ("recall", "mrr")}}
        out["coverage@20"] = metrics.get("coverage@20")
        out["popularity@20"] = metrics.get("popularity@20")
        out["eval_seconds"] = round(seconds, 1)
        print(f"{name:24s} " + "  ".join(f"{key} {value:.4f}" for key, value in out.items()
                                          if isinstance(value, float) and key != "eval_seconds"), flush=True)
        return out

    for epoch in args.epochs:
        run = load_run(run_dir, epoch=epoch)
        scorer = GRU4RecScorer(run.model, item_map=run.item_map, item_support=run.item_support)
        start = time.perf_counter()
        metrics = evaluate(scorer, test_data, cutoffs=CUTOFFS)
        rows.append(row(f"GRU4Rec ({epoch} epochs)", metrics, time.perf_counter() - start))
    for method in BASELINES:
        start = time.perf_counter()
        metrics = evaluate(make_baseline(method, train_data), test_data, cutoffs=CUTOFFS)
        rows.append(row(method, metrics, time.perf_counter() - start))
    ceiling = files.ceiling("test")
    rows.append({"method": "ceiling (Bayes-optimal)",
                 **{f"{m}@{k}": ceiling.get(f"{m}@{k}") for k in CUTOFFS for m in ("recall", "mrr")}})

    print()
    print(f"| method | Recall@20 | MRR@20 | Recall@5 | MRR@5 | coverage@20 |  (preset {args.preset}, test split, "
          "conservative ties)")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        cells = [r.get(key) for key in ("recall@20", "mrr@20", "recall@5", "mrr@5", "coverage@20")]
        print(f"| {r['method']} | " + " | ".join("" if c is None else f"{c:.4f}" for c in cells) + " |")
    if args.json:
        from gru4rec.io import atomic_write

        with atomic_write(args.json) as handle:
            json.dump({"preset": args.preset, "config": config.to_dict(), "train_seconds": train_seconds,
                       "rows": rows}, handle, indent=2)
            handle.write("\n")


if __name__ == "__main__":
    main()
