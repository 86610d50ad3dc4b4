"""Would one fused C++ kernel for the row update speed up the official configuration? Builds it, checks it, times it.

The official configuration's step updates ~2,000 distinct rows of three item tables (weights, Adagrad accumulator,
velocity; 37,500 x 100 floats each) with gather -> arithmetic -> scatter, seven TensorFlow ops per table
(``gru4rec/optim.py``, ``AdagradM._apply_rows``). ``fused_rows.cc`` (beside this file) does the same update in place
in one op and one pass over each row. This benchmark compiles it with ``g++`` against the installed TensorFlow
(into ``build/fused_rows/``), checks that it leaves the three tables bit-identical to the trainer's form traced in
a ``tf.function`` (several shapes, odd and even element counts), and only then times, on one thread per op as the
kit trains on a CPU with few cores:

- the row update alone, 128 updates per ``tf.function`` call as the chunk loop runs them: the trainer's ops, the
  fused op, and the fused op on two halves of the rows (two independent ops that may run side by side);
- with ``--step``, the whole official step (``train_speed.py``'s data), the trainer as it is against the trainer with
  the fused op for its two-dimensional tables, chunk by chunk in alternating order (paired, so a change of the
  machine's load hits both).

Not part of the kit: ``docs/speed.md`` reports what it measured and why the kit keeps its TensorFlow ops.

    python benchmarks/fused_rows.py [--step] [--rounds 16] [--repeats 4]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

SOURCE = HERE / "fused_rows.cc"
# TensorFlow's element-wise kernels use 8-float packets (AVX) on x86-64; the kernel must round as they do
ISA_FLAGS = ["-O2", "-mavx", "-ffp-contract=off"]
UPDATES = 128  # row updates per timed call (one chunk of the official configuration)


def build(out_dir: Path) -> Path:
    """Compile ``fused_rows.cc`` into ``out_dir`` (once per source, flags and TensorFlow version); the library path."""
    import tensorflow as tf

    compiler = shutil.which("g++")
    if compiler is None:
        raise SystemExit("fused_rows.py: g++ not found; this benchmark compiles a TensorFlow op and needs it")
    flags = ISA_FLAGS + list(tf.sysconfig.get_compile_flags())
    link = list(tf.sysconfig.get_link_flags())
    key = hashlib.sha256((SOURCE.read_text() + " ".join(flags + link) + tf.__version__).encode()).hexdigest()[:12]
    library = out_dir / f"fused_rows-{key}.so"
    if library.exists():
        return library
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SystemExit(f"fused_rows.py: --build-dir {out_dir}: expected a folder ({error.strerror})") from None
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        built = Path(tmp) / library.name
        command = [compiler, "-shared", "-fPIC", "-Wno-deprecated-declarations", *flags, str(SOURCE), "-o",
                   str(built), *link]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            errors = [line for line in result.stderr.splitlines() if "error" in line]
            raise SystemExit(f"fused_rows.py: g++ failed on {SOURCE.name}: {(errors or ['(no error line)'])[0]}")
        os.replace(built, library)
    return library


def fused_update(lib, var, slots, indices, grad, rows, lr, momentum: float, epsilon: float, blocks: int = 1):
    """The fused op on ``blocks`` consecutive parts of the (distinct) rows."""
    import tensorflow as tf

    n = tf.shape(indices)[0]
    bounds = [n * b // blocks for b in range(blocks + 1)]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        lib.fused_adagrad_rows(var.handle, slots["acc"].handle, slots["mom"].handle, indices[lo:hi], grad[lo:hi],
                               rows[lo:hi], lr, momentum=momentum, epsilon=epsilon)  # fmt: skip


def differing_elements(lib, n_rows: int, dim: int, touched: int, seed: int = 0) -> int:
    """Elements of the three tables that differ after three updates, the trainer's form against the fused op, both
    traced in a ``tf.function`` with the update's inputs as arguments (as in the trainer's chunk)."""
    import tensorflow as tf

    from gru4rec.config import Config
    from gru4rec.optim import AdagradM

    rng = np.random.default_rng(seed)
    shape = (n_rows, dim)
    start = [rng.standard_normal(shape, dtype=np.float32), rng.uniform(0, 3, shape).astype(np.float32),
             0.01 * rng.standard_normal(shape, dtype=np.float32)]  # fmt: skip
    indices = tf.constant(rng.choice(n_rows, touched, replace=False).astype(np.int32))  # (touched,)
    grad = tf.constant(rng.standard_normal((touched, dim), dtype=np.float32))  # (touched, dim)
    lr = tf.constant(np.float32(0.2))
    tables = []
    for fused in (False, True):
        var = tf.Variable(start[0])
        optimizer = AdagradM(Config.preset("official"), [var])
        slots = optimizer.slots[0]
        slots["acc"].assign(start[1])
        slots["mom"].assign(start[2])

        def update(indices, grad, lr, fused=fused, var=var, optimizer=optimizer, slots=slots):
            rows = tf.gather(var, indices)
            if fused:
                fused_update(lib, var, slots, indices, grad, rows, lr, optimizer.momentum, optimizer.epsilon)
            else:
                optimizer._apply_rows(var, slots, indices, grad, rows, lr)

        traced = tf.function(update, autograph=False)
        for _ in range(3):
            traced(indices, grad, lr)
        tables.append([var.numpy(), slots["acc"].numpy(), slots["mom"].numpy()])
    return int(sum((a != b).sum() for a, b in zip(*tables)))


def time_row_update(lib, n_rows: int, dim: int, touched: int, repeats: int) -> dict:
    """ms per row update (best, median) of the trainer's ops and of the fused op in one and in two blocks."""
    import tensorflow as tf

    from gru4rec.config import Config
    from gru4rec.optim import AdagradM

    rng = np.random.default_rng(1)
    var = tf.Variable(rng.standard_normal((n_rows, dim), dtype=np.float32))
    optimizer = AdagradM(Config.preset("official"), [var])
    slots = optimizer.slots[0]
    slots["acc"].assign(tf.ones((n_rows, dim)))
    batches = tf.constant(np.stack([rng.choice(n_rows, touched, replace=False) for _ in range(UPDATES)]).astype(
        np.int32))  # (UPDATES, touched)  # fmt: skip
    grad = tf.constant(0.1 * rng.standard_normal((touched, dim), dtype=np.float32))
    lr = tf.constant(np.float32(0.05))

    def looped(apply):
        def body(i):
            indices = tf.gather(batches, i)
            apply(indices, grad, tf.gather(var, indices))
            return (i + 1,)

        return tf.function(lambda: tf.while_loop(lambda i: i < UPDATES, body, (tf.constant(0),),
                                                  parallel_iterations=1), autograph=False)  # fmt: skip

    cases = {
        "trainer's ops (gather, arithmetic, scatter)": looped(
            lambda idx, g, rows: optimizer._apply_rows(var, slots, idx, g, rows, lr)),
        "fused op": looped(lambda idx, g, rows: fused_update(
            lib, var, slots, idx, g, rows, lr, optimizer.momentum, optimizer.epsilon)),
        "fused op, two blocks side by side": looped(lambda idx, g, rows: fused_update(
            lib, var, slots, idx, g, rows, lr, optimizer.momentum, optimizer.epsilon, blocks=2)),
    }  # fmt: skip
    times = {name: [] for name in cases}
    for run in cases.values():
        run()  # traced
    for _ in range(repeats):
        for name, run in cases.items():
            start = time.perf_counter()
            run()
            times[name].append(1000 * (time.perf_counter() - start) / UPDATES)
    return {name: (min(t), float(np.median(t))) for name, t in times.items()}


