"""The score product in both layouts: lanes by items (``hidden @ rows^T``, (B, U), the kit's) against items by lanes
(``rows @ hidden^T``, (U, B)), each with the two gradient products of training.

A training step of the official configuration scores the ~2,000 distinct items of the step for 32 lanes: one
(32 x 100) by (100 x ~2,000) product forward, and backward the gradient of the rows (U, H) and of the hidden state
(B, H). The trainer computes the lanes-by-items form (``gru4rec/train.py``, ``losses.cross_entropy_over_unique``).
This benchmark times forward + both gradients of each form on one thread per op (as the kit trains on a CPU with few
cores; the two gradient products are independent and may run side by side), the cases interleaved repeat by repeat,
and prints ms per step (best of ``--repeats``) and the rate against the machine's measured float32 matrix-product
rate (all cores). ``docs/speed.md`` says why the kit keeps its layout.

    python benchmarks/score_layout.py [--lanes 32] [--items 2000] [--units 100] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

STEPS = 200  # products per timed call, inside one tf.function (as the chunk loop runs them)


def make_cases(lanes: int, items: int, units: int) -> dict:
    """``{name: fn}``: each runs :data:`STEPS` forward + backward score products and returns a scalar."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    hidden = tf.constant(rng.standard_normal((lanes, units), dtype=np.float32))  # (B, H)
    rows = tf.constant(rng.standard_normal((items, units), dtype=np.float32) * 0.05)  # (U, H)
    upstream = tf.constant(rng.standard_normal((lanes, items), dtype=np.float32))  # (B, U) d loss / d scores
    upstream_t = tf.transpose(upstream)  # (U, B)

    def forward_and_gradients(h, r, items_by_lanes: bool):
        with tf.GradientTape() as tape:
            tape.watch([h, r])
            if items_by_lanes:
                total = tf.reduce_sum(tf.matmul(r, h, transpose_b=True) * upstream_t)  # scores (U, B)
            else:
                total = tf.reduce_sum(tf.matmul(h, r, transpose_b=True) * upstream)  # scores (B, U)
        return tape.gradient(total, [h, r]), total

    def looped(items_by_lanes: bool):
        @tf.function(autograph=False)
        def run():
            def body(i, acc):  # the forward's total is used too, so the forward product is not pruned
                (d_hidden, d_rows), total = forward_and_gradients(hidden + acc * 0.0, rows, items_by_lanes)
                return i + 1, acc + 0.0 * (d_hidden[0, 0] + d_rows[0, 0] + total)

            return tf.while_loop(lambda i, _acc: i < STEPS, body, [tf.constant(0), tf.constant(0.0)],
                                 parallel_iterations=1)[1]  # fmt: skip

        return run

    return {
        "lanes by items: hidden @ rows^T (B, U) (the kit)": looped(items_by_lanes=False),
        "items by lanes: rows @ hidden^T (U, B)": looped(items_by_lanes=True),
    }


def time_cases(cases: dict, repeats: int) -> dict:
    """Best ms per step of each case, the cases interleaved repeat by repeat: {name: ms}."""
    for fn in cases.values():
        fn()  # trace
    best = {name: float("inf") for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn().numpy()
            best[name] = min(best[name], (time.perf_counter() - start) / STEPS * 1000)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lanes", type=int, default=32, help="lanes of the mini-batch (batch_size)")
    parser.add_argument("--items", type=int, default=2_000, help="distinct items scored per step")
    parser.add_argument("--units", type=int, default=100, help="units of the last layer")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per case")
    args = parser.parse_args(argv)
    if min(args.lanes, args.items, args.units, args.repeats) < 1:
        parser.error("--lanes, --items, --units and --repeats: expected integers >= 1")

    import tensorflow as tf
    from machine import describe, machine_line

    tf.config.threading.set_intra_op_parallelism_threads(1)  # one thread per op, as the kit trains on few cores
    machine = describe()
    print(machine_line(machine))
    flops = 3 * 2 * args.lanes * args.items * args.units  # forward and two gradient products
    print(f"{args.lanes} lanes x {args.items:,} items x {args.units} units: {flops / 1e6:.1f} MFLOP per step "
          f"(forward + 2 gradients), one thread per op, TensorFlow {tf.__version__}")  # fmt: skip
    for name, ms in time_cases(make_cases(args.lanes, args.items, args.units), args.repeats).items():
        rate = flops / (ms / 1000) / 1e9
        share = rate / machine["sgemm_gflops"]
        print(f"  {ms:7.3f} ms per step, {rate:5.0f} GFLOP/s ({share:.0%} of the machine's)  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
