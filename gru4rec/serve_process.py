"""``gru4rec serve`` in a background process, for a notebook, a test or a benchmark: started on a free port of
127.0.0.1, waited for until ``GET /health`` answers, stopped (SIGTERM, then SIGKILL) when the ``with`` block ends.

    with served(run_dir, state_store="memory") as server:
        httpx.post(f"{server.url}/sessions/s1/events", json={"item_id": 214536502})

The server's output (its start line, uvicorn's warnings) goes to a log file in a temporary folder; a server that
stops before answering raises :class:`ServerFailed` with the end of that log.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

from gru4rec.redis_process import free_port


class ServerFailed(RuntimeError):
    """The server stopped before answering, or did not answer in time (the message ends with its log)."""


@dataclass
class ServerProcess:
    """A running ``gru4rec serve``: its ``url`` (``http://127.0.0.1:PORT``), ``port``, process and log file."""

    url: str
    port: int
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process.poll() is None


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
            return answer.status == 200 and json.loads(answer.read()).get("status") == "ok"
    except (urllib.error.URLError, OSError, ValueError):
        return False


def serve_command(run_dir: os.PathLike | str, port: int, state_store: str = "memory",
                  extra: Sequence[str] = ()) -> list[str]:  # fmt: skip
    """The command line of ``gru4rec serve`` for this Python (``python -m gru4rec serve ...``)."""
    return [sys.executable, "-m", "gru4rec", "serve", "--model", os.fspath(run_dir), "--host", "127.0.0.1",
            "--port", str(port), "--state-store", state_store, *extra]  # fmt: skip


def stop(server: ServerProcess, timeout: float = 30.0) -> int:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit code."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return int(server.process.returncode)


@contextlib.contextmanager
def served(run_dir: os.PathLike | str, state_store: str = "memory", extra: Sequence[str] = (),
           startup_timeout: float = 180.0, port: Optional[int] = None) -> Iterator[ServerProcess]:  # fmt: skip
    """Run ``gru4rec serve --model run_dir --state-store state_store *extra`` on 127.0.0.1 for the ``with`` block.

    ``extra``: more options (e.g. ``["--session-ttl", "60"]``); ``port``: default a free one. Raises
    :class:`ServerFailed` when the server stops before ``/health`` answers or takes longer than ``startup_timeout``.
    """
    with tempfile.TemporaryDirectory(prefix="gru4rec-serve-") as folder:
        port = free_port() if port is None else int(port)
        log_path = Path(folder) / "serve.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(log_path, "wb") as log:
            process = subprocess.Popen(serve_command(run_dir, port, state_store, extra), stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT, env=env)  # fmt: skip
        server = ServerProcess(f"http://127.0.0.1:{port}", port, process, log_path)
        try:
            deadline = time.monotonic() + startup_timeout
            while not _health(server.url):
                if process.poll() is not None:
                    raise ServerFailed(f"gru4rec serve stopped with code {process.returncode} before answering: "
                                       f"{server.log().strip()[-600:]}")  # fmt: skip
                if time.monotonic() > deadline:
                    raise ServerFailed(f"gru4rec serve did not answer GET /health within {startup_timeout:.0f} s: "
                                       f"{server.log().strip()[-600:]}")  # fmt: skip
                time.sleep(0.2)
            yield server
        finally:
            stop(server)
