"""benchmarks/gpu_check.sh on a machine without a GPU (this project's CPUs): its wiring only. It must parse as bash
and stop at once with a one-line error naming what is missing, writing no JSON. The GPU parts were not run here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def test_gpu_check_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


@pytest.mark.slow
def test_gpu_check_without_a_gpu_stops_with_a_clear_error(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = dict(os.environ, PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="")
    done = subprocess.run(["bash", str(SCRIPT), str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("gpu_check:")]
    assert len(lines) == 1 and "TensorFlow sees no GPU here" in lines[0] and "nvidia-smi" in lines[0]
    assert not out.exists()
