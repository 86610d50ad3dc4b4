"""``gru4rec evaluate``, ``gru4rec baseline``, ``gru4rec recommend`` and ``gru4rec export``."""

from __future__ import annotations

import argparse
import os
import sys
import time

from gru4rec.cli import CliError

DEFAULT_CUTOFFS = [1, 5, 10, 20]


def _add_eval_options(parser: argparse.ArgumentParser) -> None:
    from gru4rec.evaluate import TIE_MODES

    parser.add_argument("--test", required=True, metavar="PATH", help="test sessions (GRU4Rec TSV)")
    parser.add_argument(
        "--cutoffs", type=int, nargs="+", default=DEFAULT_CUTOFFS, metavar="K",
        help="cut-offs K for Recall@K, MRR@K, coverage@K (default: 1 5 10 20)",
    )  # fmt: skip
    parser.add_argument(
        "--tie-mode", default="conservative", choices=TIE_MODES,
        help="how a score equal to the target's counts: conservative (against the model, default), standard "
        "(for it), median (split); 'seed' is the seed's optimistic counting (standard ties, hit when rank < K)",
    )  # fmt: skip
    parser.add_argument(
        "--batch-size", type=int, default=512, metavar="N",
        help="sessions evaluated side by side (speed only; default 512)",
    )  # fmt: skip
    parser.add_argument("--json", metavar="OUT", help="write the metrics and settings to this JSON file")
    _add_sampled_options(parser)


def _add_sampled_options(parser: argparse.ArgumentParser) -> None:
    """``--sampled N``: the biased protocol of papers that rank the target among N sampled negatives only."""
    from gru4rec.sampled_eval import SAMPLINGS

    parser.add_argument(
        "--sampled", type=int, metavar="N",
        help="BIASED, to reproduce papers that use sampled metrics: rank the target among N sampled negatives "
        "instead of every item (e.g. 100); the metrics file records the protocol",
    )  # fmt: skip
    parser.add_argument(
        "--sampling", choices=SAMPLINGS, default="uniform",
        help="with --sampled: negatives drawn uniformly or in proportion to their training support (default uniform)",
    )  # fmt: skip
    parser.add_argument("--sampling-seed", type=int, default=0, metavar="S", help="with --sampled: seed of the draw")


