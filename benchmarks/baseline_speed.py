"""The kit's SR / SKNN / V-SKNN / STAN against rn5l/session-rec's own code, on the same files in one run: Recall@20,
MRR@20 and the time to score the test set, with the speed ratio.

Nothing of session-rec is in this repository: ``--session-rec PATH`` is your clone of ``rn5l/session-rec``; its
classes (``algorithms/baselines/sr.py``, ``algorithms/knn/{sknn,vsknn,stan}.py``) and its evaluation loop
(``evaluation/evaluation.py``, ``evaluate_sessions``) run unchanged in a child process under ``--python`` (an
interpreter with ``numpy<2``, ``pandas``, ``pympler`` and ``psutil``: session-rec calls ``np.in1d`` and imports the
last two). On Python >= 3.8 the child sets ``time.clock = time.perf_counter`` first (the loop calls ``time.clock``,
which Python 3.8 removed). The child reads the training file as is and the test file with the kit's protocol (events
of items unknown to the training data dropped, then sessions shorter than two events); a thin wrapper around the
predictor records, at each ``predict_next`` call of session-rec's loop, the target's conservative rank among all
items, so both codes are scored with the kit's metrics (full catalogue, conservative ties). Session-rec's own
HitRate@20 / MRR@20 (its sort puts tied items in an arbitrary order) are printed beside them.

Times: the kit's ``evaluate`` call (fit excluded), and session-rec's ``evaluate_sessions`` call (fit excluded; the
wrapper's rank count is inside it: one comparison over the catalogue per event).

    python benchmarks/baseline_speed.py --session-rec PATH --python PY [--methods vsknn] [--train T --test S]

Without ``--train``/``--test`` it uses the ``small`` preset (generated on first use).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

DEFAULTS = {  # session-rec's conf/example_next.yml (sr, sknn, vsknn); STAN: its class defaults with k=500
    "sr": ("algorithms.baselines.sr", "SequentialRules", {"steps": 20, "weighting": "quadratic"}),
    "sknn": ("algorithms.knn.sknn", "ContextKNN", {"k": 100, "sample_size": 500, "similarity": "cosine"}),
    "vsknn": ("algorithms.knn.vsknn", "VMContextKNN", {"k": 500, "sample_size": 5000, "weighting": "quadratic",
                                                      "weighting_score": "div", "idf_weighting": 5}),
    "stan": ("algorithms.knn.stan", "STAN", {"k": 500, "sample_size": 5000, "lambda_spw": 1.02, "lambda_snh": 5,
                                             "lambda_inh": 2.05}),
}  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# The child process: session-rec's code, unchanged (imports only numpy, pandas and session-rec)


def run_reference(path: str, method: str, train_path: str, test_path: str) -> dict:
    import importlib

    import numpy as np
    import pandas as pd

    sys.path.insert(0, os.path.abspath(path))
    if not hasattr(time, "clock"):
        time.clock = time.perf_counter  # removed in Python 3.8; session-rec's loop calls it
    evaluation = importlib.import_module("evaluation.evaluation")
    accuracy = importlib.import_module("evaluation.metrics.accuracy")
    module, name, params = DEFAULTS[method]
    cls = getattr(importlib.import_module(module), name)

    train = pd.read_csv(train_path, sep="\t", dtype={"ItemId": np.int64})
    test = pd.read_csv(test_path, sep="\t", dtype={"ItemId": np.int64})
    test = test[test.ItemId.isin(train.ItemId)]
    lengths = test.groupby("SessionId").size()
    test = test[test.SessionId.isin(lengths[lengths > 1].index)]
    walk = test.sort_values(["SessionId", "Time"])  # the order evaluate_sessions walks
    sessions, items = walk.SessionId.to_numpy(), walk.ItemId.to_numpy()
    targets = [items[i] for i in range(1, len(items)) if sessions[i] == sessions[i - 1]]
    catalogue = train.ItemId.unique()  # what the loop predicts for
    position = pd.Series(np.arange(len(catalogue)), index=catalogue)

    class Recorder:
        def __init__(self, inner):
            self.inner, self.ranks = inner, []

        def predict_next(self, session_id, input_item_id, predict_for_item_ids, timestamp=0):
            preds = self.inner.predict_next(session_id, input_item_id, predict_for_item_ids, timestamp=timestamp)
            values = np.nan_to_num(preds.to_numpy(dtype=np.float64), nan=0.0)
            self.ranks.append(int((values >= values[position[targets[len(self.ranks)]]]).sum()))
            return preds

    model = cls(**params)
    start = time.perf_counter()
    model.fit(train)
    fit_seconds = time.perf_counter() - start
    recorder = Recorder(model)
    metrics = [accuracy.HitRate(20), accuracy.MRR(20)]
    start = time.perf_counter()
    result = evaluation.evaluate_sessions(recorder, metrics, test.copy(), train)
    seconds = time.perf_counter() - start
    ranks = np.asarray(recorder.ranks, dtype=np.float64)
    return {
        "recall@20": float(np.mean(ranks <= 20)),
        "mrr@20": float(np.mean(np.where(ranks <= 20, 1.0 / ranks, 0.0))),
        "own_hitrate@20": float(result[0][1]),
        "own_mrr@20": float(result[1][1]),
        "n_events": len(ranks),
        "fit_seconds": fit_seconds,
        "seconds": seconds,
        "params": params,
    }


# ----------------------------------------------------------------------------------------------------------------
# The parent: the kit, then the child, per method


def run_kit(method: str, train_path: str, test_path: str) -> dict:
    from gru4rec import io as gio
    from gru4rec.baselines import make_baseline
    from gru4rec.evaluate import evaluate
    from gru4rec.session_data import SessionData

    train = SessionData.from_frame(gio.read_sessions(train_path))
    test = SessionData.from_frame(gio.read_sessions(test_path), train.item_map)
    start = time.perf_counter()
    scorer = make_baseline(method, train)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    result = evaluate(scorer, test, cutoffs=(20,))
    seconds = time.perf_counter() - start
    return {"recall@20": result["recall@20"], "mrr@20": result["mrr@20"], "n_events": result["n_events"],
            "fit_seconds": fit_seconds, "seconds": seconds, "params": scorer.params()}  # fmt: skip


def _child(args: argparse.Namespace, method: str) -> dict:
    command = [args.python, os.path.abspath(__file__), "--part", "reference", "--session-rec", args.session_rec,
               "--methods", method, "--train", args.train, "--test", args.test]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"session-rec's {method} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--session-rec", required=True, metavar="PATH", help="a clone of rn5l/session-rec")
    parser.add_argument("--python", default=os.environ.get("GRU4REC_SESSION_REC_PYTHON", sys.executable),
                        help="interpreter for session-rec (numpy<2, pandas, pympler, psutil)")  # fmt: skip
    parser.add_argument("--methods", nargs="+", default=["vsknn"], choices=list(DEFAULTS))
    parser.add_argument("--train", metavar="PATH", help="training sessions (default: the small preset's train_full)")
    parser.add_argument("--test", metavar="PATH", help="test sessions (default: the small preset's test)")
    parser.add_argument("--test-every", type=int, default=1, metavar="N",
                        help="only every N-th test session (by SessionId), written to a temporary file that both "
                        "codes read (session-rec's loop needs about 0.1-0.2 s a prediction on long sessions)")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    parser.add_argument("--part", choices=["reference"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.part == "reference":
        print(json.dumps(run_reference(args.session_rec, args.methods[0], args.train, args.test)))
        return 0
    if not os.path.isfile(os.path.join(args.session_rec, "algorithms", "knn", "vsknn.py")):
        raise SystemExit(f"--session-rec {args.session_rec}: not a clone of rn5l/session-rec (no algorithms/knn)")
    if (args.train is None) != (args.test is None):
        raise SystemExit("give both --train and --test, or neither (the small preset)")
    if args.train is None:
        from gru4rec.datasets import ensure_preset

        files = ensure_preset("small")
        args.train, args.test = str(files.train_full), str(files.test)
    if args.test_every < 1:
        raise SystemExit(f"--test-every must be >= 1, got {args.test_every}")
    with tempfile.TemporaryDirectory() as scratch:
        if args.test_every > 1:
            args.test = _every_nth_session(args.test, args.test_every, scratch)
        return _compare(args)


def _every_nth_session(path: str, every: int, folder: str) -> str:
    """A copy of the test file with only every ``every``-th session (sessions ordered by SessionId)."""
    import numpy as np
    import pandas as pd

    test = pd.read_csv(path, sep="\t")
    kept = np.sort(test.SessionId.unique())[::every]
    out = os.path.join(folder, f"test_every_{every}.txt")
    test[test.SessionId.isin(kept)].to_csv(out, sep="\t", index=False)
    print(f"test: every {every}th session of {path}: {len(kept)} sessions")
    return out


def _compare(args: argparse.Namespace) -> int:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from machine import describe, machine_line

    print(machine_line(describe()))
    print(f"train {args.train}\ntest  {args.test}")
    header = (f"{'method':7} {'kit R@20':>9} {'MRR@20':>8} {'s-rec R@20':>10} {'MRR@20':>8} {'dR@20':>8} "
              f"{'dMRR@20':>8} {'kit s':>7} {'s-rec s':>8} {'ratio':>6}")  # fmt: skip
    print(header)
    rows = {}
    for method in args.methods:
        kit = run_kit(method, args.train, args.test)
        ref = _child(args, method)
        if kit["n_events"] != ref["n_events"]:
            raise SystemExit(f"{method}: the kit ranked {kit['n_events']} events, session-rec {ref['n_events']}")
        ratio = ref["seconds"] / kit["seconds"]
        rows[method] = {"kit": kit, "session_rec": ref, "speed_ratio": ratio}
        print(f"{method:7} {kit['recall@20']:9.4f} {kit['mrr@20']:8.4f} {ref['recall@20']:10.4f} "
              f"{ref['mrr@20']:8.4f} {kit['recall@20'] - ref['recall@20']:+8.4f} "
              f"{kit['mrr@20'] - ref['mrr@20']:+8.4f} {kit['seconds']:7.1f} {ref['seconds']:8.1f} {ratio:5.1f}x",
              flush=True)  # fmt: skip
        print(f"        {kit['n_events']} predictions; session-rec's own HitRate@20 {ref['own_hitrate@20']:.4f}, "
              f"MRR@20 {ref['own_mrr@20']:.4f} (its sort orders tied items arbitrarily)", flush=True)
    if args.json:
        from gru4rec.io import atomic_write

        with atomic_write(args.json) as handle:
            json.dump({"train": args.train, "test": args.test, "test_every": args.test_every, "machine": describe(),
                       "methods": rows}, handle, indent=2)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
