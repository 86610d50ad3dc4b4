"""Training speed of the in-graph trainer: events/s and ms/step on synthetic data with ~37,500 items.

Configurations (those of the training-speed targets): the seed's (B=50, H=100, in-batch negatives, cross-entropy,
Adam), the official RSC15-best (B=32, H=100, n_sample=2048, sample_alpha=0.5, cross-entropy + logQ, shared
embedding, Adagrad + momentum), and truncated BPTT with 8 and 20 steps (on the seed configuration), with the BPTT/BP
time per event.

Timing: the steady state of ``Trainer.run_chunk`` (one ``tf.function`` call per chunk of ``chunk_steps`` steps), after
one warm-up chunk that traces the function; every configuration is timed ``--repeats`` times over ``--chunks``
chunks and the best and the median are printed (a shared machine makes single timings noisy; the load average is
printed too). Events are the valid (input, next item) pairs trained on.

    python benchmarks/train_speed.py [--chunks 6] [--repeats 3] [--only seed official bptt8 bptt20] [--json OUT]
                                     [--official PATH_TO_GRU4Rec_Tensorflow_Official] [--items 19500 53000]

With ``--official`` the official TF code is timed on the same data right after the kit's seed and official
configurations (``official_reference.py``), and the ratios are printed: a machine-independent form of the targets.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

N_ITEMS = 37_500
# The training-speed targets, set on a 2-core AVX2 machine whose float32 matrix product ran at about 78 GFLOP/s
# (the machine line printed first says what this run's machine is; see benchmarks/machine.py).
TARGETS_EVENTS_PER_S = {"seed": 105_000, "official": 13_000}
# The same targets as ratios to the official TF re-implementation, which that machine trained at about 30,000
# (seed config) and 4,400 events/s (official RSC15-best): measured in one run with --official, they hold on any machine.
OFFICIAL_RATIO_TARGETS = {"seed": 105_000 / 30_000, "official": 13_000 / 4_400}
BPTT_TARGET = 1.5  # truncated BPTT: at most this many times BP's time per event


def synthetic_frame(n_sessions: int = 60_000, n_items: int = N_ITEMS, seed: int = 0) -> pd.DataFrame:
    """Sessions of geometric length (mean ~4) over a Zipf-like catalogue of ``n_items`` items (every item occurs),
    as ``SessionId, ItemId, Time`` columns."""
    rng = np.random.default_rng(seed)
    lengths = rng.geometric(1 / 3, n_sessions) + 1
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    items = rng.choice(n_items, size=lengths.sum(), p=popularity / popularity.sum())
    items[: n_items] = np.arange(n_items)  # every item occurs at least once
    sessions = np.repeat(np.arange(n_sessions), lengths)
    return pd.DataFrame({"SessionId": sessions, "ItemId": items, "Time": np.arange(lengths.sum(), dtype=float)})


def synthetic_sessions(n_sessions: int = 60_000, n_items: int = N_ITEMS, seed: int = 0):
    """:func:`synthetic_frame` as ``SessionData``."""
    from gru4rec.session_data import SessionData

    return SessionData.from_frame(synthetic_frame(n_sessions, n_items, seed))


def configurations():
    from gru4rec.config import Config

    # the seed's architecture and hyperparameters with the kit's lazy Adam and the official codes' loop (the seed's
    # TF1 loop, preset "seed", moves every row of the item matrices at every step: docs/seed.md)
    seed = Config.preset("seed", lazy_adam=True, dropout_on_state=True, gru_init="per_block", session_order="time",
                         epoch_end="all_sessions")  # fmt: skip
    return {
        "seed": ("seed config (B=50, in-batch, XE, lazy Adam), BP", seed),
        "official": (
            "official RSC15-best (B=32, 2048 neg., logQ, shared emb., Adagrad+mom.), BP",
            Config.preset("official"),
        ),
        "bptt8": ("seed config, truncated BPTT 8 steps", seed.with_overrides(bptt_steps=8)),
        "bptt20": ("seed config, truncated BPTT 20 steps", seed.with_overrides(bptt_steps=20)),
        "official_bptt8": ("official RSC15-best, truncated BPTT 8 steps", Config.preset("official", bptt_steps=8)),
    }


def _chunk_timer(config, data, chunks: int, repeats: int):
    """A trainer on ``data`` and ``run_repeat()``: one timed repeat of ``chunks`` chunks after a traced first one."""
    import tensorflow as tf

    from gru4rec.train import Trainer, plan_epoch

    trainer = Trainer(config, data.n_items, data.item_counts)
    plan = plan_epoch(data, config, 0, trainer.chunk)
    chunk = trainer.chunk
    needed = (1 + chunks * repeats) * chunk
    if plan.n_steps < needed:
        raise SystemExit(f"synthetic data too small: {plan.n_steps} steps < {needed}; lower --chunks/--repeats")
    box = {"state": trainer.model.initial_state(config.batch_size), "lo": 0, "per_step": [], "per_event": []}

    def run():
        lo = box["lo"]
        sl = slice(lo, lo + chunk)
        args = [tf.constant(a[sl]) for a in (plan.inputs, plan.targets, plan.resets, plan.valid)]
        samples = trainer.sampler.take(chunk)
        box["state"], losses = trainer.run_chunk(*args, samples, tf.constant(chunk // trainer.k, tf.int32),
                                                 box["state"])  # fmt: skip
        losses.numpy()
        box["lo"] += chunk
        return int(plan.valid[sl].sum())

    t0 = time.perf_counter()
    run()
    box["first_call_s"] = time.perf_counter() - t0

    def run_repeat():
        t0 = time.perf_counter()
        events = sum(run() for _ in range(chunks))
        seconds = time.perf_counter() - t0
        box["per_step"].append(seconds / (chunks * chunk))
        box["per_event"].append(seconds / events)

    def result() -> dict:
        per_step, per_event = box["per_step"], box["per_event"]
        return {
            "ms_per_step_best": 1000 * min(per_step),
            "ms_per_step_median": 1000 * float(np.median(per_step)),
            "events_per_s_best": 1 / min(per_event),
            "events_per_s_median": 1 / float(np.median(per_event)),
            "first_call_s": box["first_call_s"],
            "batch_size": config.batch_size,
            "n_sample": config.n_sample,
            "bptt_steps": config.bptt_steps,
            "chunk_steps": chunk,
            "n_items": data.n_items,
            "device": str(box["state"][0].device),
        }

    return run_repeat, result


def time_config(config, data, chunks: int, repeats: int) -> dict:
    """Steady-state ms/step and events/s (best and median of ``repeats`` repeats of ``chunks`` chunks)."""
    return time_configs(config, [data], chunks, repeats)[0]


def time_configs(config, datasets, chunks: int, repeats: int) -> list:
    """:func:`time_config` on several data sets, their repeats interleaved (A B A B ...), so that a change of the
    machine's load during the run does not favour one of them."""
    timers = [_chunk_timer(config, data, chunks, repeats) for data in datasets]
    for _ in range(repeats):
        for run_repeat, _result in timers:
            run_repeat()
    return [result() for _run, result in timers]


