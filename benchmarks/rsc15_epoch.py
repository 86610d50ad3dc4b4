"""Benchmark: an RSC15-size training file, loaded and trained for one epoch in the official configuration.

    python benchmarks/rsc15_epoch.py [--preset rsc15] [--seed 42] [--max-steps N] [--json OUT]

The file is the synthetic generator's ``rsc15`` preset (the size of the real ``yoochoose-clicks.dat``) prepared with
the RSC15 rules (``gru4rec/rsc15.py``); ``benchmarks/prepare_speed.py --keep`` makes the same files, and both cache
them in ``build/bench/``. Everything then runs in one fresh child process:

1. **load**: what ``gru4rec train`` does with its training file (``io.read_sessions`` then
   ``SessionData.from_frame``): wall time and the peak resident memory right after (``ru_maxrss``);
2. **one epoch** of ``Config.preset("official")`` (batch 32, 2,048 popularity-sampled negatives, cross-entropy with
   logQ, shared embedding, Adagrad with momentum, the weight average), ``Trainer.run_epoch`` after a two-chunk
   warm-up that traces the function: wall time (batch plan, sampler, every chunk, the average's moves), with a
   progress line every ~5 %. ``--max-steps N`` stops the epoch after N steps and prints the whole epoch's time
   extrapolated from them, labelled as such.

Targets on a 2-core machine (issue 25): loading <= 60 s and <= 4 GiB; one epoch <= 20 min.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, resource, sys, time
from gru4rec.train import single_threaded_ops_on_cpu
single_threaded = single_threaded_ops_on_cpu()  # as `gru4rec train` does on a CPU with few cores
from gru4rec.io import read_sessions
from gru4rec.session_data import SessionData
start = time.perf_counter()
data = SessionData.from_frame(read_sessions(sys.argv[1]))
load_s = time.perf_counter() - start
load_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"  [child] loaded {data.n_events:,} events, {data.n_sessions:,} sessions, {data.n_items:,} items "
      f"in {load_s:.1f} s, peak memory {load_rss_kib / 2**20:.2f} GiB", file=sys.stderr, flush=True)
from gru4rec.config import Config
from gru4rec.train import Trainer
max_steps = int(sys.argv[2]) or None
config = Config.preset("official")
trainer = Trainer(config, data.n_items, data.item_counts, max_steps_per_epoch=data.n_pairs)
trainer.run_epoch(data, 0, max_steps=2 * trainer.chunk)  # traces the chunk function
box = {"steps": 0, "next": 0.05, "t0": time.perf_counter()}
def on_chunk(first_step, losses, seconds, total=None):
    box["steps"] = first_step + len(losses)
    done = box["steps"] / box["total"]
    if done >= box["next"]:
        box["next"] += 0.05
        elapsed = time.perf_counter() - box["t0"]
        print(f"  [child] {box['steps']:,} / {box['total']:,} steps ({done:.0%}) in {elapsed / 60:.1f} min, "
              f"{elapsed / box['steps'] * 1000:.3f} ms/step", file=sys.stderr, flush=True)
from gru4rec.train import plan_epoch
full_steps = plan_epoch(data, config, 1, trainer.chunk).n_steps  # the epoch's steps (run_epoch plans it again)
box["total"] = min(full_steps, max_steps) if max_steps else full_steps
start = time.perf_counter()
out = trainer.run_epoch(data, 1, on_chunk, max_steps=max_steps)
epoch_s = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"events": data.n_events, "sessions": data.n_sessions, "items": data.n_items,
                  "load_s": load_s, "load_rss_kib": load_rss_kib, "epoch_s": epoch_s,
                  "in_graph_s": out["in_graph_seconds"], "steps": box["steps"], "full_steps": full_steps,
                  "maxrss_kib": usage.ru_maxrss, "single_threaded_ops": bool(single_threaded)}))
"""


def prepared_training_file(directory: str, preset: str, seed: int) -> str:
    """``rsc15_train_full.txt`` of the preset's clicks prepared with the RSC15 rules, made once in ``directory``."""
    prepared = os.path.join(directory, f"prepared-{preset}-seed{seed}")
    train = os.path.join(prepared, "rsc15_train_full.txt")
    if os.path.exists(train):
        print(f"[bench] reusing {train}", flush=True)
        return train
    print(f"[bench] making {train} (once; cached): benchmarks/prepare_speed.py --keep", flush=True)
    subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "prepare_speed.py"), "--preset", preset,
         "--seed", str(seed), "--dir", directory, "--keep"],
        check=True,
    )  # fmt: skip
    return train


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="rsc15", help="synthetic preset of the clicks (default rsc15)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--dir", default=os.path.join(ROOT, "build", "bench"), help="cache of the files")
    parser.add_argument("--max-steps", type=int, default=0, help="stop the epoch after N steps (0: the whole epoch)")
    parser.add_argument("--json", metavar="OUT", help="write the results as JSON")
    args = parser.parse_args(argv)

    from machine import describe, machine_line

    machine = describe()
    print(machine_line(machine), flush=True)
    os.makedirs(args.dir, exist_ok=True)
    train = prepared_training_file(args.dir, args.preset, args.seed)
    size = os.path.getsize(train)
    print(f"[bench] loading {size / 2**30:.2f} GiB and training one epoch in a fresh process", flush=True)
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", CHILD, train, str(args.max_steps)], check=True, env=env, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    report = json.loads(done.stdout.strip().splitlines()[-1])
    load_gib = report["load_rss_kib"] / 2**20
    print(f"[bench] data: {report['events']:,} events, {report['sessions']:,} sessions, {report['items']:,} items")
    load_met = report["load_s"] <= 60 and load_gib <= 4
    print(f"[bench] load: {report['load_s']:.1f} s, peak memory {load_gib:.2f} GiB "
          f"(target <= 60 s, <= 4 GiB: {'met' if load_met else 'NOT met'})")  # fmt: skip
    per_step = report["epoch_s"] / report["steps"]
    epoch_s = report["epoch_s"]
    label = "one epoch"
    if report["steps"] < report["full_steps"]:
        epoch_s = per_step * report["full_steps"]
        label = f"one epoch EXTRAPOLATED from {report['steps']:,} of its {report['full_steps']:,} steps"
    print(f"[bench] {label}: {epoch_s / 60:.1f} min ({per_step * 1000:.3f} ms/step, in-graph share "
          f"{report['in_graph_s'] / report['epoch_s']:.0%}; target <= 20 min: "
          f"{'met' if epoch_s <= 20 * 60 else 'NOT met'})")  # fmt: skip
    print(f"[bench] peak memory of the process: {report['maxrss_kib'] / 2**20:.2f} GiB; load average after: "
          f"{' '.join(open('/proc/loadavg').read().split()[:3]) if os.path.exists('/proc/loadavg') else '-'}")
    if args.json:
        from gru4rec.io import atomic_write

        with atomic_write(args.json) as handle:
            json.dump({"machine": machine, **report, "epoch_s_whole": epoch_s}, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
