"""``gru4rec serve`` in a background process, for a notebook, a test or a benchmark: started on a free port of
127.0.0.1, waited for until ``GET /health`` answers, stopped (SIGTERM, then SIGKILL) when the ``with`` block ends.

    with served(run_dir, state_store="memory") as server:
        status, answer = server.click("s1", 214536502, k=10)

or, across notebook cells, ``server = start_server(...)`` and ``server.stop()`` at the end (also stopped when the
Python process exits). The server's output (its start line, uvicorn's warnings) goes to a log file in a temporary
folder; a server that stops before answering raises :class:`ServerFailed` with the end of that log.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
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
    """A running ``gru4rec serve``: its ``url`` (``http://127.0.0.1:PORT``), ``port``, process and log file.

    :meth:`call` sends one request with the standard library (no client package needed) and returns the status and
    the JSON answer; :meth:`stop` ends the process and removes the log's temporary folder.
    """

    url: str
    port: int
    process: subprocess.Popen
    folder: Path

    @property
    def log_path(self) -> Path:
        return self.folder / "serve.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def call(self, method: str, path: str, body: Optional[dict] = None, timeout: float = 60.0) -> tuple[int, dict]:
        """``(status, JSON answer)`` of ``method path`` (``body`` sent as JSON); a 4xx/5xx is returned, not raised."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as refused:
            return refused.code, json.loads(refused.read() or b"{}")

    def click(self, session_id: str, item_id: int, k: int = 20) -> tuple[int, dict]:
        """``POST /sessions/{session_id}/events`` with ``{"item_id": item_id, "k": k}``."""
        return self.call("POST", f"/sessions/{session_id}/events", {"item_id": int(item_id), "k": int(k)})

    def wait_ready(self, timeout: float = 180.0) -> ServerProcess:
        """Wait until ``GET /health`` answers; :class:`ServerFailed` (with the end of the log) when the process stops
        first or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while not _health(self.url):
            if self.process.poll() is not None:
                raise ServerFailed(f"gru4rec serve stopped with code {self.process.returncode} before answering: "
                                   f"{self.log().strip()[-600:]}")  # fmt: skip
            if time.monotonic() > deadline:
                raise ServerFailed(f"gru4rec serve did not answer GET /health within {timeout:.0f} s: "
                                   f"{self.log().strip()[-600:]}")  # fmt: skip
            time.sleep(0.2)
        return self

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit code. Idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
        return int(self.process.returncode)


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


def launch_server(run_dir: os.PathLike | str, state_store: str = "memory", extra: Sequence[str] = (),
                  port: Optional[int] = None) -> ServerProcess:  # fmt: skip
    """Start ``gru4rec serve --model run_dir --state-store state_store *extra`` on 127.0.0.1 without waiting for it
    (:meth:`ServerProcess.wait_ready` waits): several servers can start at once. ``extra``: more options (e.g.
    ``["--session-ttl", "60"]``); ``port``: default a free one. The caller stops it (:meth:`ServerProcess.stop`; it is
    also stopped when this Python exits)."""
    folder = Path(tempfile.mkdtemp(prefix="gru4rec-serve-"))
    port = free_port() if port is None else int(port)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(folder / "serve.log", "wb") as log:
        process = subprocess.Popen(serve_command(run_dir, port, state_store, extra), stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT, env=env)  # fmt: skip
    server = ServerProcess(f"http://127.0.0.1:{port}", port, process, folder)
    atexit.register(server.stop)
    return server


def start_server(run_dir: os.PathLike | str, state_store: str = "memory", extra: Sequence[str] = (),
                 startup_timeout: float = 180.0, port: Optional[int] = None) -> ServerProcess:  # fmt: skip
    """:func:`launch_server`, then :meth:`ServerProcess.wait_ready` (the server is stopped if it fails)."""
    server = launch_server(run_dir, state_store, extra, port)
    try:
        server.wait_ready(startup_timeout)
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def served(run_dir: os.PathLike | str, state_store: str = "memory", extra: Sequence[str] = (),
           startup_timeout: float = 180.0, port: Optional[int] = None) -> Iterator[ServerProcess]:  # fmt: skip
    """:func:`start_server` for the ``with`` block: the server is stopped when the block ends."""
    server = start_server(run_dir, state_store, extra, startup_timeout, port)
    try:
        yield server
    finally:
        server.stop()
