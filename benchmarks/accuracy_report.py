"""Accuracy report: the kit (both GRU variants) and the official GRU4Rec codes on the same data, in one run (not a
test), next to the baselines and the ceiling.

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
item-kNN, Markov and session-rec's SR, SKNN, V-SKNN and STAN (default parameters, ``docs/baselines.md``) go through
the kit's evaluator, and the ceiling is the Recall@K / MRR@K of the Bayes-optimal
predictor of the generating process (recorded with the preset by ``gru4rec synth``).

Epoch time: the mean seconds of a training epoch (the kit's ``train.jsonl``; the official codes' ``EpochN`` lines).

``--train FILE --test FILE`` runs on any pair of GRU4Rec TSV files instead of a preset (no ceiling then), e.g. the
MovieLens splits of ``gru4rec prepare movielens``.

``--session-orders time shuffled`` trains each variant twice: with the sessions in time order (the official codes'
order, ``shuffle=false``) and in a new random order every epoch (``shuffle=true``).

``--repeats R`` trains every configuration R times (the kit with seeds ``seed``, ``seed + 1``, ...; the official
codes, which fix their initial weights but not their sampling and dropout, simply again) and adds a summary: the
mean and standard deviation over the runs, beside the binomial standard error of one Recall@20 figure on this test
set. Differences smaller than these are noise.

Reuse: a kit run folder that already exists is resumed or reused only when its ``config.json`` holds the requested
configuration (all but ``n_epochs`` and ``device``) and the fingerprint of the requested training data; with
``--reuse-official-logs`` an official log is reused only when the record beside it (``X.params.json``, written when
the run started) names the same code files, parameters, tie mode and training and test files' sha256. Anything
else is refused before any training, with a one-line error (exit 2): the report never shows a stale run under the
current label.

With ``--jobs N`` up to N official runs go on in the background while the kit trains: the report takes less wall
time but every epoch time is then measured with the runs sharing the CPU (the table says so).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import official_runs  # noqa: E402  (benchmarks/official_runs.py, beside this file)

CUTOFFS = (5, 20)


def summarize(rows: list) -> list:
    """One summary per (method, epochs) over its repeated runs: the mean and sample standard deviation of Recall@20
    and MRR@20 (sd None for a single run), the number of runs, the mean epoch time. Failed runs (no Recall@20) are
    left out; rows without epochs (baselines, the ceiling) are passed on as they are."""
    groups: dict = {}
    for row in rows:
        if row.get("recall@20") is None:
            continue
        groups.setdefault((row["method"], row["epochs"]), []).append(row)
    out = []
    for (method, epochs), group in groups.items():
        summary = {"method": method, "epochs": epochs, "runs": len(group)}
        for key in ("recall@20", "mrr@20", "epoch_seconds", "ceiling_share"):
            values = [r[key] for r in group if r.get(key) is not None]
            summary[key] = statistics.fmean(values) if values else None
            summary[key + "_sd"] = statistics.stdev(values) if len(values) > 1 else None
        out.append(summary)
    return out


def binomial_se(recall: float, n_predictions: int) -> float:
    """Standard error of one Recall@K figure from the test set's size alone: sqrt(p (1 - p) / n)."""
    return math.sqrt(recall * (1.0 - recall) / n_predictions)


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


def _fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _mean_sd(mean, sd) -> str:
    return _fmt(mean, ".4f") + ("" if sd is None else f" ± {sd:.4f}")


