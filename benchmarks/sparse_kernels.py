"""TensorFlow's fused sparse-update kernels against the kit's gather -> arithmetic -> scatter, on the official
configuration's row update (about 2,000 distinct item rows of 100 floats per step in a 37,500-row table).

The kit's Adagrad with momentum (``gru4rec/optim.py``) reads the touched rows of the weights and of its two slots,
computes the update and writes the rows back with ``scatter_update``. TensorFlow has kernels that do a row update in
place in one op: ``ResourceSparseApplyKerasMomentum`` (``v = momentum * v - lr * g; w += v``, the official momentum
once Adagrad's normalised step is its ``g``) and ``ResourceSparseApplyAdagradV2`` (``acc += g^2; w -= lr * g /
(sqrt(acc) + eps)``: eps outside the root, unlike the official ``sqrt(acc + eps)``), and ``ResourceScatterAdd``. This
benchmark times each against the composite form on one thread per op (as the kit trains on a CPU with few cores)
and prints ms per update, best of ``--repeats``.

    python benchmarks/sparse_kernels.py [--rows 37500] [--touched 2000] [--dim 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def make_cases(n_rows: int, touched: int, dim: int, updates: int = 64) -> dict:
    """The timed functions, each applying ``updates`` row updates of ``touched`` distinct rows: {name: fn}."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    var = tf.Variable(rng.standard_normal((n_rows, dim), dtype=np.float32))
    acc = tf.Variable(tf.ones((n_rows, dim)))
    mom = tf.Variable(tf.zeros((n_rows, dim)))
    batches = [
        tf.constant(rng.choice(n_rows, touched, replace=False).astype(np.int32)) for _ in range(updates)
    ]  # (touched,) distinct row indices per update
    grad = tf.constant(rng.standard_normal((touched, dim), dtype=np.float32))  # (touched, dim)
    lr, momentum, eps = 0.1, 0.5, 1e-6

    @tf.function
    def momentum_fused():
        for rows in batches:
            tf.raw_ops.ResourceSparseApplyKerasMomentum(
                var=var.handle, accum=mom.handle, lr=lr, grad=grad, indices=rows, momentum=momentum,
                use_locking=False, use_nesterov=False,
            )  # fmt: skip

    @tf.function
    def momentum_composite():
        for rows in batches:
            velocity = momentum * tf.gather(mom, rows) - lr * grad
            mom.scatter_update(tf.IndexedSlices(velocity, rows))
            var.scatter_update(tf.IndexedSlices(tf.gather(var, rows) + velocity, rows))

    @tf.function
    def adagrad_fused():
        for rows in batches:
            tf.raw_ops.ResourceSparseApplyAdagradV2(
                var=var.handle, accum=acc.handle, lr=lr, epsilon=eps, grad=grad, indices=rows, use_locking=False
            )

    @tf.function
    def adagrad_composite():
        for rows in batches:
            acc_rows = tf.gather(acc, rows) + tf.square(grad)
            acc.scatter_update(tf.IndexedSlices(acc_rows, rows))
            step = grad * tf.math.rsqrt(acc_rows + eps)
            var.scatter_update(tf.IndexedSlices(tf.gather(var, rows) - lr * step, rows))

    @tf.function
    def adagrad_scatter_add():
        for rows in batches:
            acc.scatter_add(tf.IndexedSlices(tf.square(grad), rows))
            step = grad * tf.math.rsqrt(tf.gather(acc, rows) + eps)
            var.scatter_update(tf.IndexedSlices(tf.gather(var, rows) - lr * step, rows))

    cases = {
        "momentum: ResourceSparseApplyKerasMomentum": momentum_fused,
        "momentum: gather, arithmetic, scatter_update (the kit)": momentum_composite,
        "adagrad: ResourceSparseApplyAdagradV2": adagrad_fused,
        "adagrad: gather, arithmetic, scatter_update (the kit)": adagrad_composite,
        "adagrad: ResourceScatterAdd, then gather": adagrad_scatter_add,
    }
    return {name: (fn, var, updates) for name, fn in cases.items()}


def time_cases(cases: dict, repeats: int) -> dict:
    """Best ms per update of each case, the cases interleaved repeat by repeat: {name: ms}."""
    for fn, _var, _n in cases.values():
        fn()  # trace
    best = {name: float("inf") for name in cases}
    for _ in range(repeats):
        for name, (fn, var, updates) in cases.items():
            start = time.perf_counter()
            fn()
            var[0, 0].numpy()
            best[name] = min(best[name], (time.perf_counter() - start) / updates * 1000)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=37_500, help="rows of the table (items)")
    parser.add_argument("--touched", type=int, default=2_000, help="distinct rows updated per step")
    parser.add_argument("--dim", type=int, default=100, help="floats per row (layers)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of 64 updates per case")
    args = parser.parse_args(argv)

    import tensorflow as tf
    from machine import describe, machine_line

    tf.config.threading.set_intra_op_parallelism_threads(1)  # one thread per op, as the kit trains on few cores
    print(machine_line(describe()))
    print(f"{args.touched:,} distinct rows of {args.dim} floats per update, table of {args.rows:,} rows, "
          f"one thread per op, TensorFlow {tf.__version__}")  # fmt: skip
    results = time_cases(make_cases(args.rows, args.touched, args.dim), args.repeats)
    for name, ms in results.items():
        print(f"  {ms:7.3f} ms per update  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
