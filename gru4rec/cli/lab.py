"""``gru4rec lab``: open the course in JupyterLab on a working copy of the notebooks (see :mod:`gru4rec.lab`)."""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "lab",
        help="open the course in JupyterLab on a working copy of the notebooks (lab/, git-ignored)",
        description="Open the course in JupyterLab on a working copy of the notebooks, so that autosave and the "
        "notebooks' results never touch the tracked notebooks/ or the main job's build/. The copy (default: lab/ "
        "in the checkout) is created once and kept: your edits survive; --reset NAME puts one notebook back to the "
        "original (your version is moved to lab/replaced/). JupyterLab listens on 127.0.0.1 with a token; once the "
        "server answers, this command prints its full address with the token (http://127.0.0.1:PORT/lab?token=...): "
        "the address to open headless (--no-browser) or through an SSH tunnel (ssh -L PORT:127.0.0.1:PORT host).",
        epilog="Options after -- go to `jupyter lab` unchanged, e.g. gru4rec lab -- --ServerApp.open_browser=False",
    )
    parser.add_argument("--dir", metavar="DIR", help="the working copy (default: lab/ in the checkout)")
    parser.add_argument("--reset", metavar="NOTEBOOK", action="append", default=[],
                        help="replace this notebook of the working copy with the original (repeatable)")  # fmt: skip
    parser.add_argument("--port", type=int, metavar="N",
                        help="listen on this port (default: the first free one from 8888)")  # fmt: skip
    parser.add_argument("--token", metavar="TOKEN",
                        help="the access token (default: a random one; the address printed once the server is up "
                        "includes it; it is never on the command line of the server)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser window")
    parser.add_argument("--prepare-only", action="store_true",
                        help="create or complete the working copy (and apply --reset), then exit")  # fmt: skip
    parser.add_argument("jupyter_args", nargs="*", metavar="-- JUPYTER_OPTION", help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gru4rec.cli import CliError
    from gru4rec.lab import jupyter_command, prepare_lab, reset_notebook
    from gru4rec.lab_announce import free_port

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
    try:
        port = args.port if args.port is not None else free_port()
    except OSError as error:
        raise CliError(str(error)) from None
    token = args.token or secrets.token_hex(24)
    argv, extra_env = jupyter_command(copy.root, port=port, token=token,
                                      open_browser=not args.no_browser, extra=args.jupyter_args)  # fmt: skip
    print(f"starting JupyterLab on 127.0.0.1:{port}; its address with the token is printed once it answers; "
          "stop it with Ctrl+C", flush=True)  # fmt: skip
    env = {**os.environ, **extra_env}
    start_announcer(port, token)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, env)  # the server replaces this process: signals and its exit code are its own
    return 0  # pragma: no cover - execve does not return


def start_announcer(port: int, token: str) -> subprocess.Popen:
    """Start ``gru4rec.lab_announce`` (prints the full address once the server on ``port`` answers). The token goes
    through its standard input, not its command line; it runs in its own session so that Ctrl+C stops only the
    server, and it exits when the server (its parent after ``execve``) does."""
    watcher = subprocess.Popen([sys.executable, "-m", "gru4rec.lab_announce", str(port)], stdin=subprocess.PIPE,
                               start_new_session=True, text=True)  # fmt: skip
    assert watcher.stdin is not None
    watcher.stdin.write(token + "\n")
    watcher.stdin.close()
    return watcher