def _run_protocol(scorer, test, args: argparse.Namespace, honest_command: str, item_support=None) -> dict:
    """The honest evaluation, or with ``--sampled`` the sampled one after a one-line warning on stderr."""
    from gru4rec.evaluate import evaluate

    if args.sampled is None:
        return evaluate(scorer, test, cutoffs=args.cutoffs, tie_mode=args.tie_mode, batch_size=args.batch_size)
    from gru4rec.sampled_eval import biased_warning, evaluate_sampled

    if args.sampled < 1 or args.sampled >= test.n_items:
        raise CliError(f"--sampled {args.sampled}: expected a number of negatives in 1 .. {test.n_items - 1} "
                       f"(the catalogue has {test.n_items} items)")
    if args.sampling == "popularity" and item_support is None:
        raise CliError("--sampling popularity: the training support of the items is unknown (the run folder has no "
                       "item_support.npy); pass the training sessions with --train PATH")
    print(biased_warning(args.sampled, args.sampling, honest_command), file=sys.stderr)
    try:
        return evaluate_sampled(scorer, test, args.sampled, args.sampling, seed=args.sampling_seed,
                                cutoffs=args.cutoffs, tie_mode=args.tie_mode, batch_size=args.batch_size,
                                item_support=item_support)
    except ValueError as error:  # e.g. too few items with training support for popularity sampling
        raise CliError(f"--sampled {args.sampled} --sampling {args.sampling}: {error}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        "evaluate",
        help="Recall@K, MRR@K and coverage@K of a trained model on test sessions",
        description="Rank the true next item of every test event among all items with the model of a run folder.",
    )
    evaluate.add_argument("--model", required=True, metavar="RUN_DIR", help="a training run folder")
    evaluate.add_argument("--epoch", type=int, metavar="E", help="checkpoint epoch (default: the last)")
    _add_eval_options(evaluate)
    evaluate.add_argument(
        "--train", metavar="PATH", help="training sessions, only to report popularity@K (mean normalised support)"
    )
    evaluate.set_defaults(func=run_evaluate)

    from gru4rec.baselines import BASELINES

    baseline = subparsers.add_parser(
        "baseline",
        help="evaluate a baseline: the GRU4Rec paper's (POP, S-POP, item-kNN, Markov) or session-rec's (SR, SKNN, "
        "V-SKNN, STAN)",
        description="Fit a baseline on the training sessions and evaluate it exactly as a model.",
    )
    baseline.add_argument("--method", required=True, choices=list(BASELINES), help="which baseline")
    baseline.add_argument("--train", required=True, metavar="PATH", help="training sessions (GRU4Rec TSV)")
    _add_eval_options(baseline)
    baseline.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE",
        help="a baseline parameter, e.g. n_sims=100, lmbd=20, alpha=0.5 (itemknn), window=1 (markov), "
        "tie_breaker=false; steps=20, weighting=quadratic (sr); k=100, sample_size=500, similarity=cosine (sknn); "
        "k=500, sample_size=5000, weighting=quadratic, weighting_score=div, idf_weighting=5 (vsknn); k=500, "
        "sample_size=5000, lambda_spw=1.02, lambda_snh=5, lambda_inh=2.05 (stan); names and defaults as "
        "rn5l/session-rec (docs/baselines.md); repeatable",
    )  # fmt: skip
    baseline.set_defaults(func=run_baseline)

    recommend = subparsers.add_parser(
        "recommend",
        help="top-k next items for a session with a trained model",
        description="Print the top-k next items after a session's items (original ItemIds, oldest first).",
    )
    recommend.add_argument("--model", required=True, metavar="RUN_DIR", help="a training run folder")
    recommend.add_argument("--epoch", type=int, metavar="E", help="checkpoint epoch (default: the last)")
    recommend.add_argument(
        "--items", required=True, metavar="ID,ID,...", help="the session's item ids, comma-separated, oldest first"
    )
    recommend.add_argument("-k", type=int, default=20, help="how many items (default 20)")
    recommend.add_argument("--json", metavar="OUT", help="also write the list as JSON")
    recommend.set_defaults(func=run_recommend)

    export = subparsers.add_parser(
        "export",
        help="export a trained model as a TensorFlow SavedModel for serving",
        description="Write a SavedModel whose serving signature takes item ids and the previous state and returns "
        "the top-k item ids, their scores and the new state (see gru4rec.recommend.export_saved_model).",
    )
    export.add_argument("--model", required=True, metavar="RUN_DIR", help="a training run folder")
    export.add_argument("--epoch", type=int, metavar="E", help="checkpoint epoch (default: the last)")
    export.add_argument("--out", required=True, metavar="DIR", help="output folder of the SavedModel")
    export.add_argument("-k", type=int, default=20, help="length of the served top-k list (default 20)")
    export.set_defaults(func=run_export)


# ----------------------------------------------------------------------------------------------------------------


def _check_file(path: str, what: str) -> None:
    if os.path.isdir(path):
        raise CliError(f"{path}: is a folder, expected the {what} file (GRU4Rec TSV)")
    if not os.path.isfile(path):
        raise CliError(f"{path}: no such {what} file")


def _check_run(run_dir: str) -> None:
    if not os.path.isdir(run_dir):
        raise CliError(f"{run_dir}: no such run folder")
    if not os.path.isfile(os.path.join(run_dir, "config.json")):
        raise CliError(f"{run_dir}: not a run folder (no config.json); train one with `gru4rec train`")


def _load_run(run_dir: str, epoch):
    _check_run(run_dir)
    from gru4rec.runs import load_run

    return load_run(run_dir, epoch=epoch)


def _read_sessions(path: str, what: str):
    from gru4rec.io import read_sessions

    _check_file(path, what)
    return read_sessions(path)


INT64_LIMIT = 2**63


