"""``gru4rec train`` (official hyperparameter names) and ``gru4rec seed`` (the seed's ``main.py`` flags)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gru4rec.cli import CliError
from gru4rec.text import plural

SEED_RUN_DIR = "runs/seed"  # under runs/ (git-ignored), not the seed's ./checkpoint in the working folder
DROPOUT_NOTE = (
    "note: --dropout is read as the probability of DROPPING a unit; the seed passed it to TensorFlow as a keep "
    "probability (output_keep_prob). At the default 0.5 both readings are the same."
)


# ------------------------------------------------------------------------------------------------ gru4rec train
def _config_fields():
    import dataclasses

    from gru4rec.config import Config

    return list(dataclasses.fields(Config))


def _choices_help(name: str) -> str:
    """``; one of: a, b, c`` for the hyperparameters with a fixed set of values (empty for the others)."""
    from gru4rec import config as c

    choices = {
        "loss": c.LOSSES, "optimizer": c.OPTIMIZERS, "hidden_act": c.HIDDEN_ACTS, "gru_variant": c.GRU_VARIANTS,
        "device": c.DEVICES, "precision": c.PRECISIONS, "distribute": c.DISTRIBUTE,
    }  # fmt: skip
    if name == "final_act":
        return (f"; one of: {c.FINAL_ACT_HELP}; unset: the loss's own (softmax for cross-entropy, "
                "elu-<elu_param> for bpr-max, linear otherwise)")  # fmt: skip
    return f"; one of: {', '.join(choices[name])}" if name in choices else ""


def _default_help(name: str, official, seed_preset) -> str:
    """What ``--NAME`` is without the option: the official preset's value (the default preset), and the seed's."""
    seed, value = getattr(seed_preset, name), getattr(official, name)

    def show(v) -> str:
        if isinstance(v, tuple):
            return "/".join(str(n) for n in v)
        return "none" if v is None else str(v)

    where = f"default: {show(value)}"
    if seed != value:
        where += f" (--preset seed: {show(seed)})"
    return where


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="train GRU4Rec into a run folder (official hyperparameter names)",
        description="Train GRU4Rec on session data (GRU4Rec TSV: SessionId, ItemId, Time) into a run folder with "
        "config.json, items.tsv, a checkpoint per epoch, train.log (the seed's format), train.jsonl and "
        "tensorboard/. Hyperparameters use the official names; --preset gives the starting values.",
    )
    train.add_argument("--train", required=True, metavar="PATH", help="training sessions (GRU4Rec TSV)")
    train.add_argument(
        "--valid", metavar="PATH",
        help="validation sessions: Recall@20/MRR@20 after every epoch, printed and stored in RUN_DIR/train.jsonl",
    )  # fmt: skip
    train.add_argument("--test", metavar="PATH", help="test sessions: evaluated after training, RUN_DIR/metrics.json")
    train.add_argument("--out", required=True, metavar="RUN_DIR", help="the run folder (created)")
    from gru4rec.config import PRESETS

    train.add_argument(
        "--preset", default="official", choices=tuple(PRESETS), metavar="NAME",
        help="starting values: the official best-parameter files under their names (paramfiles/<name>_best.py: "
        + ", ".join(name for name in PRESETS if name not in ("official", "seed"))
        + "); official = rsc15_xe_shared_100 (default); seed = the seed's main.py",
    )  # fmt: skip
    train.add_argument(
        "--params", metavar="FILE",
        help="a JSON object of hyperparameters (official names), applied on top of --preset and below the flags "
        "below, e.g. the best_params.json of `gru4rec tune` (the official codes' .py param files are not read)",
    )  # fmt: skip
    train.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its last checkpoint")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    from gru4rec.config import Config

    official, seed_preset = Config.preset("official"), Config.preset("seed")
    group = train.add_argument_group(
        "hyperparameters (official names; see gru4rec/config.py). Defaults shown are those of the default preset "
        "(official); --preset seed starts from the seed's values, shown in brackets where they differ"
    )
    for f in _config_fields():
        names = [f"--{f.name}"] + ([f"--{f.name.replace('_', '-')}"] if "_" in f.name else [])
        hint = "SIZES" if f.name == "layers" else f.type.upper().replace("OPTIONAL[STR]", "STR")
        group.add_argument(
            *names, dest=f"hp_{f.name}", metavar=hint, default=None,
            help=_default_help(f.name, official, seed_preset) + _choices_help(f.name)
            + ("; e.g. 100 or 100/100" if f.name == "layers" else ""),
        )  # fmt: skip
    train.set_defaults(func=run_train)

    seed = subparsers.add_parser(
        "seed",
        help="the seed's main.py flags (Ascend ModelZoo GRU4Rec_for_TensorFlow) with its defaults",
        description="Train or evaluate with exactly the flags and defaults of the seed's main.py. --train 1 trains "
        "(--epoch epochs) into --checkpoint_dir and prints the seed's log lines; --train 0 evaluates the checkpoint "
        "of (0-based) epoch --test on --test_data. " + DROPOUT_NOTE,
    )
    seed.add_argument("--layer", type=int, default=1, help="number of GRU layers (default 1)")
    seed.add_argument("--size", type=int, default=100, help="hidden units per layer (default 100)")
    seed.add_argument("--epoch", type=int, default=3, help="training epochs (default 3)")
    seed.add_argument("--lr", type=float, default=0.001, help="initial learning rate (default 0.001)")
    seed.add_argument("--train", type=int, default=1, choices=(0, 1), help="1: train (default), 0: evaluate")
    seed.add_argument("--hidden_act", default="tanh", choices=("tanh", "relu"), help="GRU activation (tanh)")
    seed.add_argument("--final_act", default="softmax",
                      help="final activation: softmax (default), tanh, relu, linear")  # fmt: skip
    seed.add_argument("--loss", default="cross-entropy", choices=("cross-entropy", "bpr", "top1"), help="loss")
    seed.add_argument("--dropout", type=float, default=0.5, help="dropout (a DROP probability here; default 0.5)")
    seed.add_argument("--data_dir", "--data_path", dest="data_dir", default="data/rsc15/rsc15_train_full.txt",
                      metavar="PATH", help="training sessions (GRU4Rec TSV)")  # fmt: skip
    seed.add_argument("--test", type=int, default=2, help="with --train 0: the (0-based) epoch to evaluate (2)")
    extra = seed.add_argument_group("additions of this kit")
    extra.add_argument("--batch_size", type=int, default=50, help="mini-batch size (the seed's fixed 50)")
    extra.add_argument("--checkpoint_dir", default=SEED_RUN_DIR, metavar="DIR",
                       help=f"the run folder (default: {SEED_RUN_DIR}; the seed used ./checkpoint)")  # fmt: skip
    extra.add_argument("--test_data", metavar="PATH",
                       help="with --train 0: test sessions (default: rsc15_test.txt next to --data_dir)")  # fmt: skip
    extra.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu", "npu"),
                       help="where to train (auto: NPU, else GPU, else CPU; an absent device is an error)")  # fmt: skip
    extra.add_argument("--precision", default="fp32", choices=("fp32", "mixed_bfloat16", "mixed_float16"),
                       help="fp32 (default), mixed_bfloat16, or mixed_float16 with loss scaling")  # fmt: skip
    extra.add_argument("--distribute", default="none", choices=("none", "mirrored", "multiworker"),
                       help="data-parallel training: mirrored (local devices) or multiworker (TF_CONFIG)")  # fmt: skip
    extra.add_argument("--log_every", type=int, default=1000, metavar="N",
                       help="a log line every N steps (and at step 1); the seed's 1000")  # fmt: skip
    extra.add_argument("--max_steps", type=int, default=None, metavar="N",
                       help="stop after N mini-batch steps in all (short timed runs); default: all epochs")  # fmt: skip
    seed.set_defaults(func=run_seed)


def _check_file(path: str, what: str) -> None:
    if os.path.isdir(path):
        raise CliError(f"{path}: is a folder, expected the {what} file (GRU4Rec TSV)")
    if not os.path.isfile(path):
        raise CliError(f"{path}: no such {what} file")


def _read(path: str, what: str, item_map=None):
    from gru4rec.io import read_sessions
    from gru4rec.session_data import SessionData

    _check_file(path, what)
    return SessionData.from_frame(read_sessions(path), item_map=item_map)


def require_pairs(data, path: str, what: str) -> None:
    """A CliError naming ``path`` when ``data`` has no (item, next item) pair to score (its metrics would be NaN)."""
    if data.n_pairs == 0:
        dropped = getattr(data, "n_dropped_unknown", 0)
        raise CliError(f"{path}: no {what} event can be scored: no session has two events of items in the training "
                       f"data ({dropped} events of unknown items dropped)")  # fmt: skip


def _evaluate_test(run_dir: Path, model, train_data, test_path: str, test=None) -> dict:
    """Evaluate ``model`` on ``test`` (read from ``test_path`` unless given, read before training by the caller)."""
    from gru4rec.cli.evaluate import require_predictions
    from gru4rec.evaluate import GRU4RecScorer, evaluate, format_table, write_metrics
    from gru4rec.run_folder import lock_if_run

    if test is None:
        test = _read(test_path, "test", item_map=train_data.item_map)
    scorer = GRU4RecScorer(model, item_map=train_data.item_map, item_support=train_data.item_counts)
    result = evaluate(scorer, test)
    require_predictions(result, test_path)
    with lock_if_run(run_dir):
        write_metrics(result, run_dir / "metrics.json", model=str(run_dir), test=test_path)
    print(format_table(result))
    return result


def _console_callback(config):
    """A training callback that prints what the run folder's train.jsonl also holds: the divergence warning
    (:class:`gru4rec.divergence.DivergenceWatch`) and, after each epoch with --valid, Recall@20 / MRR@20."""
    from gru4rec.divergence import DivergenceWatch
    from gru4rec.train import Callback

    class ConsoleReport(Callback):
        def __init__(self) -> None:
            self.watch = DivergenceWatch(config.learning_rate, on_warning=self.warn)

        @staticmethod
        def warn(message: str) -> None:
            print(f"warning: {message}", file=sys.stderr, flush=True)

        def on_log(self, record: dict) -> None:
            self.watch(record)

        def on_epoch_end(self, record: dict) -> None:
            self.watch(record)
            if "valid_recall@20" in record:
                print(f"epoch {record['epochs_done']}: loss {record['loss']:.4f}, validation Recall@20 "
                      f"{record['valid_recall@20']:.4f}, MRR@20 {record['valid_mrr@20']:.4f}", flush=True)  # fmt: skip

    return ConsoleReport()


def run_train(args: argparse.Namespace) -> int:
    from gru4rec.config import Config

    overrides = {
        name[3:]: value for name, value in vars(args).items() if name.startswith("hp_") and value is not None
    }
    config = Config.preset(args.preset)
    if args.params:  # --params FILE (gru4rec tune's best_params.json): between the preset and the flags
        from gru4rec.tune import config_with_params, read_params

        config = config_with_params(config, read_params(args.params), source=args.params)
    config = config.with_overrides(**overrides)
    from gru4rec.train import single_threaded_ops_on_cpu, train  # TensorFlow: only once the settings are valid

    single_threaded_ops_on_cpu(config)  # before TensorFlow's runtime starts (see gru4rec.train)
    train_data = _read(args.train, "training")
    valid = _read(args.valid, "validation", item_map=train_data.item_map) if args.valid else None
    if valid is not None:
        require_pairs(valid, args.valid, "validation")
    test = None
    if args.test:  # read and checked before training, not after it
        test = _read(args.test, "test", item_map=train_data.item_map)
        require_pairs(test, args.test, "test")
    print(f"training on {train_data.n_events} events, {train_data.n_sessions} sessions, {train_data.n_items} items")
    report = _console_callback(config)
    result = train(config, train_data, args.out, valid_data=valid, resume=args.resume, progress=not args.no_progress,
                   callbacks=[report])  # fmt: skip
    losses = ", ".join(f"{x:.4f}" for x in result.epoch_losses)
    print(f"done: {plural(result.epochs_done, 'epoch')}, {plural(result.steps, 'step')}, {_speed(result)} on "
          f"{result.device or 'the default device'}; epoch losses: {losses}")  # fmt: skip
    print(f"run folder: {result.run_dir}")
    if report.watch.diverging:
        print(f"warning: {report.watch.message}", file=sys.stderr)
    if args.test:
        _evaluate_test(Path(args.out), result.model, train_data, args.test, test=test)
    return 0


def _speed(result) -> str:
    """``12,345 events/s``, or what happened when this call trained nothing (a resume of a finished run)."""
    import math

    if math.isfinite(result.events_per_s):
        return f"{result.events_per_s:,.0f} events/s"
    return "nothing left to train (the run had all its epochs)"


# ------------------------------------------------------------------------------------------------ gru4rec seed
def seed_config(args: argparse.Namespace):
    """The Config of a ``gru4rec seed`` command line, with notes on how seed values were read."""
    from gru4rec.config import Config

    notes = [DROPOUT_NOTE]
    final_act = args.final_act
    if args.loss == "cross-entropy":
        if final_act not in ("softmax", "tanh"):
            notes.append(f"note: the seed uses a softmax with cross-entropy; --final_act {final_act} -> softmax")
            final_act = "softmax"
    elif final_act not in ("linear", "relu", "tanh"):
        notes.append(f"note: the seed maps --final_act {final_act} with loss {args.loss} to tanh")
        final_act = "tanh"
    config = Config.preset(
        "seed",
        layer=args.layer,
        size=args.size,
        epoch=args.epoch,
        lr=args.lr,
        hidden_act=args.hidden_act,
        final_act=final_act,
        loss=args.loss,
        dropout=args.dropout,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        distribute=args.distribute,
        log_every=args.log_every,
    )
    return config, notes


def _print_record(record: dict) -> None:
    from gru4rec.logs import format_record

    sys.stdout.write(format_record(record["epoch"], record["step"], record["lr"], record["loss"], record["step_time"]))
    sys.stdout.flush()


def run_seed(args: argparse.Namespace) -> int:
    from gru4rec.train import check_training_data, single_threaded_ops_on_cpu, train

    config, notes = seed_config(args)
    single_threaded_ops_on_cpu(config)
    for note in notes:
        print(note, file=sys.stderr)
    run_dir = Path(args.checkpoint_dir)
    if args.train == 1:
        # everything is checked before the folder is touched; a previous run there is moved aside, not deleted
        if args.max_steps is not None and args.max_steps < 1:
            raise CliError(f"--max_steps must be >= 1; got {args.max_steps}")
        train_data = _read(args.data_dir, "training")
        check_training_data(train_data, config)
        report = _console_callback(config)
        result = train(config, train_data, run_dir, callbacks=[_print_record, report], progress=False,
                       max_steps=args.max_steps, replace=True)  # fmt: skip
        if report.watch.diverging:
            print(f"warning: {report.watch.message}", file=sys.stderr)
        print(f"trained {plural(result.epochs_done, 'epoch')} ({plural(result.steps, 'step')}, {_speed(result)}); "
              f"checkpoints in {run_dir / 'checkpoints'}")  # fmt: skip
        return 0
    from gru4rec.cli.evaluate import require_predictions
    from gru4rec.evaluate import GRU4RecScorer, evaluate
    from gru4rec.runs import load_run

    if not (run_dir / "config.json").exists():
        raise CliError(f"{run_dir}: no trained run to evaluate (train first with --train 1)")
    epoch = args.test + 1  # the seed numbers its checkpoints by 0-based epoch
    run = load_run(run_dir, epoch=epoch)
    test_path = args.test_data or str(Path(args.data_dir).with_name("rsc15_test.txt"))
    test = _read(test_path, "test", item_map=run.item_map)
    scorer = GRU4RecScorer(run.model, item_map=run.item_map, item_support=run.item_support)
    seed_counting = evaluate(scorer, test, cutoffs=(20,), tie_mode="seed")
    require_predictions(seed_counting, test_path)
    honest = evaluate(scorer, test, cutoffs=(20,), tie_mode="conservative")
    print(f"Recall@20: {seed_counting['recall@20']}\tMRR@20: {seed_counting['mrr@20']}")
    print(f"(the seed's counting; ties against the model: Recall@20 {honest['recall@20']:.6f}, "
          f"MRR@20 {honest['mrr@20']:.6f})")  # fmt: skip
    return 0
