"""Evaluation speed: ranked predictions per second over a full catalogue, for several evaluation batch sizes.

    python benchmarks/eval_speed.py                      # 37,500 items, GRU(100), batch sizes 128 256 512 1024
    python benchmarks/eval_speed.py --items 20000 --json out.json

An untrained GRU4Rec (speed does not depend on the weights) scores every item after every test event; the evaluator
ranks the true next item (conservative ties) and takes the top-20 lists for coverage. Test sessions are random with
RSC15-like lengths. The number is predictions (ranked events) per second, wall clock, after one warm-up pass (best
of ``--repeats``); predictions per CPU-second (all threads of the process) and the load average are printed too,
since on a shared machine the wall-clock figure mostly measures the other processes.

Reference: the official TF re-implementation evaluates about 6,500 events/s over about 20,000 items on the kit's
2-core CPU (shared notes). Cost model: the output layer alone is ``2 * units * n_items`` FLOPs per prediction
(7.5 MFLOP for 100 x 37,500); the same CPU peaks at about 70-80 GFLOP/s in float32 matrix products, so about
10,000 predictions/s is the ceiling for the product alone at 37,500 items, before any ranking.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import pandas as pd

# Issue 4's target, set on a 2-core AVX2 machine whose float32 matrix product ran at about 78 GFLOP/s (see
# benchmarks/machine.py; the machine line printed first says what this run's machine is).
TARGET_ITEMS, TARGET_EVENTS_PER_S = 37_500, 10_000


def random_test_sessions(n_items: int, n_events: int, seed: int = 0):
    from gru4rec.session_data import ItemMap, SessionData

    rng = np.random.default_rng(seed)
    lengths = np.minimum(2 + np.floor(rng.lognormal(0.55, 1.0, size=n_events)).astype(int), 200)
    lengths = lengths[np.cumsum(lengths) <= n_events]
    sessions = np.repeat(np.arange(len(lengths)), lengths)
    frame = pd.DataFrame(
        {"SessionId": sessions, "ItemId": rng.integers(0, n_items, len(sessions)), "Time": np.arange(len(sessions))}
    )
    return SessionData.from_frame(frame, ItemMap(np.arange(n_items)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=37_500)
    parser.add_argument("--units", type=int, default=100)
    parser.add_argument("--events", type=int, default=30_000, help="test events (default 30,000)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--output", choices=["numpy", "tf", "both"], default="numpy",
                        help="how the GRU scorer computes the output scores (see GRU4RecScorer)")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per setting (best is reported)")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    args = parser.parse_args()

    import tensorflow as tf
    from machine import describe, machine_line

    from gru4rec.config import Config
    from gru4rec.evaluate import GRU4RecScorer, evaluate
    from gru4rec.model import GRU4RecModel

    machine = describe()
    print(machine_line(machine))
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
                  f"({best:.2f} s; median {np.median(times):.2f} s; {row['events_per_cpu_s']:,d} per CPU-second; "
                  f"load average {os.getloadavg()[0]:.1f})", flush=True)
    best_row = max(rows, key=lambda r: r["events_per_s"])
    verdict = "met" if best_row["events_per_s"] >= TARGET_EVENTS_PER_S else "not met"
    print(f"target (issue 4, {TARGET_ITEMS:,} items): >= {TARGET_EVENTS_PER_S:,} predictions/s: "
          f"{verdict if args.items == TARGET_ITEMS else 'not checked (other catalogue size)'} "
          f"(best {best_row['events_per_s']:,} at batch {best_row['batch_size']}, output={best_row['output']})")
    if args.json:
        from gru4rec.io import atomic_write

        with atomic_write(args.json) as handle:
            json.dump({"n_items": args.items, "units": args.units, "machine": platform.machine(),
                       "cpus": os.cpu_count(), "machine_info": machine, "tensorflow": tf.__version__,
                       "results": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