def require_predictions(result: dict, test_path: str) -> None:
    """A CliError when an evaluation scored no event (its metrics would be NaN)."""
    if result["n_events"] == 0:
        raise CliError(
            f"{test_path}: no test event could be scored: no (item, next item) pair of a session has items known to "
            f"the model ({result.get('n_dropped_unknown', 0)} events of unknown items dropped); evaluate on test "
            "data of the same catalogue as the training data"
        )


def _check_output(path, option: str) -> None:
    """An output path (``--json``, export's ``--out``) must not land on a run folder or one of a run's own files
    (``gru4rec.run_folder.refuse_run_output``); checked before any work, and again under the run's lock."""
    if path:
        from gru4rec.run_folder import refuse_run_output

        refuse_run_output(path, option)


def _check_k(k: int) -> None:
    if k < 1:
        raise CliError(f"-k: must be an integer >= 1; got {k}")


def _report(result: dict, args: argparse.Namespace, seconds: float, **settings) -> None:
    from gru4rec.evaluate import format_table, write_metrics

    require_predictions(result, args.test)

    print(format_table(result))
    print(f"{result['n_events'] / max(seconds, 1e-9):,.0f} predictions/s ({seconds:.1f} s)")
    if args.json:
        from gru4rec.run_folder import lock_if_run

        with lock_if_run(args.json):  # a write into a run folder holds its lock
            _check_output(args.json, "--json")
            write_metrics(result, args.json, seconds=round(seconds, 3), **settings)
        print(f"metrics written to {args.json}")


def run_evaluate(args: argparse.Namespace) -> int:
    from gru4rec.evaluate import GRU4RecScorer
    from gru4rec.session_data import SessionData

    _check_output(args.json, "--json")
    run = _load_run(args.model, args.epoch)
    test = SessionData.from_frame(_read_sessions(args.test, "test"), run.item_map)
    support = getattr(run, "item_support", None)
    if args.train:
        support = SessionData.from_frame(_read_sessions(args.train, "training"), run.item_map).item_counts
    scorer = GRU4RecScorer(run.model, item_map=run.item_map, item_support=support)
    start = time.perf_counter()
    result = _run_protocol(scorer, test, args, f"gru4rec evaluate --model {args.model} --test {args.test}", support)
    seconds = time.perf_counter() - start
    _report(result, args, seconds, model=os.path.abspath(args.model), epoch=getattr(run, "epoch", args.epoch),
            test=os.path.abspath(args.test))
    return 0


def _parse_params(pairs) -> dict:
    """``NAME=VALUE`` pairs as a dict; a value is a bool (true/false), an int, a float, or else kept as text."""
    params = {}
    for pair in pairs:
        if "=" not in pair:
            raise CliError(f"--param {pair!r}: expected NAME=VALUE")
        name, value = (part.strip() for part in pair.split("=", 1))
        lowered = value.lower()
        if lowered in ("true", "false"):
            params[name] = lowered == "true"
            continue
        try:
            params[name] = int(value)
        except ValueError:
            try:
                params[name] = float(value)
            except ValueError:
                params[name] = value
    return params


def _check_baseline_params(method: str, params: dict) -> None:
    """Reject a ``--param`` the baseline does not take, or a value of the wrong kind or range (before any data is
    read): names are checked against the constructor, kinds against its defaults, values by constructing it."""
    import inspect

    from gru4rec.baselines import BASELINES

    signature = inspect.signature(BASELINES[method].__init__)
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    valid = [name for name, p in signature.parameters.items() if name != "self" and p.kind in named]
    for name, value in params.items():
        if name not in valid:
            listed = ", ".join(f"{n}={signature.parameters[n].default!r}" for n in valid) or "none"
            raise CliError(f"--param {name}: not a parameter of baseline {method!r}; its parameters: {listed}")
        default = signature.parameters[name].default
        expected = _kind_of(default)
        if expected and not _is_kind(value, expected):
            raise CliError(f"--param {name}={value}: expected {expected} (default {default!r})")
    try:
        BASELINES[method](**params)
    except (ValueError, TypeError) as error:
        raise CliError(f"--param: {error}") from None


