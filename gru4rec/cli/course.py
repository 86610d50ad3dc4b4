"""``gru4rec course``: execute the notebook course headlessly (the main job)."""

from __future__ import annotations

import argparse

from gru4rec.course import DEFAULT_CELL_TIMEOUT_S, NOTEBOOKS, run_course


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "course",
        help="execute the course (the lessons 01, 02, ... in order, then the playground 00) into an output folder",
        description="Execute the notebook course headlessly with papermill: the lessons 01, 02, ... in order, then the "
        "playground 00 (it compares against what the lessons measured). Executed copies and HTML go to OUT/notebooks.",
    )
    parser.add_argument("--out", default="build", help="output folder (default: build)")
    parser.add_argument("--smoke", action="store_true", help="small settings (tiny preset, one epoch)")
    parser.add_argument("--only", nargs="+", choices=NOTEBOOKS, metavar="NOTEBOOK", help="run only these")
    parser.add_argument("--no-html", action="store_true", help="skip the HTML export")
    parser.add_argument(
        "--cell-timeout",
        type=int,
        default=DEFAULT_CELL_TIMEOUT_S,
        help=f"seconds allowed per cell (default: {DEFAULT_CELL_TIMEOUT_S})",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    executed = run_course(
        args.out, smoke=args.smoke, names=args.only or NOTEBOOKS, cell_timeout=args.cell_timeout, html=not args.no_html
    )
    print("\nnotebook                               seconds  output")
    for item in executed:
        print(f"{item.name:38s} {item.seconds:7.0f}  {item.html or item.output}")
    return 0
