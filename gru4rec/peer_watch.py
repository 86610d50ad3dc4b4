"""Watchdog for a multi-worker start-up, in a process of its own (standard library only; run as a script).

``MultiWorkerMirroredStrategy()`` waits for every worker of ``TF_CONFIG`` inside TensorFlow's C++ code without
releasing Python's global lock, so no Python thread of the waiting process can run a timer. This small child
process does: it waits on a pipe from its parent; if the pipe closes first (the parent connected, or died), it
exits quietly; after ``timeout`` seconds it writes one line naming the workers whose port does not answer to its
stderr (the parent's) and sends the parent SIGTERM, then SIGKILL 3 s later if it is still there (once the
multi-worker runtime has started, TensorFlow's preemption notifier catches SIGTERM, so the parent usually ends by
SIGKILL: exit status 137 in a shell).

    python peer_watch.py PARENT_PID TIMEOUT_S INDEX HOST:PORT [HOST:PORT ...]
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
import time
from typing import Sequence

CONNECT_TIMEOUT_ENV = "GRU4REC_CONNECT_TIMEOUT"
GRACE_S = 3.0  # seconds between the SIGTERM and the SIGKILL


def unreachable_workers(workers: Sequence[str], index: int, timeout_s: float = 1.0) -> list:
    """``[(i, "host:port"), ...]`` of the other workers whose port does not accept a TCP connection now."""
    missing = []
    for i, address in enumerate(workers):
        if i == index:
            continue
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
                pass
        except OSError:
            missing.append((i, address))
    return missing


def timeout_message(workers: Sequence[str], index: int, timeout_s: float, missing: list) -> str:
    """The one-line error of a start-up that timed out."""
    if missing:
        what = ", ".join(f"worker {i} ({address})" for i, address in missing) + " did not answer"
    else:
        what = "every worker's port answers, but not all of them joined"
    return (f"gru4rec: error: --distribute multiworker (TF_CONFIG task {index} of {len(workers)}): {what} within "
            f"{timeout_s:g} s; start the same command on every worker of TF_CONFIG, or raise "
            f"{CONNECT_TIMEOUT_ENV}")  # fmt: skip


def main(argv: Sequence[str]) -> int:
    parent, timeout_s, index, workers = int(argv[0]), float(argv[1]), int(argv[2]), list(argv[3:])
    ready, _, _ = select.select([sys.stdin], [], [], timeout_s)
    if ready:  # the parent closed the pipe (connected, or ended): nothing to do
        return 0
    sys.stderr.write(timeout_message(workers, index, timeout_s, unreachable_workers(workers, index)) + "\n")
    sys.stderr.flush()
    try:
        os.kill(parent, signal.SIGTERM)
        time.sleep(GRACE_S)
        os.kill(parent, signal.SIGKILL)  # still there: TensorFlow's preemption notifier took the SIGTERM
    except ProcessLookupError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
