"""The baselines' rows for the results tables: POP, S-POP, item-kNN, Markov, SR, SKNN, V-SKNN and STAN through the
kit's evaluator on test splits, written as one JSON file beside GRU4Rec's numbers.

    python benchmarks/baseline_results.py --out docs/results/baselines_test.json
    python benchmarks/baseline_results.py --params sr@ml-100k=docs/results/baselines_tuned/sr_ml100k.json \
        --set ml-100k=data/generated/ml-100k/movielens_train_full.txt,data/generated/ml-100k/movielens_test.txt \
        --out OUT.json

Default sets: ``small`` (the synthetic preset, generated on first use: ``train_full`` -> ``test``) and ``ml-100k``
(the files of ``gru4rec prepare movielens`` under ``data/generated/ml-100k/``; skipped with a message when they are
not there). Each method is fitted on the set's training file with its default parameters (``docs/baselines.md``),
and also with ``--params METHOD=FILE`` (every set) or ``METHOD@SET=FILE`` (that set only), a ``best_params.json``
of ``gru4rec tune --method METHOD``: the method is then reported twice, ``METHOD`` and ``METHOD (tuned)``. Every
prediction of the test file is ranked among all items, conservative ties. Per method: Recall@20, MRR@20, the
binomial standard error of the Recall@20 figure (``sqrt(p (1 - p) / n)``) and the standard error of the MRR@20 mean
(the reciprocal ranks' standard deviation over ``sqrt(n)``), the seconds to fit and to evaluate, and the parameters.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

METHODS = ["pop", "spop", "itemknn", "markov", "sr", "sknn", "vsknn", "stan"]
ML_DIR = os.path.join("data", "generated", "ml-100k")


def row(method: str, params: dict, train, test) -> dict:
    """One method's numbers on one test set (conservative ties, cut-off 20)."""
    from gru4rec.baselines import make_baseline
    from gru4rec.evaluate import evaluate

    start = time.perf_counter()
    scorer = make_baseline(method, train, **params)
    fitted = time.perf_counter()
    result = evaluate(scorer, test, cutoffs=(20,), return_ranks=True)
    done = time.perf_counter()
    ranks = result["ranks"]
    reciprocal = np.where(ranks <= 20, 1.0 / ranks, 0.0)
    n = len(ranks)
    recall = float(result["recall@20"])
    return {
        "recall@20": recall,
        "mrr@20": float(result["mrr@20"]),
        "recall@20_se": math.sqrt(recall * (1.0 - recall) / n),
        "mrr@20_se": float(reciprocal.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan"),
        "n_events": int(result["n_events"]),
        "fit_seconds": round(fitted - start, 2),
        "evaluate_seconds": round(done - fitted, 2),
        "params": scorer.params(),
    }


def _bad_input(message: str) -> None:
    """Bad input: one line on stderr, exit code 2."""
    print(f"baseline_results.py: {message}", file=sys.stderr)
    raise SystemExit(2)


def _shown(path: str) -> str:
    """``path`` relative to the working folder when it lies inside it (the files of a clone), else as given."""
    relative = os.path.relpath(os.path.abspath(path))
    return path if relative.startswith("..") else relative


def _sets(pairs: list[str]) -> dict:
    if pairs:
        sets = {}
        for pair in pairs:
            name, sep, files = pair.partition("=")
            train, comma, test = files.partition(",")
            if not (sep and comma and name and train and test):
                _bad_input(f"--set {pair!r}: expected NAME=TRAIN,TEST")
            for path in (train, test):
                if not os.path.isfile(path):
                    _bad_input(f"--set {name}: {path}: no such file")
            sets[name] = (train, test)
        return sets
    from gru4rec.datasets import ensure_preset

    files = ensure_preset("small", progress=None)
    sets = {"small": (str(files.train_full), str(files.test))}
    train, test = os.path.join(ML_DIR, "movielens_train_full.txt"), os.path.join(ML_DIR, "movielens_test.txt")
    if os.path.isfile(train) and os.path.isfile(test):
        sets["ml-100k"] = (train, test)
    else:
        print(f"ml-100k: {ML_DIR}/movielens_{{train_full,test}}.txt not found (gru4rec prepare movielens); skipped")
    return sets


def _tuned(pairs: list[str]) -> dict:
    """``--params METHOD[@SET]=FILE`` as ``{(method, set or None): {"params", "file"}}``, each checked by building
    the baseline."""
    if not pairs:
        return {}
    from gru4rec.baselines import BASELINES
    from gru4rec.tune import read_params  # imports TensorFlow: only when asked

    tuned = {}
    for pair in pairs:
        key, sep, path = pair.partition("=")
        method, at, data = key.partition("@")
        if not sep or not path or (at and not data):
            _bad_input(f"--params {pair!r}: expected METHOD=FILE or METHOD@SET=FILE")
        if method not in BASELINES:
            _bad_input(f"--params {pair!r}: unknown method {method!r}; choose from {', '.join(BASELINES)}")
        try:
            params = read_params(path)
            BASELINES[method](**params)
        except (OSError, TypeError, ValueError) as error:
            _bad_input(f"--params {method}: {error}")
        tuned[(method, data or None)] = {"params": params, "file": path}
    return tuned


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", action="append", default=[], metavar="NAME=TRAIN,TEST",
                        help="a data set (repeatable; default: small and ml-100k)")  # fmt: skip
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--params", action="append", default=[], metavar="METHOD[@SET]=FILE",
                        help="tuned parameters of a method (best_params.json of gru4rec tune), for every set or only "
                        "for SET; repeatable")  # fmt: skip
    parser.add_argument("--out", required=True, metavar="FILE", help="the JSON file to write")
    args = parser.parse_args(argv)
    tuned = _tuned(args.params)
    sets = _sets(args.set)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from machine import describe, machine_line

    from gru4rec import io as gio
    from gru4rec.session_data import SessionData

    machine = describe()
    print(machine_line(machine))
    out = {"command": "python benchmarks/baseline_results.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "protocol": "every prediction of the test file, all items ranked, conservative ties, cut-off 20",
           "machine": machine, "sets": {}}  # fmt: skip
    for name, (train_path, test_path) in sets.items():
        train = SessionData.from_frame(gio.read_sessions(train_path))
        test = SessionData.from_frame(gio.read_sessions(test_path), train.item_map)
        rows = {}
        for method in args.methods:
            chosen = tuned.get((method, name), tuned.get((method, None)))
            variants = [("default", {})] + ([("tuned", chosen["params"])] if chosen else [])
            for label, params in variants:
                key = method if label == "default" else f"{method} (tuned)"
                rows[key] = row(method, params, train, test)
                if label == "tuned":
                    rows[key]["params_file"] = chosen["file"]
                r = rows[key]
                print(f"{name:8} {key:15} R@20 {r['recall@20']:.4f} ± {r['recall@20_se']:.4f}  MRR@20 "
                      f"{r['mrr@20']:.4f} ± {r['mrr@20_se']:.4f}  ({r['n_events']} predictions, "
                      f"{r['evaluate_seconds']:.1f} s)", flush=True)  # fmt: skip
        out["sets"][name] = {"train": _shown(train_path), "test": _shown(test_path),
                             "n_train_events": int(train.n_events), "n_items": int(train.n_items),
                             "methods": rows}  # fmt: skip
    from gru4rec.io import atomic_write

    with atomic_write(args.out) as handle:
        json.dump(out, handle, indent=1)
        handle.write("\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
