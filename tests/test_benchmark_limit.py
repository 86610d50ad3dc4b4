"""The benchmarks' "limit" line (benchmarks/machine.py: ``step_floor``): the arithmetic of the floor estimate."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from machine import step_floor  # noqa: E402


def test_step_floor_of_the_official_configuration():
    floor = step_floor(batch=32, n_sample=2048, units=100, gflops=100.0, gbytes_per_s=20.0)
    # GRU: 3 gates x (input + recurrent) products; scores: 32 lanes x (32 + 2048) columns; x3 forward + backward
    assert floor["flops"] == 3 * (2 * 3 * 2 * 32 * 100 * 100 + 2 * 32 * 2080 * 100) == 51_456_000
    assert floor["bytes"] == 8 * (2 * 32 + 2048) * 100 * 4  # touched rows: table + 2 slots read/written, grads
    assert floor["compute_ms"] == pytest.approx(51_456_000 / 100e9 * 1000)
    assert floor["memory_ms"] == pytest.approx(floor["bytes"] / 20e9 * 1000)
    assert floor["floor_ms"] == max(floor["compute_ms"], floor["memory_ms"])
    slower = step_floor(batch=32, n_sample=2048, units=100, gflops=50.0, gbytes_per_s=20.0)
    assert slower["compute_ms"] == pytest.approx(2 * floor["compute_ms"])