def time_epoch(config, data) -> tuple:
    """Wall time of one whole epoch (``Trainer.run_epoch``: batch plan, sampler, every chunk, host-side losses),
    after a first epoch that traces the function, and the part of it spent inside the chunk calls."""
    from gru4rec.train import Trainer

    trainer = Trainer(config, data.n_items, data.item_counts, max_steps_per_epoch=data.n_pairs)
    trainer.run_epoch(data, 0, max_steps=2 * trainer.chunk)  # traces
    start = time.perf_counter()
    out = trainer.run_epoch(data, 1)
    return time.perf_counter() - start, out["in_graph_seconds"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=6, help="chunks per timed repeat (default 6)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per configuration (default 3)")
    parser.add_argument("--only", nargs="+", choices=list(configurations()), help="run only these configurations")
    parser.add_argument("--json", metavar="OUT", help="write the results as JSON")
    parser.add_argument("--official-tf", "--official", dest="official", metavar="PATH",
                        help="also time the official GRU4Rec TF code (a clone of GRU4Rec_Tensorflow_Official) on the "
                             "same data, right after the kit's seed and official configurations, and print the ratios "
                             "(see official_reference.py)")
    parser.add_argument("--official-pytorch", metavar="PATH",
                        help="also time the official GRU4Rec PyTorch code (a clone of GRU4Rec_PyTorch_Official) per "
                             "epoch on the same data (needs --epochs; its interpreter: GRU4REC_OFFICIAL_PYTHON)")
    parser.add_argument("--epochs", action="store_true",
                        help="also time one whole epoch (wall clock of Trainer.run_epoch: batch plan, sampler, "
                             "chunks, host work) of the kit and, with --official-tf/--official-pytorch, of the "
                             "official codes (the epoch time they print), and print the per-epoch ratios")
    parser.add_argument("--items", type=int, nargs="+", metavar="N",
                        help=f"catalogue sizes of the synthetic data (default {N_ITEMS:,}); with several, every "
                             "configuration is timed on each (same events, same process) and the step time's ratio "
                             "to the first size is printed: sampled training should not slow down as the "
                             "catalogue grows")
    parser.add_argument("--official-seconds", type=float, default=30.0, help="timed seconds of each official run")
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = [n for n in configurations() if not args.only or n in args.only]
    if not args.in_process:
        return _run_each_in_its_own_process(names, args)
    import tensorflow as tf

    from gru4rec.train import single_threaded_ops_on_cpu

    single = single_threaded_ops_on_cpu(configurations()[names[0]][1])  # as train() does; once per process

    sizes = args.items or [N_ITEMS]
    datasets = {n: synthetic_sessions(n_items=n) for n in sizes}
    data = datasets[sizes[0]]
    print(f"[{names[0]}] {data.n_events:,} events, {data.n_sessions:,} sessions, "
          f"{', '.join(f'{d.n_items:,}' for d in datasets.values())} items; TensorFlow "
          f"{tf.__version__}; single-threaded ops: {single}", file=sys.stderr)  # fmt: skip
    results = {}
    for name in names:
        label, config = configurations()[name]
        timed = time_configs(config, list(datasets.values()), args.chunks, args.repeats)
        r = timed[0]
        if args.epochs:
            r["epoch_seconds"], r["epoch_in_graph_seconds"] = time_epoch(config, data)
        results[name] = {"label": label, "single_threaded_ops": single, **r}
        if len(sizes) > 1:
            results[name]["by_items"] = {t["n_items"]: t for t in timed}
    if args.json:
        from gru4rec.io import atomic_write

        with atomic_write(args.json) as handle:
            json.dump(results, handle, indent=2)
    return 0


