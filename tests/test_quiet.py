"""Quiet start-up (gru4rec.quiet): TensorFlow's import-time INFO lines are filtered, warnings and errors are kept; the
retracing warning is dropped only for the kit's own functions."""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.slow
def test_importing_tensorflow_after_gru4rec_prints_no_start_up_lines() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "GRU4REC_TF_STARTUP_LOG")}
    env["PYTHONPATH"] = str(ROOT)
    code = "import gru4rec, tensorflow as tf; tf.constant(1.0) * 2; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    assert "oneDNN custom operations" not in done.stderr and "absl::InitializeLog" not in done.stderr, done.stderr


def retracing(function: str) -> str:
    return (f"5 out of the last 5 calls to {function} triggered tf.function retracing. Tracing is expensive and the "
            "excessive number of tracings could be due to (1) creating @tf.function repeatedly in a loop")  # fmt: skip


def test_retracing_filter_drops_only_the_kits_own_functions() -> None:
    import gru4rec.devices  # noqa: F401 - the modules whose functions the warnings name
    import gru4rec.evaluate  # noqa: F401
    import gru4rec.sampling  # noqa: F401

    kit = [
        "<function where_ops_ran.<locals>.probe at 0x7f94bc882840>",
        "<function GRU4RecScorer.__init__.<locals>._reset at 0x7f94bc883560>",
        "<bound method NegativeSampler._take_rows of <gru4rec.sampling.NegativeSampler object at 0x7f94bc883561>>",
        "<bound method Trainer._run_chunk of <gru4rec.train.Trainer object at 0x7f94bc918a50>>",
    ]
    others = [
        "<function my_step at 0x7f94bc882840>",
        "<function train at 0x7f94bc882840>",  # a plain name is anyone's, even if the kit has one
        "<function Model.call at 0x7f94bc882840>",
        "<function make.<locals>.step at 0x7f94bc882840>",
        "<bound method Trainer._run_chunk of <mylib.Trainer object at 0x7f94bc918a50>>",
    ]
    for function in kit:
        assert quiet.is_kit_retracing(retracing(function)), function
    for function in others:
        assert not quiet.is_kit_retracing(retracing(function)), function
    assert not quiet.is_kit_retracing("something else entirely")
    record = logging.LogRecord("tensorflow", logging.WARNING, __file__, 1, retracing(kit[0]), None, None)
    assert not quiet.KitRetracingFilter().filter(record)
    assert quiet.KitRetracingFilter().filter(logging.LogRecord("tensorflow", logging.WARNING, __file__, 1,
                                                                retracing(others[0]), None, None))  # fmt: skip


@pytest.mark.slow
def test_retracing_warnings_after_importing_gru4rec_only_name_other_functions() -> None:
    """A real TensorFlow: the kit's probe traced in a loop (one new tf.function per call, by design) warns nothing;
    a function of this script traced the same way still warns."""
    env = {k: v for k, v in os.environ.items() if k != "GRU4REC_TF_STARTUP_LOG"}
    env["PYTHONPATH"] = str(ROOT)
    code = (
        "import gru4rec, tensorflow as tf\n"
        "from gru4rec.devices import where_ops_ran\n"
        "for _ in range(8):\n"
        "    where_ops_ran()\n"
        "for _ in range(8):\n"
        "    @tf.function\n"
        "    def mine(x):\n"
        "        return x * 2\n"
        "    mine(tf.constant(1.0))\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    assert "probe" not in done.stderr, done.stderr
    assert "calls to <function mine at" in done.stderr and "retracing" in done.stderr, done.stderr