def _kind_of(default) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, str):
        return "a name"
    return ""


def _is_kind(value, expected: str) -> bool:
    if expected == "true or false":
        return isinstance(value, bool)
    if expected == "an integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "a number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, str)


def run_baseline(args: argparse.Namespace) -> int:
    params = _parse_params(args.param)
    _check_baseline_params(args.method, params)
    _check_output(args.json, "--json")
    from gru4rec.baselines import make_baseline
    from gru4rec.session_data import SessionData

    train = SessionData.from_frame(_read_sessions(args.train, "training"))
    test = SessionData.from_frame(_read_sessions(args.test, "test"), train.item_map)
    start = time.perf_counter()
    try:
        scorer = make_baseline(args.method, train, **params)
    except TypeError as error:  # an unknown parameter name
        raise CliError(f"--param: {error}") from None
    fitted = time.perf_counter()
    honest = f"gru4rec baseline --method {args.method} --train {args.train} --test {args.test}"
    result = _run_protocol(scorer, test, args, honest, train.item_counts)
    seconds = time.perf_counter() - fitted
    print(f"{scorer!r} fitted in {fitted - start:.1f} s")
    _report(result, args, seconds, method=args.method, params=scorer.params(), train=os.path.abspath(args.train),
            test=os.path.abspath(args.test), fit_seconds=round(fitted - start, 3))
    return 0


def _parse_items(text: str) -> list[int]:
    parts = [p.strip() for p in text.replace(" ", ",").split(",") if p.strip()]
    try:
        ids = [int(p) for p in parts]
    except ValueError:
        raise CliError(
            f"--items {text!r}: expected comma-separated integer item ids (the data's ItemId), e.g. 214500955,214500104"
        ) from None
    for item in ids:
        if not -INT64_LIMIT <= item < INT64_LIMIT:
            raise CliError(f"--items: item id {item} is out of range; item ids are 64-bit integers (< 2**63)")
    return ids


def run_recommend(args: argparse.Namespace) -> int:
    import warnings

    items = _parse_items(args.items)
    _check_k(args.k)
    _check_run(args.model)
    _check_output(args.json, "--json")
    from gru4rec.recommend import EmptySessionError, Recommender  # TensorFlow: only once the arguments are checked

    rec = Recommender.from_run(args.model, epoch=args.epoch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = rec.recommend(items, k=args.k)
        except EmptySessionError as error:
            raise CliError(str(error)) from None
    if result.n_unknown:
        print(f"note: {result.n_unknown} item id(s) not in the model's catalogue were skipped", file=sys.stderr)
    print(result.to_frame().to_string(index=False))
    if args.json:
        import json

        from gru4rec.io import atomic_write
        from gru4rec.run_folder import lock_if_run

        payload = {"items": items, "k": args.k, "n_unknown": result.n_unknown,
                   "item_ids": result.item_ids.tolist(), "scores": result.scores.astype(float).tolist()}  # fmt: skip
        with lock_if_run(args.json):  # a write into a run folder holds its lock
            _check_output(args.json, "--json")
            with atomic_write(args.json) as handle:
                json.dump(payload, handle, indent=2)
                handle.write("\n")
    return 0


def run_export(args: argparse.Namespace) -> int:
    _check_k(args.k)
    _check_run(args.model)
    if os.path.islink(os.path.normpath(args.out)):
        raise CliError(f"--out {args.out}: is a symbolic link; an export replaces the folder it is given, never "
                       "writing through a link: give the folder the link points to, or a new path")  # fmt: skip
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CliError(f"--out {args.out}: is a file, expected a folder for the SavedModel")
    _check_output(args.out, "--out")
    from gru4rec.recommend import export_saved_model  # TensorFlow: only once the arguments are checked
    from gru4rec.run_folder import lock_if_run

    with lock_if_run(args.out):  # an export into a run folder holds its lock, like every writer into it
        _check_output(args.out, "--out")
        out = export_saved_model(args.model, args.out, epoch=args.epoch, k=args.k)
    print(f"SavedModel written to {out} (signatures: serving_default, initial_state)")
    return 0