def time_step(lib, rounds: int) -> dict:
    """ms per official step (best, median over ``rounds`` paired chunks): the trainer as it is, and with the fused op
    for its two-dimensional tables (the bias rows keep the trainer's ops)."""
    import train_speed

    from gru4rec import optim
    from gru4rec.train import single_threaded_ops_on_cpu

    _label, config = train_speed.configurations()["official"]
    single_threaded_ops_on_cpu(config)
    data = train_speed.synthetic_sessions()
    trainer_form = optim.AdagradM._apply_rows

    def with_fused(self, var, slots, indices, grad, rows, lr):
        if len(var.shape) == 1:
            return trainer_form(self, var, slots, indices, grad, rows, lr)
        return fused_update(lib, var, slots, indices, grad, rows, lr, self.momentum, self.epsilon)

    timers = {}
    for name, form in (("the trainer as it is", trainer_form), ("with the fused op", with_fused)):
        optim.AdagradM._apply_rows = form  # read when the chunk is traced, inside _chunk_timer
        try:
            timers[name] = train_speed._chunk_timer(config, data, chunks=1, repeats=rounds)
        finally:
            optim.AdagradM._apply_rows = trainer_form
    names = list(timers)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            timers[name][0]()
    results = {name: timers[name][1]() for name in names}
    return {name: (r["ms_per_step_best"], r["ms_per_step_median"]) for name, r in results.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=37_500, help="rows of each table (default 37,500)")
    parser.add_argument("--touched", type=int, default=2_000, help="distinct rows per update (default 2,000)")
    parser.add_argument("--dim", type=int, default=100, help="floats per row (default 100)")
    parser.add_argument("--repeats", type=int, default=4, help="timed calls per row-update case (default 4)")
    parser.add_argument("--step", action="store_true", help="also time the whole official step, paired")
    parser.add_argument("--rounds", type=int, default=16, help="paired chunks per form with --step (default 16)")
    parser.add_argument("--build-dir", default="build/fused_rows", help="where the op is compiled")
    args = parser.parse_args(argv)
    if min(args.rows, args.touched, args.dim, args.repeats, args.rounds) < 1 or args.touched > args.rows:
        parser.error("expected positive sizes and --touched <= --rows")

    import tensorflow as tf
    from machine import describe, machine_line

    from gru4rec.train import single_threaded_ops_on_cpu

    single_threaded_ops_on_cpu()
    lib = tf.load_op_library(str(build(Path(args.build_dir))))
    print(machine_line(describe()), flush=True)
    shapes = [(5_000, 100, 1_999), (5_000, 100, 2_000), (3_000, 1, 777), (400, 64, 33), (400, 37, 31)]
    differing = {shape: differing_elements(lib, *shape) for shape in shapes}
    print(
        "bit-identical to the trainer's traced update (rows, dim, touched): "
        + ", ".join(f"{s}: {'yes' if d == 0 else f'NO, {d} elements differ'}" for s, d in differing.items())
    )
    if any(differing.values()):
        print("not timed: the fused op does not compute what the trainer computes with this TensorFlow")
        return 1
    print(
        f"row update, {args.touched:,} of {args.rows:,} rows x {args.dim} floats, three tables, "
        f"{UPDATES} updates per call, best and median of {args.repeats} calls (ms per update):"
    )
    for name, (best, median) in time_row_update(lib, args.rows, args.dim, args.touched, args.repeats).items():
        print(f"  {name:45s} {best:6.3f}  {median:6.3f}")
    if args.step:
        print(f"official step (train_speed.py's data), best and median of {args.rounds} paired chunks (ms per step):")
        for name, (best, median) in time_step(lib, args.rounds).items():
            print(f"  {name:45s} {best:6.3f}  {median:6.3f}")
    print(machine_line(describe()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
