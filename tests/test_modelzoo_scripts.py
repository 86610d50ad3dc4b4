"""The ModelZoo-style entry points ``scripts/modelzoo/train_{full,performance}_1p.sh``.

They honour ``ASCEND_DEVICE_ID`` and leave ``output/$ASCEND_DEVICE_ID/train_$ASCEND_DEVICE_ID.log`` in the seed's log
format (parsed here with ``gru4rec.logs``). These runs use whatever device ``gru4rec seed`` picks on this machine
(the CPU in CI); no NPU executed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gru4rec.logs import read_log

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts" / "modelzoo"
TINY_TRAIN = ROOT / "data" / "tiny" / "rsc15_train_full.txt"


def _env(device_id: str) -> dict:
    env = dict(os.environ)
    env.update(ASCEND_DEVICE_ID=device_id, PYTHON=sys.executable, TF_CPP_MIN_LOG_LEVEL="2")
    return env


def _seed_command_missing() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "gru4rec", "seed", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    return "" if result.returncode == 0 else f"`gru4rec seed` is not available yet: {result.stderr.strip()[-200:]}"


def _run(script: str, args: list, cwd: Path, device_id: str = "0", timeout: int = 600):
    return subprocess.run(
        ["bash", str(SCRIPTS / script), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_env(device_id),
        timeout=timeout,
    )


@pytest.mark.parametrize("script", ["train_full_1p.sh", "train_performance_1p.sh"])
def test_scripts_require_a_data_dir(script, tmp_path):
    result = _run(script, [], tmp_path)
    assert result.returncode == 2
    assert "--data_dir=PATH must be given" in result.stderr
    missing = _run(script, [f"--data_dir={tmp_path / 'nope.txt'}"], tmp_path)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


@pytest.mark.parametrize("script", ["train_full_1p.sh", "train_performance_1p.sh"])
def test_scripts_show_help(script, tmp_path):
    result = _run(script, ["--help"], tmp_path)
    assert result.returncode == 0
    assert "ASCEND_DEVICE_ID" in result.stdout and "--data_dir" in result.stdout


@pytest.mark.slow
def test_performance_script_writes_a_seed_format_log_per_device_no_npu_executed(tmp_path):
    reason = _seed_command_missing()
    if reason:
        pytest.skip(reason)
    assert TINY_TRAIN.exists(), f"{TINY_TRAIN} is missing (the embedded tiny data set)"
    # a short run: 300 steps, logged every 50 (the steps after the first chunk of 128 give the step time)
    args = [f"--data_dir={TINY_TRAIN}", "--perf_events=0", "--epoch=3", "--log_every=50", "--max_steps=300"]
    result = _run("train_performance_1p.sh", args, tmp_path, "3")
    print("[no NPU executed: ASCEND_DEVICE_ID only names the output folder here]")
    print(result.stdout[-2000:], result.stderr[-2000:])
    assert result.returncode == 0, result.stderr[-2000:]
    log = tmp_path / "output" / "3" / "train_3.log"
    assert log.exists()
    frame = read_log(log)
    assert list(frame["step"]) == [1, 50, 100, 150, 200, 250, 300]
    assert frame["loss"].notna().all() and (frame["step_time"] > 0).all()
    assert (tmp_path / "output" / "3" / "run" / "config.json").exists()
    assert "Mean step time" in result.stdout and "Events per second" in result.stdout
    summary = (tmp_path / "output" / "3" / "GRU4Rec_bs50_1p_perf.log").read_text()
    assert "ActualFPS = " in summary and "TrainingTime = " in summary
