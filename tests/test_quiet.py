"""Quiet start-up (gru4rec.quiet): TensorFlow's import-time INFO lines are filtered, warnings and errors are kept."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from gru4rec import quiet

ROOT = Path(__file__).resolve().parents[1]
BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
INFO = "I0000 00:00:1796159438.526334    5196 port.cc:153] oneDNN custom operations are on.\n"
WARN = "W0000 00:00:1796159438.526334    5196 x.cc:12] something real\n"


def test_filter_drops_only_the_banner_and_info_lines() -> None:
    text = BANNER + INFO + WARN + "UserWarning: a Python warning\n" + "E0000 00:00:1.0  1 y.cc:3] an error\n"
    kept = quiet.filter_startup_log(text)
    assert kept == WARN + "UserWarning: a Python warning\n" + "E0000 00:00:1.0  1 y.cc:3] an error\n"
    assert quiet.is_noise(INFO) and quiet.is_noise(BANNER) and not quiet.is_noise(WARN)


def test_quiet_loader_filters_what_a_module_writes_to_fd_2_while_it_loads(tmp_path, capfd) -> None:
    module_file = tmp_path / "noisy_module.py"
    module_file.write_text(
        "import os, sys, warnings\n"
        f"os.write(2, {BANNER.encode()!r})\n"
        f"os.write(2, {INFO.encode()!r})\n"
        f"os.write(2, {WARN.encode()!r})\n"
        "sys.__stderr__.write('UserWarning: a real Python warning\\n'); sys.__stderr__.flush()\n"
    )
    spec = importlib.util.spec_from_file_location("noisy_module", module_file)
    spec.loader = quiet._QuietLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    err = capfd.readouterr().err
    assert "oneDNN" not in err and "absl::InitializeLog" not in err
    assert "something real" in err and "a real Python warning" in err


def test_importing_tensorflow_after_gru4rec_prints_no_start_up_lines() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "GRU4REC_TF_STARTUP_LOG")}
    env["PYTHONPATH"] = str(ROOT)
    code = "import gru4rec, tensorflow as tf; tf.constant(1.0) * 2; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    assert "oneDNN custom operations" not in done.stderr and "absl::InitializeLog" not in done.stderr, done.stderr
