"""``gru4rec lab`` (gru4rec.lab): the working copy of the course and the JupyterLab command line (the browser test
starts the server through the same command)."""

from __future__ import annotations

import http.server
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gru4rec import lab, lab_announce
from gru4rec.cli import main

ROOT = Path(__file__).resolve().parents[1]


def fake_course(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text(json.dumps({"cells": [], "name": name}))
    return folder


def test_working_copy_is_created_once_and_keeps_the_learners_edits(tmp_path) -> None:
    source = fake_course(tmp_path / "course", "00_a.ipynb", "01_b.ipynb")
    copy = lab.prepare_lab(tmp_path / "lab", source)
    assert copy.copied == ["00_a.ipynb", "01_b.ipynb"] and copy.kept == []
    assert (copy.root / "data").resolve() == (ROOT / "data").resolve() and (copy.root / "build").is_dir()
    # the notebooks' ../data and ../build resolve inside the working copy, as from notebooks/ in the checkout
    assert (copy.notebooks / ".." / "data" / "tiny").resolve() == (ROOT / "data" / "tiny").resolve()
    assert (copy.notebooks / ".." / "build").resolve() == copy.root / "build"
    edited = copy.notebooks / "00_a.ipynb"
    edited.write_text("my edits")
    fake_course(source, "02_new.ipynb")  # a notebook added to the course later
    again = lab.prepare_lab(tmp_path / "lab", source)
    assert again.copied == ["02_new.ipynb"] and again.kept == ["00_a.ipynb", "01_b.ipynb"]
    assert edited.read_text() == "my edits"


def test_reset_puts_the_original_back_and_keeps_the_old_copy(tmp_path) -> None:
    source = fake_course(tmp_path / "course", "00_a.ipynb")
    copy = lab.prepare_lab(tmp_path / "lab", source)
    (copy.notebooks / "00_a.ipynb").write_text("my edits")
    moved = lab.reset_notebook("00_a", tmp_path / "lab", source)
    assert moved.parent == copy.root / "replaced" and moved.read_text() == "my edits"
    assert (copy.notebooks / "00_a.ipynb").read_text() == (source / "00_a.ipynb").read_text()
    with pytest.raises(ValueError, match="no such course notebook; known: 00_a.ipynb"):
        lab.reset_notebook("04_x.ipynb", tmp_path / "lab", source)


def test_a_data_folder_that_is_not_the_link_is_refused(tmp_path) -> None:
    (tmp_path / "lab" / "data").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="expected a link to"):
        lab.prepare_lab(tmp_path / "lab", fake_course(tmp_path / "course", "00_a.ipynb"))


@pytest.mark.parametrize("root", [True, False])
def test_jupyter_command_listens_on_localhost_with_a_token(tmp_path, monkeypatch, root: bool) -> None:
    monkeypatch.setattr(lab, "running_as_root", lambda: root)
    argv, env = lab.jupyter_command(tmp_path, extra=["--LabApp.x=1"])
    token = env["JUPYTER_TOKEN"]
    assert argv[0].endswith("jupyter") and argv[1] == "lab" and len(token) >= 32
    assert "--ServerApp.ip=127.0.0.1" in argv and not any(token in a for a in argv)  # not visible in ps
    assert f"--ServerApp.root_dir={tmp_path.resolve()}" in argv and argv[-1] == "--LabApp.x=1"
    assert ("--allow-root" in argv) == root
    assert not any(a.startswith("--ServerApp.port=") for a in argv)
    fixed, same = lab.jupyter_command(tmp_path, port=9123, token="t0k", open_browser=False)
    assert same["JUPYTER_TOKEN"] == "t0k" and "--ServerApp.port=9123" in fixed and "--ServerApp.port_retries=0" in fixed
    assert "--no-browser" in fixed
    from gru4rec.course import kernels_can_encrypt

    # CurveZMQ keys for the kernels where jupyter_client can provision them (no "without encryption" warning)
    assert ("--KernelManager.transport_encryption=auto" in argv) == kernels_can_encrypt()


def test_cli_lab_prepares_the_course_copy(tmp_path, capsys) -> None:
    assert main(["lab", "--dir", str(tmp_path / "lab"), "--prepare-only"]) == 0
    names = sorted(p.name for p in (tmp_path / "lab" / "notebooks").glob("*.ipynb"))
    assert names == sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")) and names
    assert main(["lab", "--dir", str(tmp_path / "lab"), "--prepare-only", "--reset", names[0]]) == 0
    assert "reset " + names[0] in capsys.readouterr().out
    assert main(["lab", "--dir", str(tmp_path / "lab"), "--port", "0", "--prepare-only"]) == 2
    assert "--port 0" in capsys.readouterr().err
    assert os.path.islink(tmp_path / "lab" / "data")


class _Status(http.server.BaseHTTPRequestHandler):
    """A stand-in Jupyter server: ``/api/status`` answers 200 with the right token, 403 otherwise."""

    token = "s3cret"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        ok = self.path == "/api/status" and self.headers.get("Authorization") == f"token {self.token}"
        self.send_response(200 if ok else 403)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args) -> None:
        pass


def test_the_announcer_prints_the_full_address_once_the_server_answers() -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Status)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = io.StringIO()
        assert lab_announce.wait_and_announce(port, "s3cret", lambda: True, timeout=10, poll=0.05, out=out)
        assert f"http://127.0.0.1:{port}/lab?token=s3cret" in out.getvalue()
        wrong = io.StringIO()  # a server that refuses the token is not "ready": the note names the time out
        assert not lab_announce.wait_and_announce(port, "other", lambda: True, timeout=0.3, poll=0.05, out=wrong)
        assert "did not answer within" in wrong.getvalue()
        gone = io.StringIO()  # the server process ended: the announcer leaves quietly
        assert not lab_announce.wait_and_announce(port, "s3cret", lambda: False, timeout=5, out=gone)
        assert gone.getvalue() == ""
    finally:
        server.shutdown()
        server.server_close()


def test_free_port_skips_a_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        assert lab_announce.free_port(taken, tries=5) != taken
        with pytest.raises(OSError, match="choose one with --port"):
            lab_announce.free_port(taken, tries=1)


def test_lab_help_says_the_address_with_the_token_is_printed(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["lab", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "prints its full address with the token" in text and "--no-browser" in text


@pytest.mark.slow
def test_headless_lab_prints_the_full_address_with_its_token(tmp_path) -> None:
    """The real thing: ``gru4rec lab --no-browser`` over a working copy prints ``...lab?token=<the token>`` on its
    standard output once JupyterLab answers (the token is never in the server's command line)."""
    port, token = lab_announce.free_port(20000 + os.getpid() % 20000), "t" * 40
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "gru4rec", "lab", "--dir", str(tmp_path / "lab"), "--port", str(port),
               "--token", token, "--no-browser"]  # fmt: skip
    log = tmp_path / "stdout.txt"
    with open(log, "w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and f"lab?token={token}" not in log.read_text():
            assert server.poll() is None, log.read_text()
            time.sleep(0.5)
        assert f"http://127.0.0.1:{port}/lab?token={token}" in log.read_text()
        cmdline = Path(f"/proc/{server.pid}/cmdline")
        if cmdline.exists():
            assert token not in cmdline.read_text()
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