def print_tables(rows: list, summary: list, repeats: int, n_predictions: int) -> None:
    """The runs' table (markdown) and, for repeated runs, the summary table with the test set's standard error."""
    print("| method | epochs | run | Recall@20 | MRR@20 | share of the ceiling's Recall@20 | epoch time (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['method']} | {_fmt(r['epochs'], 'd')} | {_fmt(r.get('repeat'), 'd')} "
              f"| {_fmt(r['recall@20'], '.4f')} | {_fmt(r['mrr@20'], '.4f')} | {_fmt(r['ceiling_share'], '.3f')} "
              f"| {_fmt(r['epoch_seconds'], '.1f')} |")  # fmt: skip
    if repeats < 2:
        return
    print()
    print(f"Mean ± standard deviation over {repeats} runs of each configuration:")
    print()
    print("| method | epochs | runs | Recall@20 | MRR@20 | share of the ceiling's Recall@20 | epoch time (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for s in summary:
        if s["epochs"] is None:
            continue
        print(f"| {s['method']} | {s['epochs']} | {s['runs']} | {_mean_sd(s['recall@20'], s['recall@20_sd'])} "
              f"| {_mean_sd(s['mrr@20'], s['mrr@20_sd'])} | {_fmt(s['ceiling_share'], '.3f')} "
              f"| {_fmt(s['epoch_seconds'], '.1f')} |")  # fmt: skip
    recalls = [s["recall@20"] for s in summary if s["epochs"] is not None]
    if recalls:
        se = binomial_se(statistics.fmean(recalls), n_predictions)
        print()
        print(f"The test set's own noise: one Recall@20 figure near {statistics.fmean(recalls):.3f} on "
              f"{n_predictions:,} predictions has a binomial standard error of {se:.4f}.")


def official_log_name(code: str, epochs: int, repeat: int) -> str:
    """The log file of one official run in the report's run folder (``repeat`` counted from 0)."""
    return f"official_{code}_{epochs}ep.log" if repeat == 0 else f"official_{code}_{epochs}ep_run{repeat + 1}.log"


def _kit_configs(base, variants, session_orders) -> list:
    """``(label, run folder name, config)`` of each kit configuration: one per GRU variant and session order."""
    out = []
    for variant in variants:
        for order in session_orders:
            config = base.with_overrides(gru_variant=variant)
            if order != "preset":
                config = config.with_overrides(shuffle=order == "shuffled", session_order="time")
            shuffled = "shuffled" if config.shuffle else "time order"
            label = f"kit, {variant}" + ("" if session_orders == ["preset"] else f", {shuffled}")
            folder = variant + ("" if order == "preset" else f"_{order}")
            out.append((label, folder, config))
    return out


class StaleRunError(ValueError):
    """A kit run folder that the report would reuse holds another run than the requested one."""


def check_kit_run(run_dir: Path, config, train_data) -> None:
    """Raise :class:`StaleRunError` (one line) when ``run_dir`` holds a kit run whose configuration (all but
    ``n_epochs`` and ``device``) or training data fingerprint differ from ``config`` / ``train_data``; a folder
    without ``config.json`` passes (nothing to reuse)."""
    from gru4rec.run_folder import (
        CONFIG_IGNORED_ON_RESUME,
        RunFolder,
        RunFolderError,
        data_fingerprint,
        fingerprint_differences,
    )

    folder = RunFolder(run_dir)
    if not folder.holds_run():
        return
    try:
        meta = folder.read_meta()
        saved = folder.read_config(meta).to_dict()
    except RunFolderError as error:
        raise StaleRunError(f"cannot reuse {run_dir}: {error}") from None
    now = config.to_dict()
    diffs = [f"{k}: {saved[k]!r} (run) != {now[k]!r} (now)" for k in now
             if k not in CONFIG_IGNORED_ON_RESUME and saved.get(k) != now[k]]  # fmt: skip
    if "data" not in meta:
        diffs.append("config.json holds no training data fingerprint")
    else:
        diffs += fingerprint_differences(meta["data"], data_fingerprint(train_data))
    if diffs:
        raise StaleRunError(f"{run_dir}: cannot reuse it, it is another run than the requested one: "
                            + "; ".join(diffs) + "; remove the folder or give another --run-dir")  # fmt: skip


def _read_baseline_params(parser, pairs, baselines, read_params) -> dict:
    """``--baseline-params METHOD=FILE`` pairs as ``{method: params}``, each checked by building the baseline (before
    any data is read); a bad method, file or value is a one-line error (exit 2)."""
    tuned: dict = {}
    for pair in pairs:
        method, sep, name = pair.partition("=")
        if not sep or not name:
            parser.error(f"--baseline-params {pair!r}: expected METHOD=FILE")
        if method not in baselines:
            parser.error(f"--baseline-params {pair!r}: unknown method {method!r}; choose from {', '.join(baselines)}")
        try:
            params = read_params(name)
            baselines[method](**params)
        except (TypeError, ValueError) as error:
            parser.error(f"--baseline-params {method}: {error}")
        tuned[method] = params
    return tuned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small", help="synthetic data preset (default: small)")
    parser.add_argument("--train", metavar="FILE", help="a GRU4Rec TSV training file instead of a preset (with "
                        "--test), e.g. movielens_train_full.txt of `gru4rec prepare movielens`; no ceiling is known")
    parser.add_argument("--test", metavar="FILE", help="the test file that goes with --train")
    parser.add_argument("--epochs", type=int, nargs="+", default=[3, 10], help="epochs to report (default: 3 10)")
    parser.add_argument("--run-dir", default=None, help="folder of the kit's training runs, one per variant "
                        "(default: runs/accuracy_<preset>); an existing run is resumed / reused")
    parser.add_argument("--config", default="official", help="Config preset for GRU4Rec (default: official)")
    parser.add_argument("--variants", nargs="+", default=["reset_before", "reset_after"],
                        help="the kit's GRU variants to train (default: both)")
    parser.add_argument("--session-orders", nargs="+", choices=["preset", "time", "shuffled"], default=["preset"],
                        help="the kit's session orders to train: the config's own (preset, default), time (the "
                        "official codes' order: shuffle=false) and/or shuffled (a new random order every epoch)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a hyperparameter (repeatable), e.g. --set n_sample=512")
    parser.add_argument("--repeats", type=int, default=1, metavar="R",
                        help="train every configuration R times and add the mean ± sd over the runs (default 1)")
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
    parser.add_argument("--params", metavar="FILE", help="GRU4Rec's tuned configuration: a best_params.json of "
                        "`gru4rec tune` (Config overrides on --config, before --set)")
    parser.add_argument("--baseline-params", action="append", default=[], metavar="METHOD=FILE",
                        help="a baseline's tuned parameters: a best_params.json of `gru4rec tune --method METHOD` "
                        "(repeatable; the row is labelled 'METHOD (tuned)')")
    parser.add_argument("--no-baselines", action="store_true",
                        help="skip the baselines (POP, S-POP, item-kNN, Markov, SR, SKNN, V-SKNN, STAN)")
    parser.add_argument("--json", metavar="OUT", help="also write the table as JSON")
    args = parser.parse_args()
    if args.jobs < 0:
        parser.error("--jobs: expected an integer >= 0")
    if args.repeats < 1:
        parser.error("--repeats: expected an integer >= 1")

    from gru4rec.baselines import BASELINES, make_baseline
    from gru4rec.config import GRU_VARIANTS, Config
    from gru4rec.datasets import ensure_preset
    from gru4rec.evaluate import GRU4RecScorer, evaluate
    from gru4rec.runs import checkpoint_epochs, load_run
    from gru4rec.train import train
    from gru4rec.tune import read_params

    tuned_config: dict = {}
    if args.params:
        try:
            tuned_config = read_params(args.params)
        except ValueError as error:
            parser.error(f"--params: {error}")
    tuned_baselines = _read_baseline_params(parser, args.baseline_params, BASELINES, read_params)
    for variant in args.variants:
        if variant not in GRU_VARIANTS:
            parser.error(f"--variants: unknown value {variant!r}; allowed: {', '.join(GRU_VARIANTS)}")
    if bool(args.train) != bool(args.test):
        parser.error("--train and --test go together")
    if args.train:
        from gru4rec.io import read_sessions
        from gru4rec.session_data import SessionData

        train_path, test_path = Path(args.train), Path(args.test)
        train_data = SessionData.from_frame(read_sessions(train_path))
        test_data = SessionData.from_frame(read_sessions(test_path), train_data.item_map)
        ceiling: dict = {}
        data_name = train_path.name
    else:
        files = ensure_preset(args.preset)
        train_path, test_path = files.train_full, files.test
        train_data, test_data = files.load()
        ceiling = files.ceiling("test")
        data_name = f"preset {args.preset}"
    ceiling_recall = ceiling.get("recall@20")
    print(f"{data_name}: {train_data.n_events:,} training events, {train_data.n_items:,} items; "
          f"{test_data.n_pairs:,} test predictions; load average {os.getloadavg()[0]:.1f}", flush=True)
    overrides = dict(pair.split("=", 1) for pair in args.set)
    try:
        base = Config.preset(args.config, n_epochs=max(args.epochs), **{**tuned_config, **overrides})
    except (TypeError, ValueError) as error:
        parser.error(f"--config/--params/--set: {error}")
    run_root = Path(args.run_dir or f"runs/accuracy_{train_path.stem if args.train else args.preset}")
    started = time.perf_counter()

    # The official runs: a queue of child processes, up to --jobs of them beside the kit's training.
    queue = []
    for code, path in (("tf", args.official_tf), ("pytorch", args.official_pytorch)):
        if path:
            for epochs in args.official_epochs or args.epochs:
                params = official_runs.params_from_config(base, epochs)
                official_runs.command(code, path, args.official_python, train_path, test_path, params)
                for repeat in range(args.repeats):
                    queue.append((code, path, epochs, repeat, params))
    queue.sort(key=lambda run: (-run[2], run[3]))  # the longest runs first
    kit_runs = []  # (label, run folder, config, repeat) of every kit run
    for label, folder, kit_config in _kit_configs(base, args.variants, args.session_orders):
        for repeat in range(args.repeats):
            config = kit_config.with_overrides(seed=kit_config.seed + repeat)
            run_dir = run_root / (folder if repeat == 0 else f"{folder}_seed{config.seed}")
            kit_runs.append((label, run_dir, config, repeat))
    try:  # nothing stale is reused: checked before anything is trained
        for _, run_dir, config, _ in kit_runs:
            check_kit_run(run_dir, config, train_data)
        if args.reuse_official_logs:
            for code, path, epochs, repeat, params in queue:
                log = run_root / official_log_name(code, epochs, repeat)
                if log.exists():
                    official_runs.vouch(log, official_runs.run_record(code, path, train_path, test_path, params))
    except (StaleRunError, official_runs.StaleLogError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    running: list = []
    results: dict = {}
    failures: dict = {}

    watched: list = []  # ((code, epochs, repeat), log) of runs that another process is still writing

    def official_log(code: str, epochs: int, repeat: int) -> Path:
        return run_root / official_log_name(code, epochs, repeat)

    def official_source(code: str, epochs: int, repeat: int) -> str:
        return (f"{official_runs.CODE_NAMES[code]}, {epochs} epochs"
                f"{'' if args.repeats == 1 else f', run {repeat + 1}'}")  # fmt: skip

    def launch(limit: int) -> None:
        while queue and len(running) < limit:
            code, path, epochs, repeat, params = queue.pop(0)
            log = official_log(code, epochs, repeat)
            source = official_source(code, epochs, repeat)
            key = (code, epochs, repeat)
            if args.reuse_official_logs:
                done = official_runs.reusable(log, source)
                if done is not None:
                    print(f"reusing the finished run in {log}", flush=True)
                    results[key] = done
                    continue
                writers = official_runs.log_writers(log)
                if writers:
                    print(f"waiting for process {writers[0]}, which is writing {log}", flush=True)
                    watched.append((key, log))
                    continue
            print(f"starting the {source} (log {log})", flush=True)
            proc = official_runs.start(code, path, args.official_python, train_path, test_path, params, log,
                                       threads=args.official_threads)
            running.append((key, proc, log))

    def poll(limit: int) -> None:
        """Parse the runs that have ended, then start more (up to ``limit`` at a time)."""
        for item in list(watched):
            key, log = item
            if not official_runs.log_writers(log):
                watched.remove(item)
                source = official_source(*key)
                done = official_runs.reusable(log, source)
                if done is None:
                    print(f"{source}: the process writing {log} ended without a result", flush=True)
                    failures[key] = "ended without a result"
                else:
                    results[key] = done
        for item in [item for item in running if item[1].poll() is not None]:
            running.remove(item)
            key, proc, log = item
            try:
                results[key] = official_runs.finish(proc, log, official_source(*key))
            except (RuntimeError, ValueError) as error:  # reported in the table; the other runs go on
                print(error, flush=True)
                failures[key] = str(error).splitlines()[0]
        launch(limit)

    launch(args.jobs)
    rows = []
    for label, run_dir, config, repeat in kit_runs:
        variant = config.gru_variant
        done = checkpoint_epochs(run_dir) if (run_dir / "config.json").exists() else []
        if not done or done[-1] < max(args.epochs):
            start = time.perf_counter()
            result = train(config, train_data, run_dir, resume=bool(done), progress=False)
            print(f"{label}, seed {config.seed}: trained {result.epochs_done} epochs in "
                  f"{time.perf_counter() - start:.0f} s ({result.events_per_s:,.0f} events/s)", flush=True)
        seconds = _epoch_seconds(run_dir)
        for epochs in args.epochs:
            run = load_run(run_dir, epoch=epochs)
            scorer = GRU4RecScorer(run.model, item_map=run.item_map, item_support=run.item_support)
            metrics = evaluate(scorer, test_data, cutoffs=CUTOFFS)
            epoch_s = sum(seconds[e] for e in range(1, epochs + 1)) / epochs if all(
                e in seconds for e in range(1, epochs + 1)) else None  # fmt: skip
            rows.append(_row(label, epochs, metrics["recall@20"], metrics["mrr@20"], epoch_s,
                             ceiling_recall, variant=variant, shuffle=config.shuffle, repeat=repeat + 1,
                             seed=config.seed,
                             **{"recall@5": metrics["recall@5"], "mrr@5": metrics["mrr@5"]}))  # fmt: skip
        poll(args.jobs)
    while queue or running or watched:  # the kit is done: the rest of the official runs, at least one at a time
        poll(max(args.jobs, 1))
        if running or watched:
            time.sleep(2.0)
    for code in official_runs.CODES:
        for epochs in args.official_epochs or args.epochs:
            for repeat in range(args.repeats):
                key = (code, epochs, repeat)
                if key in results:
                    res = results[key]
                    rows.append(_row(official_runs.CODE_NAMES[code], epochs, res.recall.get(20), res.mrr.get(20),
                                     res.mean_epoch_seconds, ceiling_recall, repeat=repeat + 1,
                                     last_epoch_loss=res.epoch_losses[-1]))  # fmt: skip
                elif key in failures:
                    rows.append(_row(official_runs.CODE_NAMES[code] + " (failed, see its log)", epochs, None, None,
                                     repeat=repeat + 1, error=failures[key]))  # fmt: skip
    if not args.no_baselines:
        for method in BASELINES:
            params = tuned_baselines.get(method, {})
            metrics = evaluate(make_baseline(method, train_data, **params), test_data, cutoffs=CUTOFFS)
            label = f"{method} (tuned)" if method in tuned_baselines else method
            rows.append(_row(label, None, metrics["recall@20"], metrics["mrr@20"], None, ceiling_recall))
    if ceiling:
        rows.append(_row("ceiling (Bayes-optimal)", None, ceiling.get("recall@20"), ceiling.get("mrr@20"), None,
                         ceiling_recall))  # fmt: skip
    summary = summarize(rows)
    wall = time.perf_counter() - started

    print()
    shared = f"; {args.jobs} official run(s) beside the kit's training, sharing the CPU" if args.jobs else ""
    if args.official_threads:
        shared += f"; official runs with {args.official_threads} thread(s) per op"
    print(f"{data_name}, test split, conservative ties, config {args.config}"
          f"{' ' + str(overrides) if overrides else ''}; {wall / 60:.0f} min in all{shared}; "
          f"load average at the end {os.getloadavg()[0]:.1f}")
    print()
    print_tables(rows, summary, args.repeats, test_data.n_pairs)
    if args.json:
        from gru4rec.io import atomic_write

        with atomic_write(args.json) as handle:
            json.dump({"preset": None if args.train else args.preset, "train": str(train_path), "test": str(test_path),
                       "config": base.to_dict(), "jobs": args.jobs, "repeats": args.repeats,
                       "test_predictions": test_data.n_pairs, "wall_seconds": wall, "rows": rows,
                       "summary": summary}, handle, indent=2)  # fmt: skip
            handle.write("\n")


if __name__ == "__main__":
    main()
