"""Benchmark: RSC15 preprocessing of a yoochoose-size click file (about 33M clicks), time and peak memory.

    python benchmarks/prepare_speed.py [--preset rsc15] [--seed 42] [--keep]

The clicks file is made once with the synthetic generator (preset ``rsc15``: 9.25M sessions, ~33M clicks, the size
of the real ``yoochoose-clicks.dat``) and cached in ``build/bench/``. The preprocessing then runs in a fresh child
process, so its peak resident memory (``ru_maxrss``, which includes pyarrow's buffers that ``tracemalloc`` cannot
see) is measured alone. Target on a 2-core machine: whole preprocessing (read, filters, splits, four files
written) in <= 20 s and <= 3 GiB peak.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, resource, sys, time
from gru4rec import rsc15
start = time.perf_counter()
say = lambda m: print("  [prepare] " + m, file=sys.stderr, flush=True)
stats = rsc15.prepare(sys.argv[1], sys.argv[2], progress=say)
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": seconds, "phases": stats["seconds"], "funnel": stats["funnel"],
                  "files": stats["files"], "maxrss_kib": usage.ru_maxrss, "cpu_phases": stats["cpu_seconds"],
                  "cpu": usage.ru_utime + usage.ru_stime}))
"""

GENERATE = r"""
import sys, time
from gru4rec import synthetic
start = time.perf_counter()
synth = synthetic.generate(sys.argv[1], int(sys.argv[2]))
made = time.perf_counter()
synth.write(sys.argv[3])
written = time.perf_counter() - made
print(f"  generated {len(synth.clicks):,} clicks in {made - start:.1f} s, written in {written:.1f} s", flush=True)
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="rsc15")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--dir", default=os.path.join(ROOT, "build", "bench"))
    parser.add_argument("--keep", action="store_true", help="keep the prepared files (the clicks are always kept)")
    args = parser.parse_args(argv)

    os.makedirs(args.dir, exist_ok=True)
    clicks = os.path.join(args.dir, f"{args.preset}-seed{args.seed}-clicks.dat")
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if not os.path.exists(clicks):
        print(f"[bench] generating {clicks} (once; cached)", flush=True)
        subprocess.run([sys.executable, "-c", GENERATE, args.preset, str(args.seed), clicks], check=True, env=env)
    else:
        print(f"[bench] reusing {clicks}", flush=True)
    size = os.path.getsize(clicks)
    out = os.path.join(args.dir, f"prepared-{args.preset}-seed{args.seed}")
    shutil.rmtree(out, ignore_errors=True)
    print(f"[bench] preprocessing {size / 2**30:.2f} GiB in a fresh process", flush=True)
    wall = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", CHILD, clicks, out], check=True, env=env, stdout=subprocess.PIPE, text=True
    )
    wall = time.perf_counter() - wall
    report = json.loads(result.stdout.strip().splitlines()[-1])
    raw = report["funnel"][0]["events"]
    peak_gib = report["maxrss_kib"] / 2**20
    print(f"[bench] clicks:        {raw:,} ({size / 2**20:,.0f} MiB)")
    print(f"[bench] prepare:       {report['seconds']:.1f} s  ({raw / report['seconds']:,.0f} rows/s)")
    print(f"[bench] process wall:  {wall:.1f} s  (including Python start and imports)")
    print(f"[bench] CPU time:      {report['cpu']:.1f} s  (user + system; > wall where threads overlap)")
    with open("/proc/loadavg") if os.path.exists("/proc/loadavg") else open(os.devnull) as handle:
        load = handle.read().split()[:3]
    if load:
        print(f"[bench] load average:  {' '.join(load)} (other processes on the machine slow the wall time)")
    print(f"[bench] peak memory:   {peak_gib:.2f} GiB (ru_maxrss of the preprocessing process)")
    print("[bench] phases (s):    " + ", ".join(f"{k} {v:.1f}" for k, v in report["phases"].items()))
    print("[bench] phases CPU (s):" + ", ".join(f" {k} {v:.1f}" for k, v in report["cpu_phases"].items()))
    for name, entry in report["files"].items():
        print(
            f"[bench]   {name:<12} {entry['events']:>11,} events {entry['sessions']:>10,} sessions "
            f"{entry['items']:>7,} items"
        )
    targets_met = report["seconds"] <= 20 and peak_gib <= 3
    print(f"[bench] target (<= 20 s, <= 3 GiB): {'met' if targets_met else 'NOT met'} on {os.cpu_count()} cores")
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
