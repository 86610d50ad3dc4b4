"""The kit's SR / SKNN / V-SKNN / STAN against reference runs of rn5l/session-rec's own code: Recall@20, MRR@20 and
how many per-event ranks agree, on the files each reference names.

A reference is the JSON written by a runner outside this repository that ran session-rec's classes and its
``evaluate_sessions`` loop unchanged and recorded, per ``predict_next`` call, the target's rank among all items with
the kit's tie modes (fields used here: ``method``, ``params``, ``train``, ``test``, ``n_events``,
``predict_seconds``, ``metrics``, ``events[*].conservative``, ``source``). Several references of one method on one
training file (e.g. the test set cut into chunks of sessions) are pooled: the table counts all their events.

    python benchmarks/session_rec_compare.py REF.json [REF.json ...] [--json OUT]
    python benchmarks/session_rec_compare.py REF.json ... --fixture tests/fixtures/session_rec_reference.json \\
        --fixture-sessions 60

For each reference the kit fits the method with its default parameters (checked equal to the reference's) on the
reference's training file and evaluates the reference's test file (conservative ties, all predictions); its ranks
are put in session-rec's order (SessionId, then time) and compared event by event. Times: session-rec's
``evaluate_sessions`` call as the reference recorded it, and the kit's ``evaluate`` call here (fit excluded); they
were not measured side by side (``benchmarks/baseline_speed.py`` does that).

``--fixture OUT`` also writes what ``tests/test_session_rec_reference.py`` checks: every reference's metrics, and for
references whose test file is the ``small`` preset's, the conservative ranks of the first ``--fixture-sessions``
test sessions (by SessionId).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict

import numpy as np

DATA_NAMES = {"rsc15_test.txt": "small", "movielens_test.txt": "ml-100k"}


def data_name(test_path: str) -> str:
    """``small`` / ``ml-100k`` by the test file's name (a chunk of it: ``ml-100k``), else the file's stem."""
    base = os.path.basename(test_path)
    if base in DATA_NAMES:
        return DATA_NAMES[base]
    return "ml-100k" if base.startswith("test_chunk") else os.path.splitext(base)[0]


def kit_ranks(method: str, train_path: str, test_path: str, reference_params: dict) -> dict:
    """The kit's conservative ranks on the files, in session-rec's order, with its seconds and parameters."""
    from gru4rec import io as gio
    from gru4rec.baselines import make_baseline
    from gru4rec.evaluate import evaluate
    from gru4rec.session_data import SessionData

    train = SessionData.from_frame(gio.read_sessions(train_path))
    test = SessionData.from_frame(gio.read_sessions(test_path), train.item_map)
    scorer = make_baseline(method, train)
    params = scorer.params()
    differing = {k: (v, params.get(k)) for k, v in reference_params.items() if params.get(k) != v}
    if differing:
        raise SystemExit(f"{method}: the kit's defaults differ from the reference's parameters: {differing}")
    start = time.perf_counter()
    result = evaluate(scorer, test, cutoffs=(20,), return_ranks=True)
    seconds = time.perf_counter() - start
    session_ids = test.session_ids[result["session_index"]]
    ranks = result["ranks"][np.lexsort((result["positions"], session_ids))]
    return {"ranks": ranks, "seconds": seconds, "params": params}


def metrics(ranks: np.ndarray) -> dict:
    return {"recall@20": float(np.mean(ranks <= 20)), "mrr@20": float(np.mean(np.where(ranks <= 20, 1.0 / ranks, 0)))}


def compare(paths: list[str]) -> dict:
    """``{data: {method: row}}`` for the references at ``paths`` (pooled per data set and method)."""
    pooled: dict = defaultdict(lambda: defaultdict(lambda: {"kit": [], "ref": [], "kit_s": 0.0, "ref_s": 0.0,
                                                            "files": [], "source": None}))  # fmt: skip
    for path in paths:
        with open(path) as handle:
            reference = json.load(handle)
        method = reference["method"]
        kit = kit_ranks(method, reference["train"], reference["test"], reference["params"])
        ref = np.asarray([e["conservative"] for e in reference["events"]], dtype=np.float64)
        if len(ref) != len(kit["ranks"]) or len(ref) != reference["n_events"]:
            raise SystemExit(f"{path}: session-rec ranked {len(ref)} events, the kit {len(kit['ranks'])}")
        entry = pooled[data_name(reference["test"])][method]
        entry["kit"].append(kit["ranks"])
        entry["ref"].append(ref)
        entry["kit_s"] += kit["seconds"]
        entry["ref_s"] += reference["predict_seconds"]
        entry["files"].append({"reference": os.path.basename(path), "train": reference["train"],
                               "test": reference["test"]})  # fmt: skip
        entry["source"], entry["params"] = reference["source"], kit["params"]
    table: dict = {}
    for data, methods in pooled.items():
        for method, entry in methods.items():
            kit, ref = np.concatenate(entry["kit"]), np.concatenate(entry["ref"])
            row = {"n_events": len(kit), "kit": metrics(kit), "session_rec": metrics(ref),
                   "equal_ranks": float(np.mean(kit == ref)), "kit_seconds": entry["kit_s"],
                   "session_rec_seconds": entry["ref_s"], "params": entry["params"], "files": entry["files"],
                   "source": entry["source"]}  # fmt: skip
            row["difference"] = {k: row["kit"][k] - row["session_rec"][k] for k in row["kit"]}
            table.setdefault(data, {})[method] = row
    return table


def fixture(paths: list[str], table: dict, n_sessions: int) -> dict:
    """The reference metrics of every data set and method, and the ranks of the first ``n_sessions`` test sessions
    of the ``small`` references."""
    out: dict = {
        "note": "Reference numbers of rn5l/session-rec's own classes and evaluate_sessions loop, run unchanged by a "
        "runner outside this repository (test events of unknown items dropped, then sessions shorter than two; the "
        "target's rank among all items recorded per predict_next call, conservative ties). Written by "
        "benchmarks/session_rec_compare.py --fixture. 'metrics': all predictions of the test file(s); "
        "'small_subset': the conservative ranks of the first sessions (by SessionId) of the small preset's test file.",
        "metrics": {},
        "small_subset": {"n_sessions": n_sessions, "ranks": {}},
    }
    for data, methods in table.items():
        for method, row in methods.items():
            out["source"] = {k: v for k, v in row["source"].items() if k != "class"}
            out["source"]["command"] = ("python sr_runner.py --method METHOD --train TRAIN --test TEST --out REF.json "
                                        "(the runner outside this repository; session-rec's default parameters)")
            out["metrics"].setdefault(data, {})[method] = {
                "class": row["source"]["class"],
                "n_events": row["n_events"], "params": {k: row["params"][k] for k in sorted(row["params"])},
                "session_rec": row["session_rec"], "kit": row["kit"], "equal_ranks": row["equal_ranks"],
                "session_rec_seconds": round(row["session_rec_seconds"], 1),
                "test_files": sorted(os.path.basename(f["test"]) for f in row["files"]),
            }  # fmt: skip
    for path in paths:
        with open(path) as handle:
            reference = json.load(handle)
        if data_name(reference["test"]) != "small":
            continue
        import pandas as pd

        test = pd.read_csv(reference["test"], sep="\t")
        train_items = pd.read_csv(reference["train"], sep="\t", usecols=["ItemId"]).ItemId.unique()
        test = test[test.ItemId.isin(train_items)]
        lengths = test.groupby("SessionId").size()
        sessions = np.sort(lengths[lengths > 1].index.to_numpy())[:n_sessions]
        n_events = int((lengths[sessions] - 1).sum())
        out["small_subset"]["session_ids"] = [int(s) for s in sessions]
        out["small_subset"]["ranks"][reference["method"]] = [int(e["conservative"]) for e in
                                                             reference["events"][:n_events]]  # fmt: skip
    return out


def print_table(table: dict) -> None:
    print(f"{'data':8} {'method':7} {'events':>7} {'kit R@20':>9} {'MRR@20':>8} {'s-rec R@20':>10} {'MRR@20':>8} "
          f"{'dR@20':>8} {'dMRR@20':>8} {'equal':>7} {'kit s':>7} {'s-rec s':>8}")  # fmt: skip
    for data, methods in table.items():
        for method, row in methods.items():
            kit, ref, diff = row["kit"], row["session_rec"], row["difference"]
            print(f"{data:8} {method:7} {row['n_events']:7d} {kit['recall@20']:9.4f} {kit['mrr@20']:8.4f} "
                  f"{ref['recall@20']:10.4f} {ref['mrr@20']:8.4f} {diff['recall@20']:+8.4f} {diff['mrr@20']:+8.4f} "
                  f"{row['equal_ranks']:7.1%} {row['kit_seconds']:7.1f} {row['session_rec_seconds']:8.1f}")  # fmt: skip


def _write_json(path: str, payload: dict) -> None:
    from gru4rec.io import atomic_write

    with atomic_write(path) as handle:
        json.dump(payload, handle, indent=1)
        handle.write("\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("references", nargs="+", metavar="REF.json", help="reference runs of session-rec")
    parser.add_argument("--json", metavar="OUT", help="also write the table as JSON")
    parser.add_argument("--fixture", metavar="OUT", help="write the test fixture (see above)")
    parser.add_argument("--fixture-sessions", type=int, default=60, metavar="N")
    args = parser.parse_args(argv)
    for path in args.references:
        if not os.path.isfile(path):
            parser.error(f"{path}: no such reference file")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from machine import describe, machine_line

    print(machine_line(describe()))
    table = compare(args.references)
    print_table(table)
    if args.json:
        _write_json(args.json, {"machine": describe(), "table": table})
    if args.fixture:
        _write_json(args.fixture, fixture(args.references, table, args.fixture_sessions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
