"""Accuracy report: the kit (both GRU variants) and the official GRU4Rec codes on the same data, in one run (not a
test), next to the paper's baselines and the ceiling.

    python benchmarks/accuracy_report.py --preset small --epochs 3 10 \\
        --official-tf PATH/TO/GRU4Rec_Tensorflow_Official --official-pytorch PATH/TO/GRU4Rec_PyTorch_Official \\
        --official-python PATH/TO/their/venv/bin/python
    python benchmarks/accuracy_report.py --preset tiny --epochs 1 2 --json report.json      # the kit alone: seconds

The kit trains with ``Config.preset(--config)`` (default ``official``: the RSC15-best parameter file) once per GRU
variant (``--variants``, default both: ``reset_before`` as Theano/TF, ``reset_after`` as PyTorch) for the largest
epoch count on the preset's ``train_full`` split; the checkpoints of the requested epochs are evaluated on ``test``
(all items, conservative ties). Each official code is given the same parameters (``benchmarks/official_runs.py``:
its own ``run.py``, unchanged, in a child process) and trained once per epoch count (its ``run.py`` evaluates only
at the end), evaluated by its own ``batch_eval`` with conservative ties on the same ``test`` file. POP, S-POP,
item-kNN and Markov go through the kit's evaluator, and the ceiling is the Recall@K / MRR@K of the Bayes-optimal
predictor of the generating process (recorded with the preset by ``gru4rec synth``).

Epoch time: the mean seconds of a training epoch (the kit's ``train.jsonl``; the official codes' ``EpochN`` lines).
With ``--jobs N`` up to N official runs go on in the background while the kit trains: the report takes less wall
time but every epoch time is then measured with the runs sharing the CPU (the table says so).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import official_runs  # noqa: E402  (benchmarks/official_runs.py, beside this file)

CUTOFFS = (5, 20)


def _epoch_seconds(run_dir: Path) -> dict:
    """Epoch number (1-based) -> seconds, from the run's ``train.jsonl``."""
    out = {}
    for line in (run_dir / "train.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("kind") == "epoch":
            out[int(record["epochs_done"])] = float(record["seconds"])
    return out


def _row(name: str, epochs, recall20, mrr20, epoch_s=None, ceiling_recall=None, **extra) -> dict:
    share = None if ceiling_recall in (None, 0) or recall20 is None else recall20 / ceiling_recall
    row = {"method": name, "epochs": epochs, "recall@20": recall20, "mrr@20": mrr20, "epoch_seconds": epoch_s,
           "ceiling_share": share, **extra}  # fmt: skip
    cells = [f"{key} {value:.4f}" for key, value in row.items() if isinstance(value, float)]
    print(f"{name:34s} {'' if epochs is None else epochs:>3} " + "  ".join(cells), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small", help="synthetic data preset (default: small)")
    parser.add_argument("--epochs", type=int, nargs="+", default=[3, 10], help="epochs to report (default: 3 10)")
    parser.add_argument("--run-dir", default=None, help="folder of the kit's training runs, one per variant "
                        "(default: runs/accuracy_<preset>); an existing run is resumed / reused")
    parser.add_argument("--config", default="official", help="Config preset for GRU4Rec (default: official)")
    parser.add_argument("--variants", nargs="+", default=["reset_before", "reset_after"],
                        help="the kit's GRU variants to train (default: both)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a hyperparameter (repeatable), e.g. --set n_sample=512")
    parser.add_argument("--official-tf", metavar="PATH", help="clone of hidasib/GRU4Rec_Tensorflow_Official")
    parser.add_argument("--official-pytorch", metavar="PATH", help="clone of hidasib/GRU4Rec_PyTorch_Official")
    parser.add_argument("--official-python", default=sys.executable, metavar="PYTHON",
                        help="interpreter with the official codes' dependencies (default: this one)")
    parser.add_argument("--official-threads", type=int, default=None, metavar="N",
                        help="thread pool size of the official runs' ops (default: their libraries' defaults)")
    parser.add_argument("--jobs", type=int, default=0, metavar="N",
                        help="official runs going on while the kit trains (default 0: one thing at a time)")
    parser.add_argument("--official-epochs", type=int, nargs="+", default=None, metavar="E",
                        help="epoch counts of the official runs (default: those of --epochs)")
    parser.add_argument("--reuse-official-logs", action="store_true",
                        help="take an official run from its log in the run folder when that log is complete, and "
                        "wait for one that a running process is still writing, instead of starting it again")
    parser.add_argument("--no-baselines", action="store_true", help="skip POP, S-POP, item-kNN and Markov")
    parser.add_argument("--json", metavar="OUT", help="also write the table as JSON")
    args = parser.parse_args()
    if args.jobs < 0:
        parser.error("--jobs: expected an integer >= 0")

    from gru4rec.baselines import BASELINES, make_baseline
    from gru4rec.config import GRU_VARIANTS, Config
    from gru4rec.datasets import ensure_preset
    from gru4rec.evaluate import GRU4RecScorer, evaluate
    from gru4rec.runs import checkpoint_epochs, load_run
    from gru4rec.train import train

    for variant in args.variants:
        if variant not in GRU_VARIANTS:
            parser.error(f"--variants: unknown value {variant!r}; allowed: {', '.join(GRU_VARIANTS)}")
    files = ensure_preset(args.preset)
    train_data, test_data = files.load()
    ceiling = files.ceiling("test")
    ceiling_recall = ceiling.get("recall@20")
    print(f"preset {args.preset}: {train_data.n_events:,} training events, {train_data.n_items:,} items; "
          f"{test_data.n_pairs:,} test predictions; load average {os.getloadavg()[0]:.1f}", flush=True)
    overrides = dict(pair.split("=", 1) for pair in args.set)
    base = Config.preset(args.config, n_epochs=max(args.epochs), **overrides)
    run_root = Path(args.run_dir or f"runs/accuracy_{args.preset}")
    started = time.perf_counter()

    # The official runs: a queue of child processes, up to --jobs of them beside the kit's training.
    queue = []
    for code, path in (("tf", args.official_tf), ("pytorch", args.official_pytorch)):
        if path:
            for epochs in args.official_epochs or args.epochs:
                params = official_runs.params_from_config(base, epochs)
                official_runs.command(code, path, args.official_python, files.train_full, files.test, params)
                queue.append((code, path, epochs, params))
    queue.sort(key=lambda run: -run[2])  # the longest runs first
    running: list = []
    results: dict = {}
    failures: dict = {}

    watched: list = []  # (code, epochs, log) of runs that another process is still writing

    def launch(limit: int) -> None:
        while queue and len(running) < limit:
            code, path, epochs, params = queue.pop(0)
            log = run_root / f"official_{code}_{epochs}ep.log"
            source = f"{official_runs.CODE_NAMES[code]}, {epochs} epochs"
            if args.reuse_official_logs:
                done = official_runs.reusable(log, source)
                if done is not None:
                    print(f"reusing the finished run in {log}", flush=True)
                    results[(code, epochs)] = done
                    continue
                writers = official_runs.log_writers(log)
                if writers:
                    print(f"waiting for process {writers[0]}, which is writing {log}", flush=True)
                    watched.append((code, epochs, log))
                    continue
            print(f"starting the {official_runs.CODE_NAMES[code]}, {epochs} epochs (log {log})", flush=True)
            proc = official_runs.start(code, path, args.official_python, files.train_full, files.test, params, log,
                                       threads=args.official_threads)
            running.append((code, epochs, proc, log))

    def poll(limit: int) -> None:
        """Parse the runs that have ended, then start more (up to ``limit`` at a time)."""
        for item in list(watched):
            code, epochs, log = item
            if not official_runs.log_writers(log):
                watched.remove(item)
                source = f"{official_runs.CODE_NAMES[code]}, {epochs} epochs"
                done = official_runs.reusable(log, source)
                if done is None:
                    print(f"{source}: the process writing {log} ended without a result", flush=True)
                    failures[(code, epochs)] = "ended without a result"
                else:
                    results[(code, epochs)] = done
        for item in [item for item in running if item[2].poll() is not None]:
            running.remove(item)
            code, epochs, proc, log = item
            try:
                results[(code, epochs)] = official_runs.finish(proc, log, f"{official_runs.CODE_NAMES[code]}, "
                                                               f"{epochs} epochs")  # fmt: skip
            except (RuntimeError, ValueError) as error:  # reported in the table; the other runs go on
                print(error, flush=True)
                failures[(code, epochs)] = str(error).splitlines()[0]
        launch(limit)

    launch(args.jobs)
    rows = []
    for variant in args.variants:
        config = base.with_overrides(gru_variant=variant)
        run_dir = run_root / variant
        done = checkpoint_epochs(run_dir) if (run_dir / "config.json").exists() else []
        if not done or done[-1] < max(args.epochs):
            start = time.perf_counter()
            result = train(config, train_data, run_dir, resume=bool(done), progress=False)
            print(f"kit {variant}: trained {result.epochs_done} epochs in {time.perf_counter() - start:.0f} s "
                  f"({result.events_per_s:,.0f} events/s)", flush=True)
        seconds = _epoch_seconds(run_dir)
        for epochs in args.epochs:
            run = load_run(run_dir, epoch=epochs)
            scorer = GRU4RecScorer(run.model, item_map=run.item_map, item_support=run.item_support)
            metrics = evaluate(scorer, test_data, cutoffs=CUTOFFS)
            epoch_s = sum(seconds[e] for e in range(1, epochs + 1)) / epochs if all(
                e in seconds for e in range(1, epochs + 1)) else None  # fmt: skip
            rows.append(_row(f"kit, {variant}", epochs, metrics["recall@20"], metrics["mrr@20"], epoch_s,
                             ceiling_recall, variant=variant, **{"recall@5": metrics["recall@5"],
                                                                 "mrr@5": metrics["mrr@5"]}))  # fmt: skip
        poll(args.jobs)
    while queue or running or watched:  # the kit is done: the rest of the official runs, at least one at a time
        poll(max(args.jobs, 1))
        if running or watched:
            time.sleep(2.0)
    for code in official_runs.CODES:
        for epochs in args.official_epochs or args.epochs:
            if (code, epochs) in results:
                res = results[(code, epochs)]
                rows.append(_row(official_runs.CODE_NAMES[code], epochs, res.recall.get(20), res.mrr.get(20),
                                 res.mean_epoch_seconds, ceiling_recall, last_epoch_loss=res.epoch_losses[-1]))
            elif (code, epochs) in failures:
                rows.append(_row(official_runs.CODE_NAMES[code] + " (failed, see its log)", epochs, None, None,
                                 error=failures[(code, epochs)]))
    if not args.no_baselines:
        for method in BASELINES:
            metrics = evaluate(make_baseline(method, train_data), test_data, cutoffs=CUTOFFS)
            rows.append(_row(method, None, metrics["recall@20"], metrics["mrr@20"], None, ceiling_recall))
    rows.append(_row("ceiling (Bayes-optimal)", None, ceiling.get("recall@20"), ceiling.get("mrr@20"), None,
                     ceiling_recall))
    wall = time.perf_counter() - started

    print()
    shared = f"; {args.jobs} official run(s) beside the kit's training, sharing the CPU" if args.jobs else ""
    if args.official_threads:
        shared += f"; official runs with {args.official_threads} thread(s) per op"
    print(f"preset {args.preset}, test split, conservative ties, config {args.config}"
          f"{' ' + str(overrides) if overrides else ''}; {wall / 60:.0f} min in all{shared}; "
          f"load average at the end {os.getloadavg()[0]:.1f}")
    print()
    print("| method | epochs | Recall@20 | MRR@20 | share of the ceiling's Recall@20 | epoch time (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        def fmt(value, spec):
            return "" if value is None else format(value, spec)

        print(f"| {r['method']} | {fmt(r['epochs'], 'd')} | {fmt(r['recall@20'], '.4f')} | {fmt(r['mrr@20'], '.4f')}"
              f" | {fmt(r['ceiling_share'], '.3f')} | {fmt(r['epoch_seconds'], '.1f')} |")
    if args.json:
        from gru4rec.io import atomic_write

        with atomic_write(args.json) as handle:
            json.dump({"preset": args.preset, "config": base.to_dict(), "jobs": args.jobs, "wall_seconds": wall,
                       "rows": rows}, handle, indent=2)
            handle.write("\n")


if __name__ == "__main__":
    main()
