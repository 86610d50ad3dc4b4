"""Op-level profile of the trainer's in-graph chunk: where a training step's time goes (not a test).

    python benchmarks/profile_step.py [--only official] [--chunks 3] [--top 15]

Trains ``train_speed.py``'s synthetic data (240,336 events over 37,500 items) with a configuration of
``train_speed.configurations()`` (default ``official``: the RSC15-best file), traces one warm-up chunk, then records
``--chunks`` chunks with TensorFlow's profiler (``tf.profiler.experimental``) and prints the self time of the op types
and of the single ops that take most of it, as shares of the busy time (the profiler's ``IDLE`` left out). The raw
profile stays in ``--logdir`` for TensorBoard's profile plugin. Run it on a quiet machine: on a loaded one every op
is charged for the time it waited.

It also prints how many ops of the step loop were running at once, as shares of the loop's wall time under the
profiler (none, one, two or more): with one thread per op on two cores, the share with two running says how much of
the step already uses both cores, and the busy time over the number of cores bounds what any schedule of the same
ops could reach.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_speed  # noqa: E402  (benchmarks/train_speed.py, beside this file)


def op_stats(xplane_path: str) -> list:
    """Rows of the profiler's ``framework_op_stats`` tool: dicts with ``type``, ``operation``, ``occurrences``,
    ``total_self_time`` (microseconds)."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    data, ok = plugin.xspace_to_tools_data([xplane_path], "framework_op_stats", {})
    if not ok:
        raise RuntimeError(f"{xplane_path}: this TensorFlow's profiler has no framework_op_stats tool")
    table = json.loads(data)[0]
    columns = [column["id"] for column in table["cols"]]
    return [{key: (cell or {}).get("v") for key, cell in zip(columns, row["c"])} for row in table["rows"]]


def ops_running_at_once(xplane_path: str, marker: str = "while/body") -> tuple:
    """From the profile: ``({ops running at once: share of the wall time}, wall microseconds)`` over the
    ops whose name contains ``marker`` (the chunk's step loop), from the first such op's start to the last one's end."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(xplane_path).read_bytes())
    edges = []  # (time in ns, +1 at an op's start, -1 at its end)
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                if marker in plane.event_metadata[event.metadata_id].name:
                    start = line.timestamp_ns + event.offset_ps / 1e3
                    edges += [(start, 1), (start + event.duration_ps / 1e3, -1)]
    if not edges:
        return {}, 0.0
    edges.sort()
    shares, running, last = collections.Counter(), 0, edges[0][0]
    for when, change in edges:
        shares[min(running, 2)] += when - last
        running, last = running + change, when
    wall = last - edges[0][0]
    return {k: v / wall for k, v in sorted(shares.items())}, wall / 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="official", choices=sorted(train_speed.configurations()),
                        help="the configuration to profile (default: official)")  # fmt: skip
    parser.add_argument("--chunks", type=int, default=3, help="chunks recorded by the profiler (default 3)")
    parser.add_argument("--top", type=int, default=15, help="single ops to list (default 15)")
    parser.add_argument("--logdir", default="build/profile", help="where the raw profile goes (default build/profile)")
    args = parser.parse_args()
    if args.chunks < 1:
        parser.error("--chunks: expected an integer >= 1")

    import tensorflow as tf
    from machine import describe, machine_line

    from gru4rec.train import single_threaded_ops_on_cpu

    label, config = train_speed.configurations()[args.only]
    single_threaded_ops_on_cpu(config)
    print(machine_line(describe()), flush=True)
    data = train_speed.synthetic_sessions()
    run_repeat, _result = train_speed._chunk_timer(config, data, chunks=args.chunks, repeats=2)
    run_repeat()  # traced and warm
    os.makedirs(args.logdir, exist_ok=True)
    tf.profiler.experimental.start(args.logdir)
    run_repeat()
    tf.profiler.experimental.stop()
    path = sorted(glob.glob(os.path.join(args.logdir, "plugins", "profile", "*", "*.xplane.pb")))[-1]
    rows = [row for row in op_stats(path) if row["type"] != "IDLE"]
    busy = sum(row["total_self_time"] for row in rows)
    steps = args.chunks * config.chunk_steps
    print(f"{label}: {steps} steps profiled, busy {busy / 1e3:.1f} ms ({busy / 1e3 / steps:.3f} ms/step); {path}")
    by_type = collections.Counter()
    for row in rows:
        by_type[row["type"]] += row["total_self_time"]
    print("op type                          self time   share")
    for name, micros in by_type.most_common(args.top):
        print(f"  {name:30s} {micros / 1e3:8.1f} ms  {100 * micros / busy:5.1f} %")
    shares, wall = ops_running_at_once(path)
    if shares:
        at_once = ", ".join(f"{label} {100 * shares.get(k, 0.0):.1f} %" for k, label in
                            ((0, "none"), (1, "one"), (2, "two or more")))  # fmt: skip
        per_step = wall / 1e3 / steps
        cores = os.cpu_count() or 1
        print(f"ops of the step loop running at once (share of its {per_step:.3f} ms/step wall time under the "
              f"profiler): {at_once}; the busy time spread over {cores} cores would take "
              f"{busy / 1e3 / steps / cores / per_step:.2f} of that wall time")  # fmt: skip
    print("single ops (name in the traced graph)")
    for row in sorted(rows, key=lambda r: -r["total_self_time"])[: args.top]:
        print(f"  {row['type']:24s} {row['operation'][-56:]:56s} {row['total_self_time'] / 1e3:8.1f} ms  "
              f"{100 * row['total_self_time'] / busy:5.1f} %")  # fmt: skip


if __name__ == "__main__":
    main()
