"""The headless address of ``gru4rec lab``: print ``http://127.0.0.1:PORT/lab?token=TOKEN`` once the server answers.

JupyterLab elides a token it did not generate (``JUPYTER_TOKEN``) from the address it prints, so ``gru4rec lab``
starts this small watcher before it replaces itself with the server: the watcher reads the token from its standard
input (never from its command line or environment, which other users of the machine may read), polls
``/api/status`` with it, and prints the full address on the terminal it shares with the server, once. It exits when
the server answers, when its parent (the server, same process id after ``execve``) goes away, or after ``timeout``
seconds (saying so).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from typing import Callable, Optional, Sequence

__all__ = ["free_port", "lab_url", "server_answers", "wait_and_announce", "main"]


def free_port(start: int = 8888, tries: int = 50, host: str = "127.0.0.1") -> int:
    """The first port in ``start .. start + tries - 1`` that ``host`` can bind now (Jupyter's own default search).
    Raises OSError when none is free."""
    for port in range(start, start + tries):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port in {start}..{start + tries - 1} on {host}; choose one with --port")


def lab_url(port: int, token: str, host: str = "127.0.0.1") -> str:
    """The address to open: JupyterLab on ``host:port`` with its token."""
    return f"http://{host}:{int(port)}/lab?token={token}"


def server_answers(port: int, token: str, host: str = "127.0.0.1", timeout: float = 2.0) -> bool:
    """True when a Jupyter server on ``host:port`` answers ``/api/status`` with this token."""
    request = urllib.request.Request(f"http://{host}:{int(port)}/api/status")
    request.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def wait_and_announce(port: int, token: str, parent_alive: Callable[[], bool], timeout: float = 300.0,
                      poll: float = 0.5, out=None) -> bool:  # fmt: skip
    """Poll the server until it answers, then print its full address to ``out`` (stdout) and return True; return
    False (printing nothing) when ``parent_alive()`` turns False, or False with a note when ``timeout`` passes."""
    out = out or sys.stdout
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not parent_alive():
            return False
        if server_answers(port, token):
            print(f"\nJupyterLab is ready; open this address (token included; shown only here):\n\n"
                  f"    {lab_url(port, token)}\n", file=out, flush=True)  # fmt: skip
            return True
        time.sleep(poll)
    print(f"gru4rec lab: the server on 127.0.0.1:{port} did not answer within {timeout:.0f} s; once it does, "
          f"open {lab_url(port, token)}", file=out, flush=True)  # fmt: skip
    return False


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gru4rec.lab_announce", description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    token = sys.stdin.readline().strip()
    if not token:
        print("gru4rec.lab_announce: expected the token on standard input", file=sys.stderr)
        return 2
    parent = os.getppid()
    wait_and_announce(args.port, token, lambda: os.getppid() == parent, timeout=args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
