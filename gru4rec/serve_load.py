"""Load on a running ``gru4rec serve``: sessions replayed click by click by concurrent clients (``httpx2``'s async
client), bounded in clicks and seconds. Used by ``benchmarks/serve_load.py`` and notebook 09.

Each client replays one session (the next click is sent when the previous answer arrived; the session's last click
is not sent, it has no next item to predict) and takes the next session when its own ends. A level's figures are
the client-side latency of each ``POST /sessions/{id}/events`` (p50, p99, ms), the clicks per second over the
level's wall time and the mean number of clicks per model call (from ``/metrics``).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np


async def replay(base: str, sessions: Sequence[Sequence[int]], concurrency: int, max_events: int, seconds: float,
                 tag: str, k: int = 20) -> dict:  # fmt: skip
    """``concurrency`` clients replaying ``sessions`` (original item ids) in turn against ``base``
    (``http://127.0.0.1:PORT``); stops after ``max_events`` clicks or ``seconds``. Session ids are ``{tag}-{index}``.
    Raises ``RuntimeError`` on the first answer that is not a 200."""
    import httpx2 as httpx

    latencies: list[float] = []
    sent = [0]  # clicks sent or in flight: the bound holds however many clients check it at once
    next_session = iter(range(len(sessions)))
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)

    async def client(http) -> None:
        for s in next_session:
            for item in sessions[s][:-1]:
                if sent[0] >= max_events or time.perf_counter() > stop_at:
                    return
                sent[0] += 1
                start = time.perf_counter()
                response = await http.post(f"{base}/sessions/{tag}-{s}/events", json={"item_id": int(item), "k": k})
                latencies.append((time.perf_counter() - start) * 1000.0)
                if response.status_code != 200:
                    raise RuntimeError(f"session {s}: {response.status_code} {response.text[:200]}")

    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    ms = np.asarray(latencies)
    if not len(ms):
        raise RuntimeError("no click was sent: the sessions are shorter than 2 clicks or the bounds are 0")
    return {"concurrency": concurrency, "events": len(ms), "seconds": wall, "events_per_s": len(ms) / wall,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}  # fmt: skip


def _run(coroutine):
    """``asyncio.run`` in a thread of its own: works where this thread already runs an event loop (a notebook)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gru4rec-load") as pool:
        return pool.submit(asyncio.run, coroutine).result()


def load_levels(base: str, sessions: Sequence[Sequence[int]], concurrency: Sequence[int], max_events: int,
                seconds: float, k: int = 20, tag: str = "load", warm_up: int = 100) -> list[dict]:  # fmt: skip
    """:func:`replay` at each level of ``concurrency`` (after ``warm_up`` clicks at 4 clients), each level with its
    own session ids; every level's dict also has ``mean_batch`` (clicks per model call, from ``/metrics``)."""
    import httpx2 as httpx

    if warm_up:
        _run(replay(base, sessions[-50:], 4, warm_up, 30, f"{tag}-warm-up", k))
    levels = []
    for n in concurrency:
        before = httpx.get(f"{base}/metrics", timeout=60).json()
        level = _run(replay(base, sessions, n, max_events, seconds, f"{tag}-c{n}", k))
        after = httpx.get(f"{base}/metrics", timeout=60).json()
        calls = after["batches"] - before["batches"]
        level["mean_batch"] = level["events"] / calls if calls else float("nan")
        level["state_store"] = after["state_store"]
        levels.append(level)
    return levels