def _run_each_in_its_own_process(names, args) -> int:
    """Thread settings are per process (see ``gru4rec.train.single_threaded_ops_on_cpu``): one process each."""
    import subprocess
    import tempfile

    from machine import describe, machine_line, step_floor

    machine = describe()
    print(machine_line(machine))
    sizes = args.items or [N_ITEMS]
    print(f"{', '.join(f'{n:,}' for n in sizes)} items; steady state after one traced chunk; best of {args.repeats} "
          f"x {args.chunks} chunks (median in brackets)")  # fmt: skip
    print(f"{'configuration':78s} {'events/s':>10s} {'ms/step':>8s}   (median: events/s, ms/step)")
    results = {}
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "r.json")
            command = [sys.executable, os.path.abspath(__file__), "--in-process", "--only", name, "--json", out,
                       "--chunks", str(args.chunks), "--repeats", str(args.repeats)]  # fmt: skip
            if args.epochs:
                command.append("--epochs")
            if args.items:
                command += ["--items", *map(str, args.items)]
            subprocess.run(command, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
            with open(out) as handle:
                r = json.load(handle)[name]
        results[name] = r
        print(f"{r['label']:78s} {r['events_per_s_best']:10,.0f} {r['ms_per_step_best']:8.3f}   "
              f"({r['events_per_s_median']:,.0f}, {r['ms_per_step_median']:.3f})", flush=True)  # fmt: skip
        for n, rn in list(r.get("by_items", {}).items())[1:]:
            first = r["ms_per_step_best"]
            print(f"{'  the same with ' + format(int(n), ',') + ' items':78s} {rn['events_per_s_best']:10,.0f} "
                  f"{rn['ms_per_step_best']:8.3f}   ({rn['events_per_s_median']:,.0f}, "
                  f"{rn['ms_per_step_median']:.3f}); step time {rn['ms_per_step_best'] / first:.2f} x that with "
                  f"{r['n_items']:,} items (median {rn['ms_per_step_median'] / r['ms_per_step_median']:.2f} x)",
                  flush=True)  # fmt: skip
        if name in ("seed", "official"):
            floor = step_floor(r["batch_size"], r["n_sample"], 100, machine["sgemm_gflops"],
                               machine["copy_gbytes_per_s"])  # fmt: skip
            r["limit"] = floor
            print(f"  limit: {floor['floor_ms']:.3f} ms/step ({floor['flops'] / 1e6:.0f} MFLOP at "
                  f"{machine['sgemm_gflops']:.0f} GFLOP/s = {floor['compute_ms']:.3f} ms; "
                  f"{floor['bytes'] / 1e6:.1f} MB at {machine['copy_gbytes_per_s']:.0f} GB/s = "
                  f"{floor['memory_ms']:.3f} ms); measured "
                  f"{r['ms_per_step_best'] / floor['floor_ms']:.1f} x the limit", flush=True)  # fmt: skip
        if "epoch_seconds" in r:
            host = r["epoch_seconds"] - r["epoch_in_graph_seconds"]
            print(f"  one epoch of the kit: {r['epoch_seconds']:.1f} s wall, of which {host:.2f} s "
                  f"({100 * host / r['epoch_seconds']:.1f} %) outside the in-graph chunk calls (batch plan, "
                  f"sample store, host arrays; target < 5 %)", flush=True)  # fmt: skip
        if args.epochs and name in OFFICIAL_RATIO_TARGETS:
            from official_reference import run_part

            for flavour, path in (("tf", args.official), ("pytorch", args.official_pytorch)):
                if not path:
                    continue
                o = run_part(path, f"epoch:{name}", flavour=flavour)
                results[f"official_{flavour}_epoch_{name}"] = o
                ratio = o["epoch_seconds"] / r["epoch_seconds"]
                r[f"epoch_vs_official_{flavour}"] = ratio
                print(f"  one epoch of the official {flavour} code: {o['epoch_seconds']:.1f} s wall; kit / official "
                      f"speed: {ratio:.2f} x", flush=True)  # fmt: skip
        if args.official and name in OFFICIAL_RATIO_TARGETS:
            from official_reference import run_part

            o = run_part(args.official, f"train:{name}", seconds=args.official_seconds, repeats=args.repeats)
            results[f"official_code_{name}"] = o
            print(f"{'  the official TF code, same data and shapes':78s} {o['events_per_s_best']:10,.0f} "
                  f"{o['ms_per_step_best']:8.3f}   ({o['events_per_s_median']:,.0f}, "
                  f"{o['ms_per_step_median']:.3f})", flush=True)  # fmt: skip
            r["vs_official_code"] = r["events_per_s_best"] / o["events_per_s_best"]
            r["vs_official_code_median"] = r["events_per_s_median"] / o["events_per_s_median"]
    for k in ("bptt8", "bptt20"):
        if k in results and "seed" in results:
            ratio = results["seed"]["events_per_s_best"] / results[k]["events_per_s_best"]
            results[k]["time_per_event_vs_bp"] = ratio
            print(f"{k}: time per event = {ratio:.2f} x BP (target <= {BPTT_TARGET:.1f} x: "
                  f"{'met' if ratio <= BPTT_TARGET else 'not met'})")
    for name, target in TARGETS_EVENTS_PER_S.items():
        if name in results:
            got = results[name]["events_per_s_best"]
            print(f"target {name}: >= {target:,} events/s: {'met' if got >= target else 'not met'} ({got:,.0f})")
    for name, target in OFFICIAL_RATIO_TARGETS.items():
        if "vs_official_code" in results.get(name, {}):
            got, median = results[name]["vs_official_code"], results[name]["vs_official_code_median"]
            print(f"target {name}: >= {target:.2f} x the official TF code (measured in this run): "
                  f"{'met' if got >= target else 'not met'} ({got:.2f} x best, {median:.2f} x median)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        from gru4rec.io import atomic_write

        with atomic_write(args.json) as handle:
            json.dump({"machine": machine, "results": results}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
