"""The ``gru4rec`` command line: one sub-command module per concern, put together here.

Each module in ``COMMAND_MODULES`` exposes ``register(subparsers)``, which adds its sub-commands and sets
``func`` (taking the parsed ``argparse.Namespace`` and returning an exit code) as their default.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

COMMAND_MODULES: tuple[str, ...] = (
    "gru4rec.cli.data",
    "gru4rec.cli.course",
    "gru4rec.cli.lab",
    "gru4rec.cli.evaluate",
    "gru4rec.cli.train",
)


class CliError(Exception):
    """An error to show the user as one clear line (exit code 2), never a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gru4rec",
        description="GRU4Rec teaching kit: prepare data, train, evaluate, recommend.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CliError, FileNotFoundError, ValueError) as error:
        print(f"gru4rec {args.command}: error: {error}", file=sys.stderr)
        return 2
