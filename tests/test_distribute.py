"""Data-parallel training (``gru4rec.distribute``) on the CPU: MirroredStrategy over two logical CPU devices, and
MultiWorkerMirroredStrategy with two worker processes on 127.0.0.1, each against single-device training with the
same global batch. Every run is its own subprocess (logical devices and collectives must be set before TensorFlow
starts); see ``tests/distribute_run.py``. No GPU, no NPU and no second machine executed here.

Tolerances (float summation order differs across replicas; Adagrad's g/sqrt(acc) amplifies that a little):
step losses within 1e-4 relative, weights within 2e-3 absolute after 150 updates.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gru4rec.config import Config

ROOT = Path(__file__).resolve().parents[1]
RUNNER = ROOT / "tests" / "distribute_run.py"
LOSS_RTOL = 1e-4
WEIGHT_ATOL = 2e-3


def _env(**extra) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _start(mode: str, out: Path, *args: str, env=None) -> subprocess.Popen:
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "console.txt", "w")
    return subprocess.Popen([sys.executable, str(RUNNER), mode, str(out), *args], cwd=ROOT, env=env or _env(),
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip


def _finish(proc: subprocess.Popen, out: Path, timeout: int = 150) -> dict:
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    console = (out / "console.txt").read_text()[-3000:]
    assert proc.returncode == 0, console
    return {**json.loads((out / "result.json").read_text()), "weights": dict(np.load(out / "weights.npz"))}


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    return _finish(_start("none", out), out)


def _compare(single: dict, other: dict, label: str) -> None:
    print(f"[{label}] steady ms/step {other['steady_ms_per_step']:.2f} (single device "
          f"{single['steady_ms_per_step']:.2f}; first chunk with tracing excluded), "
          f"wall {other['seconds']:.1f} s vs {single['seconds']:.1f} s; {other['distribute']}")  # fmt: skip
    assert other["steps"] == single["steps"] == 150 and other["updates"] == single["updates"]
    np.testing.assert_allclose(other["step_losses"], single["step_losses"], rtol=LOSS_RTOL)
    np.testing.assert_allclose(other["epoch_losses"], single["epoch_losses"], rtol=LOSS_RTOL)
    worst = 0.0
    for name, value in single["weights"].items():
        worst = max(worst, float(np.abs(other["weights"][name] - value).max()))
        np.testing.assert_allclose(other["weights"][name], value, atol=WEIGHT_ATOL, err_msg=name)
    print(f"[{label}] largest weight difference {worst:.2e} (tolerance {WEIGHT_ATOL})")
    moved = max(float(np.abs(v).max()) for v in single["weights"].values())
    assert moved > 10 * WEIGHT_ATOL  # the comparison is not vacuous


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus_matches_one_device(single, tmp_path):
    out = tmp_path / "mirrored"
    run = _finish(_start("mirrored", out, "--logical_cpus", "2"), out)
    assert run["distribute"]["replicas"] == 2 and run["distribute"]["class"] == "MirroredStrategy"
    assert run["distribute"]["lanes_per_replica"] == 8
    assert "CPU:0" in run["device"]
    for name, value in run["weights"].items():  # both replicas hold the same weights
        if name.endswith("__last_replica"):
            np.testing.assert_array_equal(value, run["weights"][name[: -len("__last_replica")]])
    assert any(name.endswith("__last_replica") for name in run["weights"])
    _compare(single, run, "mirrored, 2 logical CPUs")


def _free_ports(n: int) -> list:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_multiworker_with_two_local_processes_matches_one_device(single, tmp_path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        out = tmp_path / f"worker{index}"
        procs.append((_start("multiworker", out, env=_env(TF_CONFIG=tf_config)), out))
    runs = [_finish(proc, out) for proc, out in procs]
    for run in runs:
        assert run["distribute"]["replicas"] == 2
        assert run["distribute"]["class"] in ("MultiWorkerMirroredStrategy", "CollectiveAllReduceStrategy")
    assert "/job:worker/replica:0/task:0/" in runs[0]["device"] and "/task:1/" in runs[1]["device"]
    for name, value in runs[0]["weights"].items():  # the workers end with the same weights
        np.testing.assert_allclose(runs[1]["weights"][name], value, rtol=0, atol=1e-6)
    _compare(single, runs[0], "multiworker, 2 processes on 127.0.0.1")


def test_distribute_errors_are_clear():
    from gru4rec.distribute import DistributeError, make_strategy

    with pytest.raises(ValueError, match="distribute"):
        Config(distribute="horovod")
    os.environ.pop("TF_CONFIG", None)
    with pytest.raises(DistributeError, match="TF_CONFIG"):
        make_strategy("multiworker")
    with pytest.raises(DistributeError, match="at least 2 local devices"):
        make_strategy("mirrored", devices=["/device:CPU:0"])
    assert make_strategy("none") is None


def _missing_peer_worker(tmp_path, **extra):
    """Worker 0 of a two-worker TF_CONFIG whose worker 1 never starts."""
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": 0}})
    out = tmp_path / "alone"
    return _start("multiworker", out, env=_env(TF_CONFIG=tf_config, **extra)), out, workers


@pytest.mark.slow
def test_multiworker_without_its_peer_stops_after_the_timeout_naming_it(tmp_path):
    proc, out, workers = _missing_peer_worker(tmp_path, GRU4REC_CONNECT_TIMEOUT="4")
    try:
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    console = (out / "console.txt").read_text()
    assert proc.returncode in (-15, -9), console[-2000:]  # ended by the watchdog (SIGTERM, then SIGKILL)
    assert f"worker 1 ({workers[1]}) did not answer within 4 s" in console
    assert "GRU4REC_CONNECT_TIMEOUT" in console


@pytest.mark.slow
def test_multiworker_waiting_for_its_peer_ends_on_sigint(tmp_path):
    import signal
    import time

    proc, out, _ = _missing_peer_worker(tmp_path, GRU4REC_CONNECT_TIMEOUT="600")
    try:
        deadline = time.monotonic() + 120
        while "training starts" not in (out / "console.txt").read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, (out / "console.txt").read_text()[-2000:]
            time.sleep(0.2)
        time.sleep(3)  # inside MultiWorkerMirroredStrategy(), waiting for worker 1
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGINT


def test_watchdog_and_timeout_setting(monkeypatch):
    import signal

    from gru4rec import distribute as dist
    from gru4rec import peer_watch

    monkeypatch.setenv("GRU4REC_CONNECT_TIMEOUT", "soon")
    with pytest.raises(dist.DistributeError, match="GRU4REC_CONNECT_TIMEOUT must be a positive number"):
        dist.connect_timeout()
    monkeypatch.setenv("GRU4REC_CONNECT_TIMEOUT", "2.5")
    assert dist.connect_timeout() == 2.5
    with pytest.raises(dist.DistributeError, match="not host:port"):
        dist.parse_tf_config(json.dumps({"cluster": {"worker": ["nohost"]}, "task": {"type": "worker", "index": 0}}))
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(1)
    alive = f"127.0.0.1:{listening.getsockname()[1]}"
    dead = f"127.0.0.1:{_free_ports(1)[0]}"
    try:
        assert peer_watch.unreachable_workers([alive, alive, dead], index=0) == [(2, dead)]
        # the watchdog process on its own: a stand-in parent is ended with SIGTERM after the timeout
        parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        watcher = subprocess.Popen([sys.executable, peer_watch.__file__, str(parent.pid), "0.3", "0", alive, dead],
                                   stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        assert parent.wait(timeout=30) == -signal.SIGTERM
        _, stderr = watcher.communicate(timeout=30)
        assert f"worker 1 ({dead}) did not answer within 0.3 s" in stderr
        # a block that ends in time: the watchdog exits quietly and the signal handlers come back
        before = signal.getsignal(signal.SIGINT)
        with dist.peer_watchdog([alive, dead], 0, 30.0):
            assert signal.getsignal(signal.SIGINT) == signal.SIG_DFL
        assert signal.getsignal(signal.SIGINT) == before
    finally:
        listening.close()
