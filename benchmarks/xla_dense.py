"""XLA on the dense part of the official configuration's step only, against the same part as the kit runs it.

The dense part is what XLA could compile with static shapes: the GRU layer on the batch's input rows, the
scores of the batch against the step's distinct items, the cross-entropy with logQ over them
(``losses.cross_entropy_over_unique``) and the gradients of all of it. The row gathers from the item tables,
``tf.unique`` and the optimizer's row updates stay outside (XLA on CPU has no kernel for them: compiling the whole
step was 18x slower). The distinct rows are padded to their static bound, ``batch + (batch + n_sample)``. The part
runs 128 times inside one ``tf.function`` (as the kit's chunk does), compiled with ``jit_compile=True`` or not, the
two interleaved; ms per step, best of 3.

    python benchmarks/xla_dense.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

STEPS = 128  # steps per timed call, as the kit's chunk


def dense_step_functions(n_items: int = 37_500) -> dict:
    """``{"plain": fn, "xla": fn}``: each runs the dense part ``STEPS`` times carrying the GRU state."""
    import tensorflow as tf

    from gru4rec.config import Config
    from gru4rec.losses import cross_entropy_over_unique
    from gru4rec.model import GRU4RecModel

    config = Config.preset("official")
    batch, n_cols = config.batch_size, config.batch_size + config.n_sample
    bound = n_cols + batch  # static bound on the distinct rows of a step
    units = config.layers[0]
    model = GRU4RecModel(n_items, config)
    rng = np.random.default_rng(0)
    table = tf.constant(rng.standard_normal((bound, units), dtype=np.float32) * 0.05)  # (U, H) distinct rows
    bias = tf.zeros((bound,))  # (U,)
    seg_y = tf.constant(rng.integers(0, bound - 100, n_cols).astype(np.int32))  # (M,) column -> distinct row
    seg_x = tf.constant(rng.integers(0, bound, batch).astype(np.int32))  # (B,) lane input -> distinct row
    row_mask, col_mask = tf.ones((batch,)), tf.ones((n_cols,))
    adjust = tf.constant(rng.standard_normal(n_cols).astype(np.float32))  # (M,) logQ of each column
    seed = tf.constant([1, 2], tf.int64)
    dense = model.dense_variables

    def dense_part(table, bias, state):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch([table, bias] + dense)
            hidden, state = model.stack(tf.gather(table, seg_x), state, training=True, seed=seed)  # (B, H)
            scores = tf.nn.bias_add(tf.matmul(hidden, table, transpose_b=True), bias)  # (B, U)
            loss = tf.reduce_sum(cross_entropy_over_unique(scores, seg_y, row_mask, col_mask, adjust)) / batch
        return tape.gradient(loss, [table, bias] + dense), state

    def looped(part):
        @tf.function
        def run():
            state, total = [tf.zeros((batch, units))], tf.zeros(())
            for _ in tf.range(STEPS):
                grads, state = part(table, bias, state)
                total += tf.reduce_sum(grads[0][0])
            return total

        return run

    return {"plain": looped(tf.function(dense_part)), "xla": looped(tf.function(dense_part, jit_compile=True))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per variant (interleaved)")
    args = parser.parse_args(argv)

    from gru4rec.train import single_threaded_ops_on_cpu

    single_threaded_ops_on_cpu()  # as the kit trains on a CPU with few cores
    from machine import describe, machine_line

    print(machine_line(describe()))
    functions = dense_step_functions()
    for run in functions.values():
        run().numpy()  # trace and compile
    best = {name: float("inf") for name in functions}
    for _ in range(args.repeats):
        for name, run in functions.items():
            start = time.perf_counter()
            run().numpy()
            best[name] = min(best[name], (time.perf_counter() - start) / STEPS * 1000)
    for name, ms in best.items():
        print(f"  {name:5s}: {ms:.3f} ms per step (dense part only)")
    print(f"  XLA / plain: {best['xla'] / best['plain']:.2f}x the time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
