"""The official GRU4Rec TensorFlow code timed on the benchmarks' own data, so that the kit's speed is a ratio
measured in one run on one machine (``train_speed.py --official PATH``, ``eval_speed.py --official PATH``).

Nothing of the official code is in this repository: PATH is your clone of ``hidasib/GRU4Rec_Tensorflow_Official``
(files ``gru4rec_tf.py`` and ``evaluation.py``, used unchanged). It needs two packages the kit does not install:
``pip install joblib tf_keras`` (its ``AdagradM`` is written for the Keras 2 optimizer API, so it runs with
``TF_USE_LEGACY_KERAS=1``, which this module sets for its child process). Each measurement runs in a child
process of its own (``--part``), one after the other, with TensorFlow's default thread settings.

Training: ``GRU4Rec.fit`` runs unchanged; its ``_training_step`` (the official ``tf.function``) is wrapped only to
record the time at which each step starts. The official loop fetches the loss (``L.numpy()``) after every step, so
step ``i`` takes ``start[i + 1] - start[i]``: the official Python iterator (with its negative-sample cache refills),
the compiled step and the fetch. The first ``warmup_steps`` steps (tracing, optimizer build) are not timed, and
only full-batch steps count (the ragged end of an epoch has smaller batches, each size a retrace). Events are the
(input, next item) pairs of the timed steps.

Evaluation: ``evaluation.batch_eval`` (its defaults: batch 512, cut-off 20, conservative ties) of an untrained model
(``fit`` with ``n_epochs=0`` builds the item map, the model and the optimizer), one warm-up call, then the best of
``repeats`` timed calls, each the whole call; predictions = test events minus test sessions.

Per epoch (``--part epoch:seed|epoch:official --flavour tf|pytorch``): ``fit`` with two epochs, unchanged; the
second epoch's own printed time (its loop, sampler and host work; no start-up) is the figure. The PyTorch code runs
on the CPU. ``GRU4REC_OFFICIAL_PYTHON`` names the interpreter of the child process (one with torch / tf_keras).

    python benchmarks/official_reference.py --official PATH --part train:seed|train:official|epoch:...|eval
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

# The two configurations the kit's train_speed.py times, in the official code's names: the same architecture
# (the seed's: a separate input embedding of 100, dropout 0.5 on the hidden layer, in-batch negatives only; the
# official code's own optimizer, Adagrad, stands in for the seed's Adam) and the official RSC15-best parameters.
OFFICIAL_PARAMS = {
    "seed": dict(layers=[100], batch_size=50, loss="cross-entropy", n_sample=0, constrained_embedding=False,
                 embedding=100, dropout_p_embed=0.0, dropout_p_hidden=0.5, learning_rate=0.001),
    "official": dict(layers=[100], batch_size=32, loss="cross-entropy", constrained_embedding=True, embedding=0,
                     dropout_p_embed=0.0, dropout_p_hidden=0.4, learning_rate=0.2, momentum=0.2, n_sample=2048,
                     sample_alpha=0.5, bpreg=0.0, logq=1.0),
}  # fmt: skip


class _Stop(Exception):
    """Raised by the step wrapper once enough steps were timed (stops ``fit``)."""


def _import_official(path: str):
    sys.path.insert(0, os.path.abspath(path))
    try:
        from gru4rec_tf import GRU4Rec
    except ImportError as error:
        raise SystemExit(f"cannot import the official code from {path}: {error} "
                         f"(it needs gru4rec_tf.py there, and `pip install joblib tf_keras`)") from error  # fmt: skip
    return GRU4Rec


def time_training(
    path: str, name: str, frame, seconds: float = 30.0, warmup_steps: int = 200, repeats: int = 3
) -> dict:
    """Steady-state training speed of the official code on ``frame`` (SessionId, ItemId, Time): the timed steps
    are split into ``repeats`` consecutive windows; the best and the median window are reported."""
    import numpy as np

    GRU4Rec = _import_official(path)
    params = OFFICIAL_PARAMS[name]
    gru = GRU4Rec(n_epochs=10**6, **params)  # stopped by the wrapper
    step = gru._training_step
    starts, sizes = [], []

    def timed_step(X, H, Y):
        now = time.perf_counter()
        starts.append(now)
        sizes.append(int(X.shape[0]))
        if len(starts) > warmup_steps + 1 and now - starts[warmup_steps] > seconds:
            raise _Stop
        return step(X, H, Y)

    gru._training_step = timed_step
    try:
        gru.fit(frame)
    except _Stop:
        pass
    durations = np.diff(np.asarray(starts))
    sizes = np.asarray(sizes[:-1])
    timed = (np.arange(len(durations)) >= warmup_steps) & (sizes == params["batch_size"])
    durations, sizes = durations[timed], sizes[timed]
    if len(durations) < repeats:
        raise SystemExit("too few full-batch steps were timed after the warm-up; raise the seconds")
    # ``repeats`` consecutive windows of the timed steps, like the kit's repeats: best and median window
    windows = [(float(d.sum()), int(n.sum()), len(d))
               for d, n in zip(np.array_split(durations, repeats), np.array_split(sizes, repeats))]  # fmt: skip
    rates = [events / seconds for seconds, events, _ in windows]
    step_ms = [1000 * seconds / steps for seconds, _, steps in windows]
    return {"events_per_s_best": max(rates), "events_per_s_median": float(np.median(rates)),
            "ms_per_step_best": min(step_ms), "ms_per_step_median": float(np.median(step_ms)),
            "timed_steps": int(len(durations)), "timed_events": int(sizes.sum()),
            "timed_seconds": float(durations.sum()), "warmup_steps": warmup_steps}  # fmt: skip


def time_epoch(path: str, flavour: str, name: str, frame) -> dict:
    """Wall time of one training epoch of the official TF (``flavour="tf"``) or PyTorch code on ``frame``: ``fit``
    with ``n_epochs=2`` runs unchanged and prints each epoch's seconds; the second epoch's is reported (the first
    includes tracing)."""
    import contextlib
    import io
    import re

    params = dict(OFFICIAL_PARAMS[name], n_epochs=2)
    if flavour == "tf":
        GRU4Rec = _import_official(path)
    else:
        sys.path.insert(0, os.path.abspath(path))
        import torch
        from gru4rec_pytorch import GRU4Rec

        params["device"] = torch.device("cpu")
    gru = GRU4Rec(**params)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        gru.fit(frame)
    seconds = [float(m) for m in re.findall(r"Epoch\s*\d+\s*-->.*?\((\d+(?:\.\d+)?)s\)", printed.getvalue())]
    if len(seconds) < 2:
        raise SystemExit(f"the official {flavour} code printed no epoch times: {printed.getvalue()[-500:]}")
    return {"epoch_seconds": seconds[-1], "all_epoch_seconds": seconds, "flavour": flavour}


def time_evaluation(path: str, train_frame, test_frame, repeats: int = 2) -> dict:
    """Evaluation speed of the official code (untrained model, official RSC15-best architecture)."""
    GRU4Rec = _import_official(path)
    from evaluation import batch_eval

    n_predictions = int(len(test_frame) - test_frame.SessionId.nunique())
    if test_frame.SessionId.nunique() < 512:
        raise SystemExit("the official batch_eval needs at least 512 test sessions (its batch size)")
    gru = GRU4Rec(n_epochs=0, **OFFICIAL_PARAMS["official"])
    gru.fit(train_frame)  # item map, model, optimizer; no training
    batch_eval(gru, test_frame)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        batch_eval(gru, test_frame)
        times.append(time.perf_counter() - start)
    return {"events_per_s": n_predictions / min(times), "seconds": min(times), "n_events": n_predictions,
            "batch_size": 512}  # fmt: skip


def run_part(path: str, part: str, **options) -> dict:
    """One measurement (``train:seed``, ``train:official`` or ``eval``) in a child process of its own."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.json")
        command = [sys.executable, os.path.abspath(__file__), "--official", path, "--part", part, "--json", out]
        for key, value in options.items():
            command += [f"--{key.replace('_', '-')}", str(value)]
        command[0] = os.environ.get("GRU4REC_OFFICIAL_PYTHON", sys.executable)  # e.g. a venv with torch, tf_keras
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stdout[-2000:] + done.stderr[-4000:])
            raise SystemExit(f"the official code's {part} measurement failed (exit {done.returncode})")
        with open(out) as handle:
            return json.load(handle)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", required=True, metavar="PATH", help="clone of GRU4Rec_Tensorflow_Official")
    parser.add_argument("--part", required=True,
                        choices=["train:seed", "train:official", "epoch:seed", "epoch:official", "eval"])
    parser.add_argument("--flavour", choices=["tf", "pytorch"], default="tf", help="which official code (epoch:)")
    parser.add_argument("--seconds", type=float, default=30.0, help="timed training seconds (default 30)")
    parser.add_argument("--warmup-steps", type=int, default=200)
    parser.add_argument("--items", type=int, default=37_500, help="catalogue size for eval")
    parser.add_argument("--events", type=int, default=30_000, help="test events for eval")
    parser.add_argument("--repeats", type=int, default=3, help="training windows / evaluation passes")
    parser.add_argument("--json", metavar="OUT", required=True)
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if args.part.startswith("epoch:"):
        from train_speed import synthetic_frame

        result = time_epoch(args.official, args.flavour, args.part[6:], synthetic_frame())
    elif args.part.startswith("train:"):
        from train_speed import synthetic_frame

        result = time_training(args.official, args.part[6:], synthetic_frame(), args.seconds, args.warmup_steps,
                               args.repeats)
    else:
        from eval_speed import random_test_frame
        from train_speed import synthetic_frame

        train = synthetic_frame(n_items=args.items)
        result = time_evaluation(args.official, train, random_test_frame(args.items, args.events), args.repeats)
    # This script runs under the official code's interpreter, which need not have the kit's dependencies: the
    # result goes to a temporary file beside --json, renamed into place (never written through a link).
    folder = os.path.dirname(os.path.abspath(args.json))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(args.json)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(result, handle)
        os.replace(tmp, args.json)
    except BaseException:
        os.unlink(tmp)
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
