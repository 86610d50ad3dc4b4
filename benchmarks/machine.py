"""What machine a benchmark ran on, measured in the same run: CPU model, cores, vector width, and a float32
matrix-product rate that puts figures from different machines side by side.

The project's 2-core machines are not all alike: the speed targets were set on one whose float32
matrix product ran at about 78 GFLOP/s (AVX2), others run it at 205-221 GFLOP/s (AVX-512). An
absolute events/s figure means little without this line next to it; ratios measured in one run (the benchmarks print
them) do not depend on it.

    python benchmarks/machine.py
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or the platform's processor string."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def vector_extensions() -> str:
    """The widest x86 vector extension the CPU reports: ``avx512``, ``avx2``, ``avx`` or ``-``."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "").split()
    except OSError:
        return "-"
    for name, probe in (("avx512", "avx512f"), ("avx2", "avx2"), ("avx", "avx")):
        if probe in flags:
            return name
    return "-"


def sgemm_gflops(rows: int = 512, inner: int = 101, cols: int = 37_500, repeats: int = 5) -> float:
    """Best float32 matrix-product rate of numpy's BLAS, in GFLOP/s, on the evaluation's shape
    ``(rows, inner) @ (inner, cols)`` (a batch of hidden states with the bias column against every item)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((rows, inner), dtype=np.float32)
    b = rng.standard_normal((inner, cols), dtype=np.float32)
    out = np.empty((rows, cols), np.float32)
    np.matmul(a, b, out=out)  # warm-up: threads, pages
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2.0 * rows * inner * cols / best / 1e9


def copy_gbytes_per_s(n_bytes: int = 64 << 20, repeats: int = 5) -> float:
    """Best memory copy rate of numpy (bytes read + bytes written per second, in GB/s) on a buffer larger than the
    caches: the rate random row gathers and scatters of the item matrices cannot beat."""
    src = np.ones(n_bytes // 4, np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n_bytes / best / 1e9


def step_floor(batch: int, n_sample: int, units: int, gflops: float, gbytes_per_s: float) -> dict:
    """The floor of one BP training step of a 1-layer GRU4Rec with a shared embedding (the official configuration),
    from its arithmetic and the bytes it must move at the measured machine rates.

    FLOPs: the GRU (3 gates, input and recurrent products, ``2 * 3 * 2 * B * H * H``) and the scores against
    ``B + n_sample`` rows (``2 * B * (B + n_sample) * H``), times 3 for forward + backward. Bytes: the touched rows
    (at most ``2B + n_sample``) of the item matrix and its two Adagrad slots, each read once and written once
    (6 row passes of ``H`` float32), plus the gathered table and its gradient (2 more). Returns ms for each and
    their maximum (the floor)."""
    rows = 2 * batch + n_sample
    flops = 3 * (2 * 3 * 2 * batch * units * units + 2 * batch * (batch + n_sample) * units)
    n_bytes = 8 * rows * units * 4
    compute_ms = 1000 * flops / (gflops * 1e9)
    memory_ms = 1000 * n_bytes / (gbytes_per_s * 1e9)
    return {"flops": flops, "bytes": n_bytes, "compute_ms": compute_ms, "memory_ms": memory_ms,
            "floor_ms": max(compute_ms, memory_ms)}  # fmt: skip


def describe() -> dict:
    """The machine line's fields: ``cpu``, ``cpus``, ``vector``, ``sgemm_gflops``, ``load_average``."""
    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "vector": vector_extensions(),
        "sgemm_gflops": round(sgemm_gflops(), 1),
        "copy_gbytes_per_s": round(copy_gbytes_per_s(), 1),
        "load_average": round(os.getloadavg()[0], 2),
    }


def machine_line(info: dict) -> str:
    """One line for a benchmark's header."""
    return (f"machine: {info['cpu']}, {info['cpus']} CPUs, {info['vector']}, float32 matrix product "
            f"{info['sgemm_gflops']:.0f} GFLOP/s, memory copy {info.get('copy_gbytes_per_s', float('nan')):.0f} GB/s "
            f"(numpy), load average {info['load_average']:.2f}")  # fmt: skip


if __name__ == "__main__":
    print(machine_line(describe()))
