"""The ``gru4rec`` command line: one sub-command module per concern, put together here.

Each module in ``COMMAND_MODULES`` exposes ``register(subparsers)``, which adds its sub-commands and sets
``func`` (taking the parsed ``argparse.Namespace`` and returning an exit code) as their default.

Errors: every error ends the command with ONE line on stderr, ``gru4rec COMMAND: error: ...`` naming the file or
parameter and what was expected, and exit code 2 for bad input (arguments, files, folders) or 1 for a failure while
running (a NaN loss, out of memory, a full disk, a TensorFlow error, a bug). ``--debug`` (anywhere on the command
line) or ``GRU4REC_DEBUG=1`` shows the traceback too, and keeps the exit code. An OS error is reported with its path
and its real cause (a full disk is "no space left on the device", never "out of memory").
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import re
import sys
import traceback
from typing import Optional, Sequence

COMMAND_MODULES: tuple[str, ...] = (
    "gru4rec.cli.data",
    "gru4rec.cli.course",
    "gru4rec.cli.lab",
    "gru4rec.cli.evaluate",
    "gru4rec.cli.train",
    "gru4rec.cli.tune",
)
DEBUG_HELP = "show the traceback of an error (also: GRU4REC_DEBUG=1)"
BAD_INPUT, FAILURE = 2, 1
# TensorFlow reports a full disk (ENOSPC, a quota) as RESOURCE_EXHAUSTED, the code it also uses for out of memory
_DISK_FULL = re.compile(r"No space left on device|Disk quota exceeded|ENOSPC|EDQUOT|database or disk is full",
                        re.IGNORECASE)  # (the last: SQLite's, e.g. the study of `gru4rec tune`)
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class CliError(Exception):
    """An error to show the user as one clear line (exit code 2), never a traceback."""


def _add_debug_everywhere(parser: argparse.ArgumentParser, top: bool) -> None:
    """``--debug`` on the parser and every sub-command (sub-parsers must not reset the top level's value)."""
    parser.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS, help=DEBUG_HELP)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                _add_debug_everywhere(sub, top=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gru4rec",
        description="GRU4Rec teaching kit: prepare data, train, evaluate, recommend.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    _add_debug_everywhere(parser, top=True)
    return parser


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).strip().splitlines() if part.strip())


def _os_error(error: OSError) -> tuple[int, str]:
    name = error.filename if error.filename is not None else ""
    words = {
        PermissionError: "permission denied",
        FileNotFoundError: "no such file or folder",
        IsADirectoryError: "is a folder, expected a file",
        NotADirectoryError: "a part of the path is not a folder",
        FileExistsError: "exists already",
    }
    for kind, text in words.items():
        if isinstance(error, kind):
            if name:
                return BAD_INPUT, f"{name}: {text}"
            return BAD_INPUT, _one_line(error) or text
    if error.errno in _DISK_FULL_ERRNOS:
        cause = "no space left on the device" if error.errno == errno.ENOSPC else "disk quota exceeded"
        return FAILURE, f"{name}: {cause}" if name else f"{cause} ({_one_line(error)})"
    if name:
        return FAILURE, f"{name}: {error.strerror or _one_line(error)}"
    return FAILURE, _one_line(error) or type(error).__name__


def describe_error(error: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message of an error raised by a command."""
    # A TrainingError can only come from a loaded gru4rec.train: never import TensorFlow just to describe an error.
    train_module = sys.modules.get("gru4rec.train")
    training_error = train_module.TrainingError if train_module is not None else ()

    if isinstance(error, KeyboardInterrupt):
        return 130, "interrupted"
    if isinstance(error, (CliError, ValueError)) and not isinstance(error, OverflowError):
        return BAD_INPUT, _one_line(error)
    if isinstance(error, OSError) and (error.filename is not None or type(error) is not OSError):
        return _os_error(error)
    if isinstance(error, training_error):
        return FAILURE, _one_line(error)
    if isinstance(error, OverflowError):
        return BAD_INPUT, f"a number is out of range ({_one_line(error)})"
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(error, tf.errors.OpError) and _DISK_FULL.search(str(error.message)):
        first = str(error.message).strip().splitlines()[0]
        where = re.search(r"(/\S+?)(?:;|:)? (?:No space|Disk quota)", first)
        return FAILURE, (f"{where.group(1)}: no space left on the device" if where else
                         f"no space left on the device ({first[:300]})")  # fmt: skip
    if isinstance(error, MemoryError) or (tf is not None and isinstance(error, tf.errors.ResourceExhaustedError)):
        return FAILURE, ("out of memory: the model or the mini-batch does not fit; use smaller --layers, --batch_size "
                         "or --n_sample")  # fmt: skip
    if tf is not None and isinstance(error, tf.errors.OpError):
        first = str(error.message).strip().splitlines()[0] if str(error.message).strip() else type(error).__name__
        return FAILURE, f"TensorFlow {type(error).__name__}: {first[:300]}"
    if isinstance(error, OSError):
        return _os_error(error)
    if _DISK_FULL.search(str(error)):  # another library's report of a full disk (SQLAlchemy's OperationalError)
        return FAILURE, f"no space left on the device ({type(error).__name__}: {_one_line(error)[:300]})"
    return FAILURE, (f"unexpected {type(error).__name__}: {_one_line(error)[:300]} (run with --debug or "
                     "GRU4REC_DEBUG=1 for the traceback)")  # fmt: skip


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False)) or os.environ.get("GRU4REC_DEBUG", "") not in ("", "0")
    try:
        return int(args.func(args) or 0)
    except (Exception, KeyboardInterrupt) as error:
        code, message = describe_error(error)
        if debug:  # the traceback, then the same one line and exit code as without --debug
            traceback.print_exc()
        print(f"gru4rec {args.command}: error: {message}", file=sys.stderr)
        _quiet_tensorflow_after_error()
        return code


def _quiet_tensorflow_after_error() -> None:
    """After the one-line error nothing else: objects of the failed command that TensorFlow frees later (e.g. a
    checkpoint whose restore failed on a shape) would log a warning each ("... unrestored values")."""
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        import logging

        tf.get_logger().setLevel(logging.ERROR)
