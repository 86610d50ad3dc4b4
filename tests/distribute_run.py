"""Subprocess entry for tests/test_distribute.py: one training run, single-device or data-parallel, on the CPU.

    python tests/distribute_run.py MODE OUT_DIR [--logical_cpus N] [--precision P]

MODE: none | mirrored | multiworker (TF_CONFIG from the environment). Writes OUT_DIR/result.json (losses, steps,
device, seconds) and OUT_DIR/weights.npz (every trainable variable; for mirrored, also the second replica's copies)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "data" / "tiny" / "rsc15_train_full.txt"

#: The configuration every run of the comparison uses (dropout 0: masks are drawn per replica).
SETTINGS = dict(n_epochs=1, n_sample=16, batch_size=16, layers=(16,), chunk_steps=32, log_every=10,
                dropout_p_hidden=0.0, device="cpu")  # fmt: skip
MAX_STEPS = 150


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode")
    parser.add_argument("out")
    parser.add_argument("--logical_cpus", type=int, default=1)
    parser.add_argument("--precision", default="fp32")
    args = parser.parse_args()
    import numpy as np
    import tensorflow as tf

    if args.logical_cpus > 1:  # before TensorFlow starts
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus)
    sys.path.insert(0, str(ROOT))
    from gru4rec.config import Config
    from gru4rec.io import read_sessions
    from gru4rec.session_data import SessionData
    from gru4rec.train import train

    data = SessionData.from_frame(read_sessions(TINY))
    cfg = Config.preset("official", **SETTINGS, distribute=args.mode, precision=args.precision)
    out = Path(args.out)
    print("training starts", flush=True)  # the tests wait for this line before signalling a blocked worker
    t0 = time.perf_counter()
    result = train(cfg, data, out / "run", progress=False, max_steps=MAX_STEPS)
    seconds = time.perf_counter() - t0
    logs = [json.loads(line) for line in (out / "run" / "train.jsonl").read_text().splitlines()]
    step_losses = [r["step_loss"] for r in logs if r["kind"] == "log"]
    steady = [r["step_time"] for r in logs if r["kind"] == "log" and r["step"] > cfg.chunk_steps]
    weights = {}
    for var in result.model.trainable_variables:
        name = var.name.split(":")[0].replace("/", "_")
        weights[name] = var.numpy()
        if hasattr(var, "values") and len(var.values) > 1:  # a mirrored variable: the last replica's copy too
            weights[name + "__last_replica"] = var.values[-1].numpy()
    np.savez(out / "weights.npz", **weights)
    meta = json.loads((out / "run" / "config.json").read_text())
    payload = {"epoch_losses": result.epoch_losses, "step_losses": step_losses, "steps": result.steps,
               "updates": result.updates, "device": result.device, "seconds": seconds,
               "ms_per_step": 1000 * result.seconds / result.steps, "distribute": meta["distribute"],
               "steady_ms_per_step": 1000 * float(np.mean(steady))}  # fmt: skip
    (out / "result.json").write_text(json.dumps(payload))


if __name__ == "__main__":
    main()
