"""Evaluation speed: ranked predictions per second over a full catalogue, for several evaluation batch sizes.

    python benchmarks/eval_speed.py                      # 37,500 items, GRU(100), batch sizes 128 256 512 1024
    python benchmarks/eval_speed.py --items 20000 --json out.json
    python benchmarks/eval_speed.py --official PATH_TO_GRU4Rec_Tensorflow_Official   # + the official code, same data
    python benchmarks/eval_speed.py --preset small       # the whole test set of a preset, over its training items

An untrained GRU4Rec (speed does not depend on the weights) scores every item after every test event; the evaluator
ranks the true next item (conservative ties) and takes the top-20 lists for coverage. Test sessions are random with
RSC15-like lengths. The number is predictions (ranked events) per second, wall clock, after one warm-up pass (best
of ``--repeats``); predictions per CPU-second (all threads of the process) and the load average are printed too,
since on a shared machine the wall-clock figure mostly measures the other processes.

Reference: the official TF re-implementation evaluated about 6,500 events/s over about 20,000 items on the 2-core
AVX2 machine where the evaluation-speed target (10,000 predictions/s at 37,500 items) was set. Machines differ (the
first line printed says which this one is), so ``--official PATH`` times the official code's ``batch_eval`` on the
same test data in the same run and prints the ratio; the target as a ratio is 10,000 / 6,500 = 1.54 x at the same
catalogue size. Cost model: the output layer alone is ``2 * units * n_items`` FLOPs per prediction (7.5 MFLOP for
100 x 37,500), so a CPU's float32 matrix-product rate (printed) bounds the speed before any ranking: about
10,000 predictions/s at 78 GFLOP/s, about 30,000 at 230.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import pandas as pd

# The evaluation-speed target, set on a 2-core AVX2 machine whose float32 matrix product ran at about 78 GFLOP/s (see
# benchmarks/machine.py; the machine line printed first says what this run's machine is).
TARGET_ITEMS, TARGET_EVENTS_PER_S = 37_500, 10_000
# The same target as a ratio to the official TF re-implementation (about 6,500 predictions/s on that machine):
# measured in one run with --official, it holds on any machine.
OFFICIAL_RATIO_TARGET = 10_000 / 6_500


def random_test_frame(n_items: int, n_events: int, seed: int = 0) -> pd.DataFrame:
    """About ``n_events`` test clicks: sessions of RSC15-like lengths, items uniform over ``0 .. n_items - 1``."""
    rng = np.random.default_rng(seed)
    lengths = np.minimum(2 + np.floor(rng.lognormal(0.55, 1.0, size=n_events)).astype(int), 200)
    lengths = lengths[np.cumsum(lengths) <= n_events]
    sessions = np.repeat(np.arange(len(lengths)), lengths)
    return pd.DataFrame(
        {"SessionId": sessions, "ItemId": rng.integers(0, n_items, len(sessions)), "Time": np.arange(len(sessions))}
    )


def random_test_sessions(n_items: int, n_events: int, seed: int = 0):
    """:func:`random_test_frame` as ``SessionData`` over the catalogue ``0 .. n_items - 1``."""
    from gru4rec.session_data import ItemMap, SessionData

    return SessionData.from_frame(random_test_frame(n_items, n_events, seed), ItemMap(np.arange(n_items)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=37_500)
    parser.add_argument("--units", type=int, default=100)
    parser.add_argument("--events", type=int, default=30_000, help="test events (default 30,000)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--output", choices=["numpy", "tf", "both"], default="numpy",
                        help="how the GRU scorer computes the output scores (see GRU4RecScorer)")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per setting (best is reported)")
    parser.add_argument("--preset", metavar="NAME",
                        help="evaluate a data preset's whole test set (e.g. small; gru4rec.datasets.ensure_preset) "
                             "over its training catalogue instead of random sessions: the wall time printed is "
                             "then what an evaluation of that test set takes (--items and --events are ignored)")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    parser.add_argument("--official", metavar="PATH",
                        help="also time the official GRU4Rec TF code's batch_eval (a clone of "
                             "GRU4Rec_Tensorflow_Official) on the same test data and print the ratio "
                             "(see official_reference.py)")
    args = parser.parse_args()
    if args.preset and args.official:
        parser.error("--official times random sessions; use it without --preset")

    import tensorflow as tf
    from machine import describe, machine_line

    from gru4rec.config import Config
    from gru4rec.evaluate import GRU4RecScorer, evaluate
    from gru4rec.model import GRU4RecModel

    machine = describe()
    print(machine_line(machine))
    if args.preset:
        from gru4rec.datasets import ensure_preset

        train, data = ensure_preset(args.preset, progress=None).load()
        args.items = train.n_items
    else:
        data = random_test_sessions(args.items, args.events)
    model = GRU4RecModel(args.items, Config.preset("official", layers=(args.units,)))
    outputs = ["numpy", "tf"] if args.output == "both" else [args.output]
    print(f"{data.n_pairs:,} predictions in {data.n_sessions:,} sessions, {args.items:,} items, GRU({args.units}); "
          f"TF {tf.__version__}, {os.cpu_count()} CPU(s)")
    rows = []
    for output in outputs:
        scorer = GRU4RecScorer(model, output=output)
        for batch_size in args.batch_sizes:
            evaluate(scorer, data, batch_size=batch_size)  # warm-up: tracing, buffers
            times, cpu = [], []
            for _ in range(args.repeats):
                start, start_cpu = time.perf_counter(), time.process_time()
                result = evaluate(scorer, data, batch_size=batch_size)
                times.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
            best = min(times)
            row = {
                "output": output, "batch_size": batch_size, "seconds": round(best, 3),
                "events_per_s": round(result["n_events"] / best), "n_events": result["n_events"],
                "events_per_cpu_s": round(result["n_events"] / min(cpu)),
            }  # fmt: skip
            rows.append(row)
            print(f"output={output:5s} batch={batch_size:5d}  {row['events_per_s']:8,d} predictions/s  "
                  f"(whole test set: {best:.2f} s wall, median {np.median(times):.2f} s; "
                  f"{row['events_per_cpu_s']:,d} per CPU-second; load average {os.getloadavg()[0]:.1f})",
                  flush=True)  # fmt: skip
    best_row = max(rows, key=lambda r: r["events_per_s"])
    official = None
    if args.official:
        from official_reference import run_part

        official = run_part(args.official, "eval", items=args.items, events=args.events, repeats=args.repeats)
        same_batch = [r for r in rows if r["batch_size"] == official["batch_size"]]
        print(f"the official TF code's batch_eval (batch {official['batch_size']}, same test data): "
              f"{official['events_per_s']:8,.0f} predictions/s ({official['seconds']:.2f} s)")
        ratio = best_row["events_per_s"] / official["events_per_s"]
        official["kit_vs_official"] = ratio
        line = f"kit / official: {ratio:.2f} x (the kit's best batch size)"
        if same_batch:
            official["kit_vs_official_same_batch"] = same_batch[0]["events_per_s"] / official["events_per_s"]
            line += f", {official['kit_vs_official_same_batch']:.2f} x at batch {official['batch_size']}"
        print(line + f"; target (as a ratio): >= {OFFICIAL_RATIO_TARGET:.2f} x: "
              f"{'met' if ratio >= OFFICIAL_RATIO_TARGET else 'not met'}")
    verdict = "met" if best_row["events_per_s"] >= TARGET_EVENTS_PER_S else "not met"
    print(f"target ({TARGET_ITEMS:,} items): >= {TARGET_EVENTS_PER_S:,} predictions/s: "
          f"{verdict if args.items == TARGET_ITEMS else 'not checked (other catalogue size)'} "
          f"(best {best_row['events_per_s']:,} at batch {best_row['batch_size']}, output={best_row['output']})")
    if args.json:
        from gru4rec.io import atomic_write

        with atomic_write(args.json) as handle:
            json.dump({"n_items": args.items, "preset": args.preset, "units": args.units, "machine": platform.machine(),
                       "cpus": os.cpu_count(), "machine_info": machine, "tensorflow": tf.__version__,
                       "results": rows, "official_code": official}, handle, indent=2)


if __name__ == "__main__":
    main()
