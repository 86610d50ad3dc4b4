"""``gru4rec lab``: open the course in JupyterLab on a working copy of the notebooks (see :mod:`gru4rec.lab`)."""

from __future__ import annotations

import argparse
import os
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "lab",
        help="open the course in JupyterLab on a working copy of the notebooks (lab/, git-ignored)",
        description="Open the course in JupyterLab on a working copy of the notebooks, so that autosave and the "
        "notebooks' results never touch the tracked notebooks/ or the main job's build/. The copy (default: lab/ "
        "in the checkout) is created once and kept: your edits survive; --reset NAME puts one notebook back to the "
        "original (your version is moved to lab/replaced/). JupyterLab listens on 127.0.0.1 with a token.",
        epilog="Options after -- go to `jupyter lab` unchanged, e.g. gru4rec lab -- --ServerApp.open_browser=False",
    )
    parser.add_argument("--dir", metavar="DIR", help="the working copy (default: lab/ in the checkout)")
    parser.add_argument("--reset", metavar="NOTEBOOK", action="append", default=[],
                        help="replace this notebook of the working copy with the original (repeatable)")  # fmt: skip
    parser.add_argument("--port", type=int, metavar="N",
                        help="listen on this port only (default: 8888, or the next free one)")  # fmt: skip
    parser.add_argument("--token", metavar="TOKEN",
                        help="the access token (default: a random one; JupyterLab prints its address with it)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser window")
    parser.add_argument("--prepare-only", action="store_true",
                        help="create or complete the working copy (and apply --reset), then exit")  # fmt: skip
    parser.add_argument("jupyter_args", nargs="*", metavar="-- JUPYTER_OPTION", help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gru4rec.cli import CliError
    from gru4rec.lab import jupyter_command, prepare_lab, reset_notebook

    if args.port is not None and not 0 < args.port < 65536:
        raise CliError(f"--port {args.port}: expected a port number in 1..65535")
    try:
        copy = prepare_lab(args.dir)
        for name in args.reset:
            moved = reset_notebook(name, copy.root)
            was = f" (your version is in {moved})" if moved.parent.name == "replaced" else ""
            print(f"reset {name} to the course's original{was}")
    except FileExistsError as error:
        raise CliError(str(error)) from None
    print(f"working copy: {copy.notebooks} ({len(copy.copied)} notebook(s) copied, {len(copy.kept)} kept); "
          f"results go to {copy.root / 'build'}")  # fmt: skip
    if args.prepare_only:
        return 0
    argv, extra_env = jupyter_command(copy.root, port=args.port, token=args.token,
                                      open_browser=not args.no_browser, extra=args.jupyter_args)  # fmt: skip
    print("starting JupyterLab on 127.0.0.1 (its address with the token follows); stop it with Ctrl+C", flush=True)
    env = {**os.environ, **extra_env}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, env)  # the server replaces this process: signals and its exit code are its own
    return 0  # pragma: no cover - execve does not return
